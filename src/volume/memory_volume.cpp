// MemoryVolume: bytes in a vector, a page bitmap for allocation. See memory_volume.h.
#include "volume/memory_volume.h"

#include <algorithm>
#include <cstring>

namespace snapstore {

MemoryVolume::MemoryVolume(MemoryVolumeOptions options)
    : options_(std::move(options)),
      bytes_(options_.size),
      allocated_((options_.size + page_size - 1) / page_size, false) {}

void MemoryVolume::inject_failure(volume_op op, Status status, int count) {
  std::lock_guard lock(fault_mutex_);
  faults_[op] = {std::move(status), count};
}

Status MemoryVolume::injected(volume_op op) {
  std::lock_guard lock(fault_mutex_);
  auto it = faults_.find(op);
  if (it == faults_.end()) return Status::ok();
  Status st = it->second.first;
  if (it->second.second > 0 && --it->second.second == 0) faults_.erase(it);
  return st;
}

Status MemoryVolume::read(std::uint64_t offset, std::span<std::byte> out) {
  SNAPSTORE_RETURN_IF_ERROR(injected(volume_op::read));
  std::shared_lock lock(mutex_);
  std::memcpy(out.data(), bytes_.data() + offset, out.size());
  return Status::ok();
}

Status MemoryVolume::write(std::uint64_t offset, std::span<const std::byte> data, bool fua) {
  SNAPSTORE_RETURN_IF_ERROR(injected(volume_op::write));
  std::unique_lock lock(mutex_);
  std::memcpy(bytes_.data() + offset, data.data(), data.size());
  for (std::uint64_t p = offset / page_size; p <= (offset + data.size() - 1) / page_size; ++p)
    allocated_[p] = true;
  note_fua(fua);
  return Status::ok();
}

Status MemoryVolume::flush() {
  SNAPSTORE_RETURN_IF_ERROR(injected(volume_op::flush));
  ++flushes_;
  return Status::ok();
}

void MemoryVolume::unmap(std::uint64_t offset, std::uint64_t length) {
  std::memset(bytes_.data() + offset, 0, length);
  const std::uint64_t first_whole = (offset + page_size - 1) / page_size;
  const std::uint64_t end_whole = (offset + length) / page_size;
  for (std::uint64_t p = first_whole; p < end_whole; ++p) allocated_[p] = false;
  if (offset + length == options_.size && end_whole < allocated_.size() &&
      first_whole <= end_whole)
    allocated_[end_whole] = false;  // the short last page, covered to the end
}

Status MemoryVolume::trim(std::uint64_t offset, std::uint64_t length, bool fua) {
  SNAPSTORE_RETURN_IF_ERROR(injected(volume_op::trim));
  std::unique_lock lock(mutex_);
  unmap(offset, length);
  note_fua(fua);
  return Status::ok();
}

Status MemoryVolume::write_zeroes(std::uint64_t offset, std::uint64_t length, bool may_unmap,
                                  bool /*fast_only*/, bool fua) {
  SNAPSTORE_RETURN_IF_ERROR(injected(volume_op::write_zeroes));
  std::unique_lock lock(mutex_);
  if (may_unmap) {
    unmap(offset, length);
  } else {
    std::memset(bytes_.data() + offset, 0, length);
    for (std::uint64_t p = offset / page_size; p <= (offset + length - 1) / page_size; ++p)
      allocated_[p] = true;
  }
  note_fua(fua);
  return Status::ok();
}

Result<std::vector<Extent>> MemoryVolume::block_status(std::uint64_t offset,
                                                       std::uint64_t length) {
  SNAPSTORE_RETURN_IF_ERROR(injected(volume_op::block_status));
  std::shared_lock lock(mutex_);
  std::vector<Extent> extents;
  std::uint64_t pos = offset;
  const std::uint64_t end = offset + length;
  while (pos < end) {
    const bool alloc = allocated_[pos / page_size];
    std::uint64_t next = std::min(end, (pos / page_size + 1) * page_size);
    while (next < end && allocated_[next / page_size] == alloc)
      next = std::min(end, next + page_size);
    const std::uint32_t flags = alloc ? 0 : (extent_hole | extent_zero);
    if (!extents.empty() && extents.back().flags == flags)
      extents.back().length += next - pos;
    else
      extents.push_back({next - pos, flags});
    pos = next;
  }
  return extents;
}

}  // namespace snapstore
