// Byte budget with per-account caps and an arrival-order queue. See memory_budget.h.
#include "nbd/memory_budget.h"

#include <algorithm>
#include <string>
#include <utility>

namespace snapstore::nbd {

MemoryBudget::Account::Account(MemoryBudget& budget, std::size_t cap)
    : budget_(budget), cap_(std::min(cap, budget.limit())) {}

std::size_t MemoryBudget::Account::held() const {
  std::lock_guard lock(budget_.mutex_);
  return held_;
}

MemoryBudget::Grant::Grant(Grant&& other) noexcept
    : account_(std::exchange(other.account_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

MemoryBudget::Grant& MemoryBudget::Grant::operator=(Grant&& other) noexcept {
  if (this != &other) {
    release();
    account_ = std::exchange(other.account_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void MemoryBudget::Grant::release() {
  if (account_ && bytes_) account_->budget_.release(*account_, bytes_);
  account_ = nullptr;
  bytes_ = 0;
}

Result<MemoryBudget::Grant> MemoryBudget::acquire(Account& account, std::size_t bytes,
                                                  std::stop_token stop) {
  if (bytes == 0) return Grant{};
  if (bytes > account.cap_)
    return invalid_argument("a request for " + std::to_string(bytes) +
                            " bytes exceeds the connection's memory limit of " +
                            std::to_string(account.cap_) + " bytes");
  std::unique_lock lock(mutex_);
  if (waiters_.empty() && fits_locked(account, bytes)) {
    take_locked(account, bytes);
    return Grant(&account, bytes);
  }
  Waiter waiter{&account, bytes};
  const auto place = waiters_.insert(waiters_.end(), &waiter);
  grant_waiters_locked();
  granted_.wait(lock, stop, [&] { return waiter.granted; });
  if (waiter.granted) return Grant(&account, bytes);
  waiters_.erase(place);
  grant_waiters_locked();  // it may have held back the waiters after it
  return busy("the connection is closing");
}

std::size_t MemoryBudget::held() const {
  std::lock_guard lock(mutex_);
  return held_;
}

std::size_t MemoryBudget::waiting() const {
  std::lock_guard lock(mutex_);
  return waiters_.size();
}

void MemoryBudget::take_locked(Account& account, std::size_t bytes) {
  account.held_ += bytes;
  held_ += bytes;
}

bool MemoryBudget::fits_locked(const Account& account, std::size_t bytes) const {
  return account.held_ + bytes <= account.cap_ && held_ + bytes <= limit_;
}

// Grants waiters front to back (invariant 3). An account whose waiter does not fit its cap
// is marked blocked for this pass, so its later waiters wait too; the first waiter that
// fits its cap but not the limit ends the pass.
void MemoryBudget::grant_waiters_locked() {
  const std::uint64_t pass = ++pass_;
  bool any = false;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    Waiter& w = **it;
    Account& a = *w.account;
    if (a.blocked_pass_ == pass) {
      ++it;
    } else if (a.held_ + w.bytes > a.cap_) {
      a.blocked_pass_ = pass;
      ++it;
    } else if (held_ + w.bytes > limit_) {
      break;
    } else {
      take_locked(a, w.bytes);
      w.granted = true;
      any = true;
      it = waiters_.erase(it);
    }
  }
  if (any) granted_.notify_all();
}

void MemoryBudget::release(Account& account, std::size_t bytes) {
  std::lock_guard lock(mutex_);
  account.held_ -= bytes;
  held_ -= bytes;
  if (!waiters_.empty()) grant_waiters_locked();
}

}  // namespace snapstore::nbd
