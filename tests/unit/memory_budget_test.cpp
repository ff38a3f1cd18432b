// MemoryBudget (nbd/memory_budget.h): grants within the limit and the connection's cap,
// waits that end when bytes come back or the wait is stopped, arrival order, and many
// threads that never deadlock nor exceed the limit.
#include "nbd/memory_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <thread>
#include <vector>

namespace snapstore::nbd {
namespace {

using namespace std::chrono_literals;
using Grant = MemoryBudget::Grant;
using Account = MemoryBudget::Account;

constexpr std::size_t mib = 1 << 20;

Grant take(MemoryBudget& budget, Account& account, std::size_t bytes) {
  auto g = budget.acquire(account, bytes);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  return g.is_ok() ? std::move(g).value() : Grant{};
}

// Starts acquire() on another thread; the future holds the grant once it is given.
std::future<Result<Grant>> wait_for(MemoryBudget& budget, Account& account, std::size_t bytes,
                                    std::stop_token stop = {}) {
  return std::async(std::launch::async, [&budget, &account, bytes, stop] {
    return budget.acquire(account, bytes, stop);
  });
}

template <typename T>
bool still_waiting(std::future<T>& f) {
  return f.wait_for(50ms) == std::future_status::timeout;
}

// Waits until `n` requests are queued, so that arrival order is known.
bool queued(const MemoryBudget& budget, std::size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (budget.waiting() != n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(MemoryBudget, GrantsWithinTheLimitAreImmediateAndGivenBackOnDestruction) {
  MemoryBudget budget(10 * mib);
  Account a(budget, 8 * mib), b(budget, 8 * mib);
  {
    Grant one = take(budget, a, 3 * mib);
    Grant two = take(budget, b, 5 * mib);
    EXPECT_EQ(budget.held(), 8 * mib);
    EXPECT_EQ(a.held(), 3 * mib);
    EXPECT_EQ(b.held(), 5 * mib);
    Grant moved = std::move(one);
    EXPECT_EQ(one.bytes(), 0u);
    EXPECT_EQ(moved.bytes(), 3 * mib);
    two.release();
    EXPECT_EQ(budget.held(), 3 * mib);
  }
  EXPECT_EQ(budget.held(), 0u);
  EXPECT_EQ(a.held(), 0u);
  EXPECT_EQ(take(budget, a, 0).bytes(), 0u);
}

TEST(MemoryBudget, AWaiterGetsItsBytesOnceEnoughAreGivenBack) {
  MemoryBudget budget(10 * mib);
  Account a(budget, 10 * mib), b(budget, 10 * mib);
  Grant held = take(budget, a, 7 * mib);
  auto waiter = wait_for(budget, b, 6 * mib);
  ASSERT_TRUE(still_waiting(waiter)) << "granted beyond the limit";
  EXPECT_EQ(budget.held(), 7 * mib);
  held.release();
  ASSERT_EQ(waiter.wait_for(5s), std::future_status::ready);
  auto got = waiter.get();
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_EQ(got->bytes(), 6 * mib);
  EXPECT_EQ(budget.held(), 6 * mib);
}

TEST(MemoryBudget, TheConnectionCapHoldsBackOnlyThatConnection) {
  MemoryBudget budget(100 * mib);
  Account capped(budget, 4 * mib), other(budget, 64 * mib);
  Grant held = take(budget, capped, 3 * mib);
  auto over_cap = wait_for(budget, capped, 2 * mib);
  ASSERT_TRUE(still_waiting(over_cap)) << "the connection went over its cap";
  ASSERT_TRUE(queued(budget, 1));
  Grant others = take(budget, other, 32 * mib);  // not held back by the capped waiter
  EXPECT_EQ(others.bytes(), 32 * mib);
  held.release();
  ASSERT_EQ(over_cap.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(over_cap.get().is_ok());
}

TEST(MemoryBudget, WaitersAreServedInArrivalOrder) {
  MemoryBudget budget(10 * mib);
  Account a(budget, 10 * mib), b(budget, 10 * mib), c(budget, 10 * mib);
  Grant held = take(budget, a, 8 * mib);
  auto large = wait_for(budget, b, 9 * mib);
  ASSERT_TRUE(queued(budget, 1));
  // 1 MiB would fit now, but the large request came first and must not be starved.
  auto small = wait_for(budget, c, 1 * mib);
  ASSERT_TRUE(queued(budget, 2));
  EXPECT_TRUE(still_waiting(small)) << "a later small request overtook a waiting large one";
  held.release();
  ASSERT_EQ(large.wait_for(5s), std::future_status::ready);
  auto large_grant = large.get();
  ASSERT_TRUE(large_grant.is_ok());
  ASSERT_EQ(small.wait_for(5s), std::future_status::ready);  // 9 + 1 fit together
  auto small_grant = small.get();
  EXPECT_TRUE(small_grant.is_ok());
  EXPECT_EQ(budget.held(), 10 * mib);
}

TEST(MemoryBudget, AStoppedWaitHoldsNothingAndLetsTheNextOneThrough) {
  MemoryBudget budget(10 * mib);
  Account a(budget, 10 * mib), b(budget, 10 * mib), c(budget, 10 * mib);
  Grant held = take(budget, a, 6 * mib);
  std::stop_source closing;
  auto stopped = wait_for(budget, b, 8 * mib, closing.get_token());
  ASSERT_TRUE(queued(budget, 1));
  auto behind = wait_for(budget, c, 4 * mib);  // fits, but waits behind the 8 MiB request
  ASSERT_TRUE(queued(budget, 2));
  EXPECT_TRUE(still_waiting(behind));
  closing.request_stop();
  ASSERT_EQ(stopped.wait_for(5s), std::future_status::ready);
  auto result = stopped.get();
  ASSERT_FALSE(result.is_ok());
  EXPECT_EQ(result.status().code(), errc::busy);
  ASSERT_EQ(behind.wait_for(5s), std::future_status::ready) << "the stopped waiter blocked it";
  EXPECT_TRUE(behind.get().is_ok());
  EXPECT_EQ(b.held(), 0u);
  EXPECT_EQ(budget.waiting(), 0u);
}

TEST(MemoryBudget, MoreThanTheCapIsRefusedAtOnce) {
  MemoryBudget budget(64 * mib);
  Account a(budget, 32 * mib), unlimited(budget, 1024 * mib);
  EXPECT_EQ(unlimited.cap(), 64 * mib) << "a cap is clamped to the limit";
  auto r = budget.acquire(a, 32 * mib + 1);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), errc::invalid_argument);
  EXPECT_EQ(budget.held(), 0u);
  EXPECT_TRUE(budget.acquire(a, 32 * mib).is_ok()) << "the cap itself is always grantable";
}

// Eight connections with two threads each take grants of random sizes up to their cap, hold
// them briefly and give them back; every request is granted in the end, and the limit and
// caps hold throughout.
TEST(MemoryBudget, ManyThreadsNeverDeadlockNorExceedTheLimits) {
  constexpr std::size_t limit = 64 * mib, cap = 32 * mib;
  constexpr int threads_count = 16, rounds = 200;
  MemoryBudget budget(limit);
  std::vector<std::unique_ptr<Account>> accounts;
  for (int i = 0; i < threads_count / 2; ++i)
    accounts.push_back(std::make_unique<Account>(budget, cap));
  std::atomic<bool> over{false};
  std::atomic<int> granted{0};
  std::stop_source give_up;  // ends the waits if the test deadlocks, so it can report it
  std::vector<std::thread> threads;
  for (int t = 0; t < threads_count; ++t) {
    threads.emplace_back([&, t] {
      Account& account = *accounts[t / 2];
      std::mt19937 rng(static_cast<unsigned>(t));
      std::uniform_int_distribution<std::size_t> size(1, cap);
      for (int i = 0; i < rounds; ++i) {
        auto g = budget.acquire(account, size(rng), give_up.get_token());
        if (!g.is_ok()) return;
        if (budget.held() > limit || account.held() > cap) over = true;
        ++granted;
        if (i % 16 == 0) std::this_thread::sleep_for(100us);
      }
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (granted < threads_count * rounds && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  give_up.request_stop();
  for (auto& t : threads) t.join();
  EXPECT_EQ(granted, threads_count * rounds) << "deadlocked: not every request was granted";
  EXPECT_FALSE(over) << "the limit or a cap was exceeded";
  EXPECT_EQ(budget.held(), 0u);
  EXPECT_EQ(budget.waiting(), 0u);
}

}  // namespace
}  // namespace snapstore::nbd
