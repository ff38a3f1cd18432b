// MemoryBudget: how many bytes the NBD server may hold for requests (write payloads being
// received or written, read replies being read or sent), for the whole server and per
// connection, and the wait for room when they are taken.
//
// A connection opens one Account (its cap); a request takes one Grant for all the bytes it
// needs, before any of them is allocated, and the Grant gives them back when destroyed.
//
// Invariants:
//  1. held() <= limit(), and an account's held() <= its cap() <= limit(), at every moment.
//  2. A grant is taken whole, in one step: nothing is held while waiting, so waits cannot
//     deadlock among themselves. A request for at most its account's cap is granted as
//     soon as holders have given enough back (and the waiters before it were served);
//     one for more than the cap is refused at once (errc::invalid_argument).
//  3. Waiters are served in arrival order: a waiter that fits its account's cap but not
//     the server's limit holds back every later waiter, so a large request is never
//     starved by a stream of small ones; a waiter held back by its own account's cap
//     holds back only the later waiters of that account.
//  4. A wait ends early when its stop_token is stopped (the connection is closing): the
//     result is errc::busy and nothing is held.
//  5. Thread-safe: one mutex guards every count and the queue of waiters. The budget
//     outlives its accounts' grants; an account outlives its grants; neither destructor
//     touches the budget.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <stop_token>

#include "snapstore/status.h"

namespace snapstore::nbd {

class MemoryBudget {
 public:
  // One connection's share. Its counts are guarded by the budget's mutex.
  class Account {
   public:
    // cap is clamped to the budget's limit (invariant 1).
    Account(MemoryBudget& budget, std::size_t cap);
    Account(const Account&) = delete;
    Account& operator=(const Account&) = delete;
    std::size_t cap() const { return cap_; }
    std::size_t held() const;

   private:
    friend class MemoryBudget;
    MemoryBudget& budget_;
    const std::size_t cap_;
    std::size_t held_ = 0;           // guarded by budget_.mutex_
    std::uint64_t blocked_pass_ = 0;  // guarded by budget_.mutex_: see grant_waiters_locked
  };

  // Bytes granted to one account; given back on destruction or release().
  class Grant {
   public:
    Grant() = default;
    Grant(Grant&& other) noexcept;
    Grant& operator=(Grant&& other) noexcept;
    ~Grant() { release(); }
    std::size_t bytes() const { return bytes_; }
    void release();

   private:
    friend class MemoryBudget;
    Grant(Account* account, std::size_t bytes) : account_(account), bytes_(bytes) {}
    Account* account_ = nullptr;
    std::size_t bytes_ = 0;
  };

  explicit MemoryBudget(std::size_t limit) : limit_(limit) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Waits until `bytes` fit (invariants 2-4). 0 bytes is an empty grant at once.
  Result<Grant> acquire(Account& account, std::size_t bytes, std::stop_token stop = {});

  std::size_t limit() const { return limit_; }
  std::size_t held() const;
  std::size_t waiting() const;  // requests waiting for room

 private:
  struct Waiter {
    Account* account;
    std::size_t bytes;
    bool granted = false;
  };
  void take_locked(Account& account, std::size_t bytes);
  bool fits_locked(const Account& account, std::size_t bytes) const;
  void grant_waiters_locked();
  void release(Account& account, std::size_t bytes);

  const std::size_t limit_;
  mutable std::mutex mutex_;
  std::condition_variable_any granted_;  // notified whenever a waiter was granted
  std::size_t held_ = 0;                 // guarded by mutex_
  std::list<Waiter*> waiters_;           // guarded by mutex_: in arrival order
  std::uint64_t pass_ = 0;               // guarded by mutex_: grant_waiters_locked runs
};

}  // namespace snapstore::nbd
