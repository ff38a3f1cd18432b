// PoolFixture: a pool formatted on one MemoryDevice, with a byte model of its origin, for
// the pool test suites (I/O, faults, space, snapshots). Test bodies reach the pool only
// through pool_, and check it offline with expect_clean() once it is closed.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "store/memory_device.h"
#include "volume/pool.h"
#include "volume/pool_checker.h"

namespace snapstore {

// Deterministic pseudo-random bytes: the same (n, seed) always gives the same bytes.
inline std::vector<std::byte> pattern(std::size_t n, std::uint64_t seed = 0) {
  std::vector<std::byte> v(n);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t x = rng();
    std::memcpy(v.data() + i, &x, std::min<std::size_t>(8, n - i));
  }
  return v;
}

// Commits only on commit(), flush() (which may append to the intent log instead) and
// close: tests decide when a transaction ends.
inline PoolOptions quiet_options() {
  PoolOptions o;
  o.commit_interval = std::chrono::hours(24);
  o.early_commit = false;
  return o;
}

inline std::string problems_of(const CheckReport& r) {
  std::string s;
  for (const auto& p : r.problems) s += "\n  " + p;
  for (const auto& p : r.crash_explainable) s += "\n  " + p;
  return s;
}

class PoolFixture : public ::testing::Test {
 protected:
  // Formats a fresh device of device_size with an origin of origin_size and opens it.
  void format_and_open(std::uint64_t device_size, std::uint64_t origin_size,
                       PoolOptions options = quiet_options(), const std::string& name = "memory") {
    pool_.reset();
    device_ = std::make_shared<MemoryDevice>(device_size, name);
    FormatOptions f;
    f.origin_size = origin_size;
    ASSERT_TRUE(Pool::format({device_}, f));
    model_.assign(origin_size, std::byte{0});
    options_ = options;
    ASSERT_NO_FATAL_FAILURE(open(options));
  }
  void open(PoolOptions options) {
    auto p = Pool::open({device_}, options);
    ASSERT_TRUE(p) << p.status().to_string();
    pool_ = std::move(p).value();
    auto v = pool_->find_volume("origin");
    origin_ = v ? v->id : 0;  // a test may have renamed or deleted it
  }
  void open() { open(options_); }
  void close() {
    if (!pool_) return;
    Status st = pool_->close();
    EXPECT_TRUE(st) << st.to_string();
    pool_.reset();
  }
  // Closes, checks the pool offline, and opens it again.
  void reopen() {
    close();
    expect_clean();
    ASSERT_NO_FATAL_FAILURE(open());
  }
  CheckReport check() {
    EXPECT_FALSE(pool_) << "close the pool before checking";
    return check_pool({device_});
  }
  void expect_clean() {
    CheckReport r = check();
    EXPECT_TRUE(r.clean()) << problems_of(r);
  }
  std::vector<std::byte> read_origin(std::uint64_t offset, std::size_t n) {
    std::vector<std::byte> out(n);
    Status st = pool_->read(origin_, offset, out);
    EXPECT_TRUE(st) << st.to_string();
    return out;
  }
  // The origin and the model agree byte for byte.
  void expect_model() {
    EXPECT_TRUE(read_origin(0, model_.size()) == model_) << "the origin differs from the model";
  }
  void write_model(std::uint64_t offset, const std::vector<std::byte>& data) {
    Status st = pool_->write(origin_, offset, data, false);
    ASSERT_TRUE(st) << st.to_string();
    std::copy(data.begin(), data.end(), model_.begin() + static_cast<long>(offset));
  }
  void unmap_model(std::uint64_t offset, std::uint64_t length) {
    Status st = pool_->unmap(origin_, offset, length, false);
    ASSERT_TRUE(st) << st.to_string();
    std::fill_n(model_.begin() + static_cast<long>(offset), length, std::byte{0});
  }

  std::shared_ptr<MemoryDevice> device_;
  std::unique_ptr<Pool> pool_;
  std::uint64_t origin_ = 0;
  std::vector<std::byte> model_;
  PoolOptions options_ = quiet_options();
};

}  // namespace snapstore
