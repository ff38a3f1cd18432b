// Test volumes: peers that compare contents, and a write gate. See test_volumes.h.
#include "test_volumes.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace snapstore::integration {

void PeerDirectory::add(const std::string& name, VolumePtr volume) {
  std::lock_guard lock(mutex_);
  volumes_[name] = std::move(volume);
}

void PeerDirectory::remove(std::string_view name) {
  std::lock_guard lock(mutex_);
  if (auto it = volumes_.find(name); it != volumes_.end()) volumes_.erase(it);
}

VolumePtr PeerDirectory::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  auto it = volumes_.find(name);
  return it == volumes_.end() ? nullptr : it->second;
}

TestVolume::TestVolume(MemoryVolumeOptions options, std::shared_ptr<PeerDirectory> peers)
    : memory_(std::move(options)), peers_(std::move(peers)) {}

Status TestVolume::read(std::uint64_t offset, std::span<std::byte> out) {
  return memory_.read(offset, out);
}

Status TestVolume::write(std::uint64_t offset, std::span<const std::byte> data, bool fua) {
  {
    std::unique_lock lock(gate_mutex_);
    ++waiting_;
    gate_cv_.wait(lock, [&] { return gate_open_; });
    --waiting_;
  }
  return memory_.write(offset, data, fua);
}

Status TestVolume::trim(std::uint64_t offset, std::uint64_t length, bool fua) {
  return memory_.trim(offset, length, fua);
}

Status TestVolume::write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap,
                                bool fast_only, bool fua) {
  return memory_.write_zeroes(offset, length, may_unmap, fast_only, fua);
}

Result<std::vector<Extent>> TestVolume::block_status(std::uint64_t offset, std::uint64_t length) {
  return memory_.block_status(offset, length);
}

bool TestVolume::has_peer(std::string_view other) const {
  auto peers = peers_.lock();
  return peers && peers->find(other) != nullptr;
}

Result<std::vector<Extent>> TestVolume::changed_extents(std::string_view other,
                                                        std::uint64_t offset,
                                                        std::uint64_t length) {
  auto peers = peers_.lock();
  VolumePtr peer = peers ? peers->find(other) : nullptr;
  if (!peer) return not_found("no volume named '" + std::string(other) + "'");
  constexpr std::uint64_t page = MemoryVolume::page_size;
  const std::uint64_t end = offset + std::min<std::uint64_t>(length, max_changed_bytes);
  std::vector<std::byte> mine(page), theirs(page);
  std::vector<Extent> out;
  for (std::uint64_t at = offset; at < end;) {
    const std::uint64_t n = std::min((at / page + 1) * page, end) - at;
    SNAPSTORE_RETURN_IF_ERROR(memory_.read(at, {mine.data(), n}));
    std::fill(theirs.begin(), theirs.end(), std::byte{0});  // beyond its end: zeroes
    if (at < peer->size()) {
      SNAPSTORE_RETURN_IF_ERROR(peer->read(at, {theirs.data(), std::min(n, peer->size() - at)}));
    }
    const std::uint32_t flag = std::memcmp(mine.data(), theirs.data(), n) != 0 ? 1 : 0;
    if (!out.empty() && out.back().flags == flag)
      out.back().length += n;
    else
      out.push_back({n, flag});
    at += n;
  }
  return out;
}

void TestVolume::close_gate() {
  std::lock_guard lock(gate_mutex_);
  gate_open_ = false;
}

void TestVolume::open_gate() {
  {
    std::lock_guard lock(gate_mutex_);
    gate_open_ = true;
  }
  gate_cv_.notify_all();
}

std::size_t TestVolume::waiting_writes() const {
  std::lock_guard lock(gate_mutex_);
  return waiting_;
}

}  // namespace snapstore::integration
