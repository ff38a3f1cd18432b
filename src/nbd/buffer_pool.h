// BufferPool: the buffers that NBD requests' payloads and read replies live in, shared by
// every connection of a server, with a few idle ones kept for the next request.
//
// take(bytes) hands out a PageAlignedBuffer of capacity_for(bytes): an idle one of that
// capacity when there is one, else a new allocation whose pages the kernel commits only as
// bytes are written into it. give() keeps a buffer for reuse, or frees it at once.
//
// Capacities (what a request of `bytes` costs, and what MemoryBudget is charged):
//   below huge_buffer_threshold: the next power of two, at least 4 KiB (4 KiB ... 256 KiB);
//   from huge_buffer_threshold:  a whole number of huge pages (2 MiB, 4 MiB, ... 32 MiB),
//                                which is what PageAlignedAllocator allocates (page_aligned.h).
//
// Invariants:
//  1. A buffer from take(bytes) has capacity() == capacity_for(bytes) >= bytes.
//  2. Idle buffers never add up to more than idle_limit bytes, and no idle buffer is larger
//     than max_idle_capacity: the 4 KiB and 1 MiB requests of a busy server reuse warm
//     buffers, a 32 MiB one gives its memory back as soon as it is done.
//  3. Thread-safe: one mutex guards the idle lists; allocating and freeing happen outside it.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

#include "nbd/page_aligned.h"

namespace snapstore::nbd {

class BufferPool {
 public:
  static constexpr std::size_t min_capacity = 4096;
  static constexpr std::size_t max_idle_capacity = std::size_t{4} << 20;

  explicit BufferPool(std::size_t idle_limit) : idle_limit_(idle_limit) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  static std::size_t capacity_for(std::size_t bytes);

  // An empty buffer for 0 bytes.
  PageAlignedBuffer take(std::size_t bytes);
  void give(PageAlignedBuffer buffer);

  std::size_t idle_bytes() const;
  std::size_t idle_limit() const { return idle_limit_; }

 private:
  const std::size_t idle_limit_;
  mutable std::mutex mutex_;
  // Guarded by mutex_: idle buffers by capacity, and their total.
  std::map<std::size_t, std::vector<PageAlignedBuffer>> idle_;
  std::size_t idle_bytes_ = 0;
};

}  // namespace snapstore::nbd
