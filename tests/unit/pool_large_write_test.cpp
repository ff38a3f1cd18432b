// The largest requests (pool.h invariant 4): a single write as large as the daemon
// advertises (32 MiB), or a write of zeroes, succeeds on a pool that has the room once
// the blocks it replaces come back, even when the pool has less free room than the
// request; a pool that really is full refuses it cleanly; and every refusal is logged,
// rate-limited.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "pool_fixture.h"

namespace snapstore {
namespace {

constexpr std::uint32_t bs = 4096;
constexpr std::uint64_t mib = 1 << 20;
constexpr std::uint64_t largest_request = 32 * mib;  // PoolVolume::block_sizes' maximum
constexpr std::uint64_t smallest_device = 8 * mib;   // the least Pool::format accepts

class PoolLargeWriteTest : public PoolFixture {
 protected:
  void SetUp() override { spdlog::set_level(spdlog::level::off); }
  void TearDown() override {
    pool_.reset();
    spdlog::set_level(spdlog::level::info);
  }

  // A new pool as the daemon makes it for `origin_size` bytes (pool_file_size_for), or
  // on `device_size` bytes with the origin format gives it.
  void new_pool(std::uint64_t device_size) {
    ASSERT_NO_FATAL_FAILURE(format_and_open(device_size, origin_size_for_devices(device_size)));
  }
  // Writes the whole origin once, in 1 MiB requests, committing every 8 MiB as the commit
  // timer would.
  void write_origin_once() {
    for (std::uint64_t off = 0; off < model_.size(); off += mib) {
      const std::uint64_t n = std::min<std::uint64_t>(mib, model_.size() - off);
      ASSERT_NO_FATAL_FAILURE(write_model(off, pattern(n, 100 + off / mib)));
      if ((off / mib) % 8 == 7) {
        ASSERT_TRUE(pool_->commit());
      }
    }
    ASSERT_TRUE(pool_->commit());
  }
  // Data blocks in use beyond what the origin maps: leaked, once everything committed.
  std::uint64_t unmapped_blocks_in_use() {
    const PoolStats s = pool_->stats();
    const std::uint64_t mapped = pool_->find_volume("origin")->mapped_blocks;
    return s.data_blocks - s.data_blocks_free - mapped;
  }
  // One request of `length` bytes at `offset` (whatever the pool has free), then the
  // same range once more, unaligned at both ends, and the origin reads back the model.
  void overwrite(std::uint64_t offset, std::uint64_t length, std::uint64_t seed) {
    const PoolStats before = pool_->stats();
    ASSERT_NO_FATAL_FAILURE(write_model(offset, pattern(length, seed)))
        << "data blocks free " << before.data_blocks_free << ", available "
        << before.data_blocks_available;
    ASSERT_NO_FATAL_FAILURE(write_model(offset + 1000, pattern(length - 2000, seed + 1)));
    expect_model();
  }
  // With a snapshot holding every block of the origin the pool has no room beside them,
  // or barely: one 32 MiB overwrite may succeed or fail part-way. Either way each block of
  // the range holds its old or its new data, the snapshot is intact, the pool writable.
  void overwrite_beside_a_snapshot() {
    ASSERT_TRUE(pool_->create_snapshot("origin", "holder", true));
    const std::vector<std::byte> data = pattern(largest_request, 3);
    Status st = pool_->write(origin_, 0, data, false);
    EXPECT_TRUE(st.is_ok() || st.code() == errc::no_space) << st.to_string();
    EXPECT_FALSE(pool_->read_only()) << pool_->failure().to_string();
    std::vector<std::byte> out(largest_request);
    ASSERT_TRUE(pool_->read(origin_, 0, out));
    std::uint64_t updated = 0;
    for (std::uint64_t off = 0; off < largest_request; off += bs) {
      const auto block = out.begin() + static_cast<long>(off);
      const bool is_new = std::equal(block, block + bs, data.begin() + static_cast<long>(off));
      const bool is_old = std::equal(block, block + bs, model_.begin() + static_cast<long>(off));
      ASSERT_TRUE(is_new || is_old)
          << "block " << off / bs << " holds neither its old nor its new data";
      updated += is_new ? 1 : 0;
    }
    std::printf("beside a snapshot: %s, %llu of %llu blocks new\n", st.to_string().c_str(),
                static_cast<unsigned long long>(updated),
                static_cast<unsigned long long>(largest_request / bs));
    auto holder = pool_->find_volume("holder");
    ASSERT_TRUE(holder);
    std::vector<std::byte> held(model_.size());
    ASSERT_TRUE(pool_->read(holder->id, 0, held));
    EXPECT_TRUE(held == model_) << "the snapshot changed";
  }
  // Commits, checks nothing leaked, closes, checks the pool offline, and reopens it.
  void expect_clean_across_reopen() {
    ASSERT_TRUE(pool_->commit());
    EXPECT_EQ(unmapped_blocks_in_use(), 0u);
    ASSERT_NO_FATAL_FAILURE(reopen());
    expect_model();
  }
};

// The smallest pool format makes. Its origin is larger than its data space, so the
// request is two thirds of the data space, written once and then overwritten in one
// request while only a third is free; then the same range gets allocated zeroes in one
// request; then, with the pool full to the last block, an unaligned unmap that must zero
// its edges (a WRITE_ZEROES that may unmap) makes room for the edges itself.
TEST_F(PoolLargeWriteTest, RequestsLargerThanTheFreeRoomOnTheSmallestPool) {
  ASSERT_NO_FATAL_FAILURE(new_pool(smallest_device));
  const std::uint64_t capacity = pool_->stats().data_blocks_available;
  const std::uint64_t length = std::min<std::uint64_t>(capacity * 2 / 3 * bs, model_.size());
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(length, 5)));
  ASSERT_TRUE(pool_->commit());
  const PoolStats room = pool_->stats();
  std::printf(
      "smallest pool: %llu MiB device, %llu KiB origin, %llu data blocks in all; "
      "a %llu KiB overwrite with %llu blocks free\n",
      static_cast<unsigned long long>(smallest_device / mib),
      static_cast<unsigned long long>(model_.size() >> 10),
      static_cast<unsigned long long>(capacity), static_cast<unsigned long long>(length >> 10),
      static_cast<unsigned long long>(room.data_blocks_available));
  ASSERT_LT(room.data_blocks_available * bs, length);
  ASSERT_NO_FATAL_FAILURE(overwrite(0, length, 7));
  ASSERT_TRUE(pool_->commit());
  Status st = pool_->write_zeroes(origin_, 0, length, false);
  ASSERT_TRUE(st) << st.to_string();
  std::fill_n(model_.begin(), length, std::byte{0});
  ASSERT_NO_FATAL_FAILURE(expect_clean_across_reopen());
  // Edges with data, then every last block taken, by single blocks after the range.
  ASSERT_NO_FATAL_FAILURE(write_model(0, pattern(bs, 70)));
  ASSERT_NO_FATAL_FAILURE(write_model(length - bs, pattern(bs, 71)));
  for (std::uint64_t off = length; off < model_.size(); off += bs) {
    const std::vector<std::byte> b = pattern(bs, off);
    if (!pool_->write(origin_, off, b, false)) break;
    std::copy(b.begin(), b.end(), model_.begin() + static_cast<long>(off));
  }
  ASSERT_TRUE(pool_->commit());
  ASSERT_EQ(pool_->stats().data_blocks_available, 0u);
  st = pool_->unmap(origin_, 100, length - 200, false, /*edges_required=*/true);
  ASSERT_TRUE(st) << st.to_string();
  std::fill_n(model_.begin() + 100, length - 200, std::byte{0});
  expect_model();
  ASSERT_NO_FATAL_FAILURE(expect_clean_across_reopen());
}

// The report: new pools of 50 to 80 MiB origins, and the smallest default pool that
// holds a 32 MiB request (a 32 MiB origin). After the origin is written once, one 32 MiB
// overwrite, then the same unaligned, then 32 MiB of allocated zeroes, then a FUA write;
// last, one beside a snapshot that holds what it replaces.
class PoolLargeWriteSizesTest : public PoolLargeWriteTest,
                                public ::testing::WithParamInterface<std::uint64_t> {};

TEST_P(PoolLargeWriteSizesTest, LargestRequestOverwritesAWrittenOrigin) {
  const std::uint64_t origin = GetParam() * mib;
  ASSERT_NO_FATAL_FAILURE(new_pool(pool_file_size_for(origin)));
  ASSERT_EQ(model_.size(), origin);
  ASSERT_NO_FATAL_FAILURE(write_origin_once());
  const PoolStats room = pool_->stats();
  std::printf("%llu MiB origin on %llu MiB: %llu MiB of data available before the overwrite\n",
              static_cast<unsigned long long>(GetParam()),
              static_cast<unsigned long long>(pool_file_size_for(origin) / mib),
              static_cast<unsigned long long>(room.data_blocks_available * bs / mib));
  ASSERT_NO_FATAL_FAILURE(overwrite((origin - largest_request) / 2 / bs * bs, largest_request, 9));
  ASSERT_TRUE(pool_->write_zeroes(origin_, origin - largest_request, largest_request, false));
  std::fill(model_.end() - static_cast<long>(largest_request), model_.end(), std::byte{0});
  expect_model();
  ASSERT_NO_FATAL_FAILURE(expect_clean_across_reopen());
  // And once more after the reopen, with FUA.
  const std::vector<std::byte> data = pattern(largest_request, 11);
  Status st = pool_->write(origin_, 0, data, /*fua=*/true);
  ASSERT_TRUE(st) << st.to_string();
  std::copy(data.begin(), data.end(), model_.begin());
  ASSERT_NO_FATAL_FAILURE(expect_clean_across_reopen());
  ASSERT_NO_FATAL_FAILURE(overwrite_beside_a_snapshot());
  close();
  expect_clean();
}

INSTANTIATE_TEST_SUITE_P(OriginMiB, PoolLargeWriteSizesTest, ::testing::Values(32, 50, 64, 80),
                         [](const auto& info) { return std::to_string(info.param) + "MiB"; });

// spdlog's default logger writes into a ring buffer while it lives.
class CapturedLog {
 public:
  CapturedLog() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64)) {
    previous_ = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>("captured", sink_);
    logger->set_level(spdlog::level::warn);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::vector<std::string> lines() { return sink_->last_formatted(); }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

// A pool that really is full: a snapshot holds every block the origin had, and the
// blocks written since took the rest. A 32 MiB overwrite of a range the snapshot shares
// is refused at once (nothing written, nothing leaked, the pool writable), and the
// refusals are logged with the volume and the space left, one line per interval with a
// count of those held back.
TEST_F(PoolLargeWriteTest, RealNoSpaceFailsCleanlyAndIsLoggedRateLimited) {
  PoolOptions options = quiet_options();
  options.no_space_log_interval = std::chrono::milliseconds(300);
  const std::uint64_t origin = 80 * mib;
  ASSERT_NO_FATAL_FAILURE(format_and_open(pool_file_size_for(origin), origin, options));
  ASSERT_NO_FATAL_FAILURE(write_origin_once());
  ASSERT_TRUE(pool_->create_snapshot("origin", "holder", true));
  const std::vector<std::byte> held = model_;
  std::uint64_t filled = 0;  // single blocks from the start, until the pool is full
  while (pool_->write(origin_, filled, pattern(bs, 900 + filled / bs), false)) filled += bs;
  for (std::uint64_t off = 0; off < filled; off += bs) {
    const std::vector<std::byte> b = pattern(bs, 900 + off / bs);
    std::copy(b.begin(), b.end(), model_.begin() + static_cast<long>(off));
  }
  ASSERT_LT(filled, origin - largest_request);
  ASSERT_TRUE(pool_->commit());
  std::this_thread::sleep_for(std::chrono::milliseconds(350));  // the fill's refusal was logged
  const PoolStats before = pool_->stats();
  const std::uint64_t device_writes = device_->write_count();
  CapturedLog log;
  const std::vector<std::byte> data = pattern(largest_request, 3);
  const std::uint64_t shared = origin - largest_request;  // a range only the snapshot's blocks map
  for (int i = 0; i < 5; ++i) {
    Status st = pool_->write(origin_, shared, data, false);
    EXPECT_EQ(st.code(), errc::no_space) << st.to_string();
  }
  EXPECT_EQ(pool_->write_zeroes(origin_, shared, largest_request, false).code(), errc::no_space);
  EXPECT_EQ(device_->write_count(), device_writes) << "a refused request reached the device";
  ASSERT_EQ(log.lines().size(), 1u) << "refusals within the interval are not held back";
  const std::string line = log.lines()[0];
  std::printf("logged: %s", line.c_str());
  for (const char* part :
       {"'origin'", "write", "33554432", "data blocks", "free", "available", "metadata"})
    EXPECT_NE(line.find(part), std::string::npos) << part << " missing from: " << line;
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  EXPECT_EQ(pool_->write(origin_, shared + 1, data, false).code(), errc::no_space);
  ASSERT_EQ(log.lines().size(), 2u);
  EXPECT_NE(log.lines()[1].find("5 more refused"), std::string::npos) << log.lines()[1];
  EXPECT_FALSE(pool_->read_only()) << pool_->failure().to_string();
  ASSERT_TRUE(pool_->commit());
  EXPECT_EQ(pool_->stats().data_blocks_free, before.data_blocks_free)
      << "refused writes kept blocks";
  expect_model();
  auto holder = pool_->find_volume("holder");
  ASSERT_TRUE(holder);
  std::vector<std::byte> out(origin);
  ASSERT_TRUE(pool_->read(holder->id, 0, out));
  EXPECT_TRUE(out == held) << "the snapshot changed";
  close();
  expect_clean();
}

}  // namespace
}  // namespace snapstore
