// A request's grant and buffer, taken and given back in order. See request_memory.h.
#include "nbd/request_memory.h"

#include <utility>

namespace snapstore::nbd {

RequestMemory& RequestMemory::operator=(RequestMemory&& other) noexcept {
  if (this != &other) {
    give_back();
    pool_ = std::exchange(other.pool_, nullptr);
    buffer_ = std::exchange(other.buffer_, {});
    grant_ = std::move(other.grant_);
  }
  return *this;
}

Result<RequestMemory> RequestMemory::buffer(ServerMemory& memory, MemoryBudget::Account& account,
                                            std::size_t bytes, std::stop_token stop) {
  auto grant = memory.budget.acquire(account, BufferPool::capacity_for(bytes), std::move(stop));
  if (!grant) return grant.status();
  RequestMemory held;
  held.grant_ = std::move(grant).value();
  held.pool_ = &memory.buffers;
  held.buffer_ = memory.buffers.take(bytes);
  return held;
}

Result<RequestMemory> RequestMemory::reserve(ServerMemory& memory, MemoryBudget::Account& account,
                                             std::size_t bytes, std::stop_token stop) {
  auto grant = memory.budget.acquire(account, bytes, std::move(stop));
  if (!grant) return grant.status();
  RequestMemory held;
  held.grant_ = std::move(grant).value();
  return held;
}

void RequestMemory::give_back() {
  if (pool_ && buffer_.data()) pool_->give(std::exchange(buffer_, {}));
  grant_.release();
}

}  // namespace snapstore::nbd
