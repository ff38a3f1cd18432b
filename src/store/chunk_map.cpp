// Logical-to-device mapping, copies and self-healing reads. See chunk_map.h.
#include "store/chunk_map.h"

#include <algorithm>
#include <mutex>

namespace snapstore {

namespace {

std::size_t space_slot(space s) { return s == space::metadata ? 0 : 1; }

}  // namespace

std::size_t stripe_count(profile p) {
  switch (p) {
    case profile::single: return 1;
    case profile::dup:
    case profile::raid1: return 2;
    case profile::raid1c3: return 3;
  }
  return 1;
}

ChunkMap::ChunkMap(std::vector<BlockDevicePtr> devices, std::uint64_t chunk_size,
                   std::vector<Chunk> chunks, std::uint64_t reserved_bytes)
    : devices_(std::move(devices)),
      chunk_size_(chunk_size),
      reserved_bytes_(reserved_bytes),
      chunks_(std::move(chunks)) {
  chunks_.reserve(max_chunks);  // pointers in by_space_ stay valid as chunks are added
  rebuild_index();
}

void ChunkMap::rebuild_index() {
  for (auto& v : by_space_) v.clear();
  for (const Chunk& c : chunks_) {
    auto& v = by_space_[space_slot(c.kind)];
    if (v.size() <= c.index) v.resize(c.index + 1, nullptr);
    v[c.index] = &c;
  }
  unallocated_ = 0;
  for (std::uint32_t d = 0; d < devices_.size(); ++d)
    for (auto [a, b] : free_extents(d)) unallocated_ += (b - a) / chunk_size_ * chunk_size_;
}

std::uint64_t ChunkMap::space_bytes(space s) const {
  std::shared_lock lock(mutex_);
  return by_space_[space_slot(s)].size() * chunk_size_;
}

std::vector<Chunk> ChunkMap::chunks() const {
  std::shared_lock lock(mutex_);
  return chunks_;
}

std::size_t ChunkMap::chunk_count() const {
  std::shared_lock lock(mutex_);
  return chunks_.size();
}

ChunkMapStats ChunkMap::stats() const {
  return {checksum_failures_.load(), repairs_.load(), unrecoverable_.load()};
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> ChunkMap::free_extents(
    std::uint32_t device) const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> used;
  for (const Chunk& c : chunks_)
    for (const Stripe& s : c.stripes)
      if (s.device == device) used.emplace_back(s.offset, s.offset + chunk_size_);
  std::sort(used.begin(), used.end());
  std::vector<std::pair<std::uint64_t, std::uint64_t>> free;
  std::uint64_t pos = reserved_bytes_;
  const std::uint64_t end = devices_[device]->size();
  for (auto [start, stop] : used) {
    if (start > pos) free.emplace_back(pos, start);
    pos = std::max(pos, stop);
  }
  if (end > pos) free.emplace_back(pos, end);
  return free;
}

Result<std::vector<Stripe>> ChunkMap::place(profile p) const {
  // Candidate slots per device: start offsets of free chunk-sized pieces.
  std::vector<std::vector<std::uint64_t>> slots(devices_.size());
  for (std::uint32_t d = 0; d < devices_.size(); ++d)
    for (auto [start, stop] : free_extents(d))
      for (std::uint64_t o = start; o + chunk_size_ <= stop && slots[d].size() < 3; o += chunk_size_)
        slots[d].push_back(o);
  std::vector<Stripe> stripes;
  if (p == profile::single || p == profile::dup) {
    const std::size_t need = stripe_count(p);
    // The device with the most free space that can hold all stripes.
    std::int64_t best = -1;
    std::uint64_t best_free = 0;
    for (std::uint32_t d = 0; d < devices_.size(); ++d) {
      std::uint64_t f = 0;
      for (auto [a, b] : free_extents(d)) f += b - a;
      if (slots[d].size() >= need && (best < 0 || f > best_free)) {
        best = d;
        best_free = f;
      }
    }
    if (best < 0) return no_space("no device has room for another chunk");
    for (std::size_t i = 0; i < need; ++i)
      stripes.push_back({static_cast<std::uint32_t>(best), slots[best][i]});
    return stripes;
  }
  for (std::uint32_t d = 0; d < devices_.size() && stripes.size() < stripe_count(p); ++d)
    if (!slots[d].empty()) stripes.push_back({d, slots[d][0]});
  if (stripes.size() < stripe_count(p))
    return no_space("not enough devices with room for a " + std::string(profile_name(p)) +
                    " chunk");
  return stripes;
}

std::uint64_t ChunkMap::unallocated_bytes() const {
  std::shared_lock lock(mutex_);
  return unallocated_;
}

bool ChunkMap::can_allocate(profile p) const {
  std::shared_lock lock(mutex_);
  return place(p).is_ok() && chunks_.size() < max_chunks;
}

Result<Chunk> ChunkMap::allocate_chunk(space s, profile p, std::uint64_t keep_free) {
  std::unique_lock lock(mutex_);
  if (chunks_.size() >= max_chunks) return no_space("the chunk map is full");
  if (keep_free > 0 && unallocated_ < keep_free + stripe_count(p) * chunk_size_)
    return no_space("device space is kept for metadata");
  auto stripes = place(p);
  if (!stripes) return stripes.status();
  Chunk c{s, p, static_cast<std::uint32_t>(by_space_[space_slot(s)].size()), *stripes};
  chunks_.push_back(c);
  rebuild_index();
  return c;
}

Status ChunkMap::add_chunk(const Chunk& c) {
  std::unique_lock lock(mutex_);
  if (chunks_.size() >= max_chunks) return corruption("the chunk map is full");
  if (c.index != by_space_[space_slot(c.kind)].size() || c.stripes.size() != stripe_count(c.layout))
    return corruption("chunk " + std::to_string(c.index) + " is not the next chunk of its space");
  for (std::size_t i = 0; i < c.stripes.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (c.stripes[i].device == c.stripes[j].device &&
          c.stripes[i].offset < c.stripes[j].offset + chunk_size_ && c.stripes[j].offset < c.stripes[i].offset + chunk_size_)
        return corruption("chunk " + std::to_string(c.index) + " has overlapping copies");
  for (const Stripe& st : c.stripes) {
    if (st.device >= devices_.size() || st.offset < reserved_bytes_ ||
        st.offset + chunk_size_ > devices_[st.device]->size())
      return corruption("chunk " + std::to_string(c.index) + " lies outside the usable part of its device");
    for (const Chunk& other : chunks_)
      for (const Stripe& o : other.stripes)
        if (o.device == st.device && o.offset < st.offset + chunk_size_ && st.offset < o.offset + chunk_size_)
          return corruption("chunk " + std::to_string(c.index) + " overlaps another chunk");
  }
  chunks_.push_back(c);
  rebuild_index();
  return Status::ok();
}

Result<ChunkMap::Location> ChunkMap::locate(space s, std::uint64_t offset,
                                            std::uint64_t length) const {
  const auto& v = by_space_[space_slot(s)];
  const std::uint64_t index = offset / chunk_size_;
  const std::uint64_t within = offset % chunk_size_;
  if (index >= v.size() || !v[index] || within + length > chunk_size_)
    return invalid_argument("logical address outside the pool's chunks");
  return Location{v[index], within};
}

std::size_t ChunkMap::copies(space s, std::uint64_t offset) const {
  std::shared_lock lock(mutex_);
  auto loc = locate(s, offset, 1);
  return loc ? loc->chunk->stripes.size() : 0;
}

Status ChunkMap::read_copy(space s, std::uint64_t offset, std::size_t copy,
                           std::span<std::byte> out) {
  std::shared_lock lock(mutex_);
  auto loc = locate(s, offset, out.size());
  if (!loc) return loc.status();
  if (copy >= loc->chunk->stripes.size()) return invalid_argument("no such copy");
  const Stripe& st = loc->chunk->stripes[copy];
  return devices_[st.device]->read(st.offset + loc->within, out);
}

Status ChunkMap::read(space s, std::uint64_t offset, std::span<std::byte> out,
                      const Verifier& verify) {
  return read_copies(s, offset, out, verify, 0, Status::ok());
}

Status ChunkMap::read_copies(space s, std::uint64_t offset, std::span<std::byte> out,
                             const Verifier& verify, std::size_t first, Status earlier) {
  std::shared_lock lock(mutex_);
  auto loc = locate(s, offset, out.size());
  if (!loc) return loc.status();
  const auto& stripes = loc->chunk->stripes;
  std::vector<std::size_t> bad;
  for (std::size_t i = 0; i < first && i < stripes.size(); ++i) bad.push_back(i);
  Status last = first > 0 ? earlier : corruption("checksum mismatch on every copy");
  for (std::size_t i = first; i < stripes.size(); ++i) {
    const Stripe& st = stripes[i];
    Status io = devices_[st.device]->read(st.offset + loc->within, out);
    if (!io.is_ok()) {
      last = io;
      bad.push_back(i);
      continue;
    }
    if (!verify(out)) {
      ++checksum_failures_;
      bad.push_back(i);
      continue;
    }
    for (std::size_t b : bad) {  // repair: write the good copy over each bad one
      if (!repair_) break;
      const Stripe& target = stripes[b];
      if (devices_[target.device]->write(target.offset + loc->within, out).is_ok()) ++repairs_;
    }
    return Status::ok();
  }
  ++unrecoverable_;
  if (last.code() == errc::corruption)
    return corruption("every copy of " + std::string(s == space::metadata ? "metadata" : "data") +
                      " at logical offset " + std::to_string(offset) + " fails its checksum");
  return last;
}

Status ChunkMap::read_runs(space s, std::span<const Run> runs, const RunVerifier& verify) {
  // Per device: the ranges of copy 0 and which run each one is. Kept per thread.
  thread_local std::vector<std::vector<BlockDevice::ReadRange>> ranges;
  thread_local std::vector<std::vector<std::size_t>> owner;
  thread_local std::vector<Status> failed;  // copy 0's I/O error, per run
  failed.assign(runs.size(), Status::ok());
  {
    std::shared_lock lock(mutex_);
    ranges.resize(devices_.size());
    owner.resize(devices_.size());
    for (std::size_t d = 0; d < devices_.size(); ++d) {
      ranges[d].clear();
      owner[d].clear();
    }
    for (std::size_t i = 0; i < runs.size(); ++i) {
      auto loc = locate(s, runs[i].offset, runs[i].out.size());
      if (!loc) return loc.status();
      const Stripe& st = loc->chunk->stripes[0];
      ranges[st.device].push_back({st.offset + loc->within, runs[i].out});
      owner[st.device].push_back(i);
    }
    for (std::size_t d = 0; d < devices_.size(); ++d) {
      for (std::size_t pos = 0; pos < ranges[d].size();) {
        std::size_t done = 0;
        Status st = devices_[d]->read_many(std::span(ranges[d]).subspan(pos), done);
        if (st.is_ok()) break;
        failed[owner[d][pos + done]] = st;
        pos += done + 1;
      }
    }
  }
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const bool io_failed = !failed[i].is_ok();
    if (!io_failed && verify(i, runs[i].out)) continue;
    auto check = [&](std::span<const std::byte> bytes) { return verify(i, bytes); };
    SNAPSTORE_RETURN_IF_ERROR(io_failed ? read_copies(s, runs[i].offset, runs[i].out, check, 1, failed[i])
                                        : read(s, runs[i].offset, runs[i].out, check));
  }
  return Status::ok();
}

Status ChunkMap::write(space s, std::uint64_t offset, std::span<const std::byte> data) {
  std::shared_lock lock(mutex_);
  auto loc = locate(s, offset, data.size());
  if (!loc) return loc.status();
  for (const Stripe& st : loc->chunk->stripes)
    SNAPSTORE_RETURN_IF_ERROR(devices_[st.device]->write(st.offset + loc->within, data));
  return Status::ok();
}

Status ChunkMap::flush() {
  for (const auto& d : devices_) SNAPSTORE_RETURN_IF_ERROR(d->flush());
  return Status::ok();
}

}  // namespace snapstore
