// Metadata room in a full pool (pool.h invariant 4): once the data space has taken every
// chunk it may, a transaction must still be able to shadow all of the metadata in use,
// so that overwrites commit because of the timer or free data, not because copy-on-write
// of the metadata ran out of blocks. Small chunks (FormatOptions::chunk_size) make a
// small pool hold as many metadata chunks as a large pool with its default chunks.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <random>

#include "pool_fixture.h"
#include "store/chunk_map.h"

namespace snapstore {
namespace {

constexpr std::uint32_t bs = 4096;
constexpr std::uint64_t origin_size = 48 << 20;
constexpr std::uint64_t chunk_size = 256 << 10;  // 64 metadata blocks
constexpr std::uint64_t piece = 1 << 20;

class PoolRoomTest : public PoolFixture {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::off);
    device_ = std::make_shared<MemoryDevice>(pool_file_size_for(origin_size), "room");
    FormatOptions f;
    f.origin_size = origin_size;
    f.chunk_size = chunk_size;
    ASSERT_TRUE(Pool::format({device_}, f));
    model_.assign(origin_size, std::byte{0});
    ASSERT_NO_FATAL_FAILURE(open());
    ASSERT_EQ(pool_->superblock().chunk_size, chunk_size);
  }
  void TearDown() override {
    pool_.reset();
    spdlog::set_level(spdlog::level::info);
  }

  void flush() {  // a commit, as the timer makes (an NBD flush might only log)
    Status st = pool_->commit();
    ASSERT_TRUE(st) << st.to_string();
  }
  // Writes the whole origin in 1 MiB pieces with a commit every 2 MiB (as the commit
  // timer would during a fast sequential write): each transaction shadows little of the
  // metadata, which therefore never needs to grow much beyond what is in use.
  void write_origin(std::uint64_t seed) {
    for (std::uint64_t off = 0; off < origin_size; off += piece) {
      ASSERT_NO_FATAL_FAILURE(write_model(off, pattern(piece, seed + off / piece)));
      if (off / piece % 2 == 1) {
        ASSERT_NO_FATAL_FAILURE(flush());
      }
    }
    ASSERT_NO_FATAL_FAILURE(flush());
  }
  // A fully written origin, then its first 4 MiB written again and again in one
  // transaction: redirect-on-write needs a new block for every write while the old ones
  // come back only at the commit, so the data space grows into every chunk it may take,
  // while the transaction shadows only the few leaves that map those 4 MiB.
  void fill_the_pool() {
    ASSERT_NO_FATAL_FAILURE(write_origin(1000));
    const std::uint64_t device = pool_file_size_for(origin_size);
    for (std::uint64_t n = 0; n < device / piece; ++n)
      ASSERT_NO_FATAL_FAILURE(write_model(n % 4 * piece, pattern(piece, 3000 + n)));
    ASSERT_NO_FATAL_FAILURE(flush());
    const PoolStats s = pool_->stats();
    ASSERT_LT(s.unallocated_bytes, device / 8) << "the data space did not take the device";
  }
};

// Random single-block overwrites of a fully written origin, a flush after every `batch`:
// every commit beyond those flushes was forced by a write that found no room.
TEST_F(PoolRoomTest, RandomOverwritesOfAFullPoolDoNotForceCommits) {
  ASSERT_NO_FATAL_FAILURE(fill_the_pool());
  const PoolStats before = pool_->stats();
  std::mt19937_64 rng(7);
  constexpr unsigned rounds = 4, batch = 1500;
  for (unsigned r = 0; r < rounds; ++r) {
    for (unsigned i = 0; i < batch; ++i)
      ASSERT_NO_FATAL_FAILURE(
          write_model(rng() % (origin_size / bs) * bs, pattern(bs, r * batch + i)));
    ASSERT_NO_FATAL_FAILURE(flush());
  }
  const PoolStats after = pool_->stats();
  const std::uint64_t forced = after.commits - before.commits - rounds;
  EXPECT_EQ(forced, 0u) << "overwrites forced commits: metadata " << before.metadata_blocks_free
                        << " free of " << before.metadata_blocks << " before them, "
                        << after.metadata_blocks_free << " of " << after.metadata_blocks
                        << " after; " << after.data_blocks_free << " data blocks free";
  expect_model();
  close();
  expect_clean();
  ASSERT_NO_FATAL_FAILURE(open());
  expect_model();
}

}  // namespace
}  // namespace snapstore
