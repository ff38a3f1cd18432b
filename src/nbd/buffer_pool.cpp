// Request buffers by capacity class, with a bounded set kept idle. See buffer_pool.h.
#include "nbd/buffer_pool.h"

#include <algorithm>
#include <bit>

namespace snapstore::nbd {

std::size_t BufferPool::capacity_for(std::size_t bytes) {
  if (bytes == 0) return 0;
  if (bytes < huge_buffer_threshold) {
    const std::size_t small = std::max(min_capacity, std::bit_ceil(bytes));
    if (small < huge_buffer_threshold) return small;
  }
  return PageAlignedAllocator<std::byte>::huge_bytes(std::max(bytes, huge_buffer_threshold));
}

PageAlignedBuffer BufferPool::take(std::size_t bytes) {
  const std::size_t capacity = capacity_for(bytes);
  if (capacity == 0) return {};
  {
    std::lock_guard lock(mutex_);
    auto it = idle_.find(capacity);
    if (it != idle_.end() && !it->second.empty()) {
      PageAlignedBuffer buffer = std::move(it->second.back());
      it->second.pop_back();
      idle_bytes_ -= capacity;
      return buffer;
    }
  }
  return PageAlignedBuffer(capacity);
}

void BufferPool::give(PageAlignedBuffer buffer) {
  const std::size_t capacity = buffer.capacity();
  if (capacity == 0 || capacity > max_idle_capacity) return;  // freed here, unlocked
  std::lock_guard lock(mutex_);
  if (idle_bytes_ + capacity > idle_limit_) return;  // freed after the unlock
  idle_[capacity].push_back(std::move(buffer));
  idle_bytes_ += capacity;
}

std::size_t BufferPool::idle_bytes() const {
  std::lock_guard lock(mutex_);
  return idle_bytes_;
}

}  // namespace snapstore::nbd
