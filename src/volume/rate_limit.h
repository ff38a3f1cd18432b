// RateLimit: lets an event through at most once per interval and counts the ones it held
// back, for log lines that clients could otherwise repeat without bound (a client retrying
// a write on a full pool must not flood the log).
//
// Invariants:
//  1. allow() returns true for the first event, then for the first event at least
//     `interval` after the last one it let through.
//  2. Every event it holds back is counted once, and that count is handed to the next
//     event it lets through (then starts again from zero).
//  3. Thread-safe: any thread may call allow().
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

namespace snapstore {

class RateLimit {
 public:
  using clock = std::chrono::steady_clock;

  explicit RateLimit(clock::duration interval) : interval_(interval) {}

  // Whether to report this event. If so, `suppressed` is set to the number of events
  // held back since the last one reported.
  bool allow(std::uint64_t& suppressed) {
    std::lock_guard lock(mutex_);
    const clock::time_point now = clock::now();
    if (last_ && now - *last_ < interval_) {
      ++held_back_;
      return false;
    }
    last_ = now;
    suppressed = held_back_;
    held_back_ = 0;
    return true;
  }

 private:
  const clock::duration interval_;
  std::mutex mutex_;
  std::optional<clock::time_point> last_;  // when the last event was let through
  std::uint64_t held_back_ = 0;
};

}  // namespace snapstore
