// ServerMemory: the memory budget and the buffer pool that all connections of a server
// share. RequestMemory: what one request holds of them, a grant and (usually) a buffer.
//
// Invariants:
//  1. A request's bytes are granted before its buffer exists, for the buffer's whole
//     capacity (BufferPool::capacity_for): the buffers in use never add up to more than
//     the budget's limit, nor those of one connection to more than its account's cap.
//  2. Destroying a RequestMemory gives the buffer back to the pool first, then the bytes
//     back to the budget.
//  3. Idle buffers kept for reuse are bounded apart: at most idle_limit_for(limit) bytes.
//  4. RequestMemory is owned by one thread at a time; ServerMemory is thread-safe (its two
//     parts are) and must outlive every RequestMemory and Account made from it (sessions
//     share ownership of it for that).
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <stop_token>

#include "nbd/buffer_pool.h"
#include "nbd/memory_budget.h"

namespace snapstore::nbd {

struct ServerMemory {
  // Idle buffers kept for reuse: an eighth of the limit, at most 64 MiB.
  static std::size_t idle_limit_for(std::size_t limit) {
    return std::min(limit / 8, std::size_t{64} << 20);
  }
  explicit ServerMemory(std::size_t limit) : budget(limit), buffers(idle_limit_for(limit)) {}

  MemoryBudget budget;
  BufferPool buffers;
};

class RequestMemory {
 public:
  RequestMemory() = default;
  RequestMemory(RequestMemory&& other) noexcept = default;
  RequestMemory& operator=(RequestMemory&& other) noexcept;
  ~RequestMemory() { give_back(); }

  // Waits for budget for a buffer of `bytes`, then takes the buffer. Errors as
  // MemoryBudget::acquire: invalid_argument (more than the account's cap), busy (stopped).
  static Result<RequestMemory> buffer(ServerMemory& memory, MemoryBudget::Account& account,
                                      std::size_t bytes, std::stop_token stop);
  // Waits for budget for `bytes` that the request allocates by itself (a reply it builds).
  static Result<RequestMemory> reserve(ServerMemory& memory, MemoryBudget::Account& account,
                                       std::size_t bytes, std::stop_token stop);

  // The first n bytes of the buffer (n <= its capacity), or the whole buffer.
  std::span<std::byte> bytes(std::size_t n) const { return buffer_.first(n); }
  std::span<std::byte> whole() const { return buffer_.first(buffer_.capacity()); }
  std::size_t granted() const { return grant_.bytes(); }

 private:
  void give_back();

  BufferPool* pool_ = nullptr;
  PageAlignedBuffer buffer_;
  MemoryBudget::Grant grant_;
};

}  // namespace snapstore::nbd
