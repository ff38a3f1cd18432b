// Pool space tests (pool.h invariant 4): on a small pool whose origin is larger than its
// data space, writes that need space fail with no_space; reads, flushes and unmaps go on
// working, unmapping gives space back, a full pool never corrupts or turns read-only, and
// metadata keeps a reserve so that commits still complete when the data space is full.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <random>

#include "store/chunk_map.h"
#include "store/memory_device.h"
#include "volume/pool.h"
#include "volume/pool_checker.h"
#include "pool_fixture.h"

namespace snapstore {
namespace {

constexpr std::uint64_t device_size = 16 << 20;
constexpr std::uint64_t origin_size = 32 << 20;  // twice the device: the data space runs out
constexpr std::uint32_t bs = 4096;
constexpr std::uint64_t piece = 64 << 10;

class PoolSpaceTest : public PoolFixture {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::off);
    ASSERT_NO_FATAL_FAILURE(format_and_open(device_size, origin_size, quiet_options(), "small"));
  }
  void TearDown() override {
    pool_.reset();
    spdlog::set_level(spdlog::level::info);
  }

  void flush() {
    Status st = pool_->commit();
    ASSERT_TRUE(st) << st.to_string();
    EXPECT_FALSE(pool_->read_only());
  }

  // Writes `data` at `offset`; the model follows only if the write succeeded. A write
  // that fails must fail with no_space and leave the pool writable.
  Status try_write(std::uint64_t offset, const std::vector<std::byte>& data, bool fua = false) {
    Status st = pool_->write(origin_, offset, data, fua);
    if (st) {
      std::copy(data.begin(), data.end(), model_.begin() + static_cast<long>(offset));
    } else {
      EXPECT_EQ(st.code(), errc::no_space) << st.to_string();
      EXPECT_TRUE(pool_->failure().is_ok()) << pool_->failure().to_string();
      EXPECT_FALSE(pool_->read_only());
    }
    return st;
  }
  void unmap(std::uint64_t offset, std::uint64_t length) { unmap_model(offset, length); }

  // Writes distinct 64 KiB pieces from offset 0 up until the pool is full (flushing every
  // `flush_every` pieces; 0: never). Returns the end of what was written.
  std::uint64_t fill_pieces(unsigned flush_every) {
    std::uint64_t off = 0;
    for (unsigned n = 1;; ++n) {
      if (off + piece > origin_size) {
        ADD_FAILURE() << "the origin never filled the pool";
        return off;
      }
      if (!try_write(off, pattern(piece, 1000 + n))) return off;
      off += piece;
      if (flush_every && n % flush_every == 0) {
        Status st = pool_->commit();
        EXPECT_TRUE(st) << st.to_string();
      }
    }
  }
  // Fills every last data block: pieces, a commit, then single blocks. Committed.
  void fill_to_the_last_block() {
    end_ = fill_pieces(16);
    ASSERT_FALSE(HasFailure());
    ASSERT_NO_FATAL_FAILURE(flush());  // blocks a failed write held come back at the commit
    for (std::uint64_t n = 1;; ++n) {
      ASSERT_LT(end_ + bs, origin_size);
      if (!try_write(end_, pattern(bs, 5000 + n))) break;
      end_ += bs;
    }
    ASSERT_NO_FATAL_FAILURE(flush());
    ASSERT_EQ(pool_->stats().data_blocks_free, 0u);
    ASSERT_GE(end_, 8u << 20) << "a 16 MiB pool should hold at least 8 MiB of data";
  }

  std::uint64_t end_ = 0;  // end of the filled region
};

// Fills the pool in one transaction: the commit after ENOSPC must still find metadata.
TEST_F(PoolSpaceTest, FullPoolInOneTransactionStillReadsAndCommits) {
  const std::uint64_t end = fill_pieces(0);
  ASSERT_GE(end, 8u << 20);
  // (Finding the pool full, a write commits once to get back what the transaction freed,
  // so the fill above already committed; this one still finds no room.)
  EXPECT_EQ(pool_->write(origin_, end, pattern(piece, 1), false).code(), errc::no_space);
  expect_model();
  ASSERT_NO_FATAL_FAILURE(flush());
  expect_model();
  const PoolStats s = pool_->stats();
  EXPECT_LT(s.data_blocks_free, piece / bs) << "a 64 KiB write failed with more room than that";
  EXPECT_GT(s.metadata_blocks_free, 0u);
  // Device space for one more metadata chunk is kept (pool.h invariant 4).
  EXPECT_GE(s.unallocated_bytes, stripe_count(profile::dup) * pool_->superblock().chunk_size);
  close();
  expect_clean();
  ASSERT_NO_FATAL_FAILURE(open());
  expect_model();
}

TEST_F(PoolSpaceTest, FullPoolRefusesWritesCleanly) {
  ASSERT_NO_FATAL_FAILURE(fill_to_the_last_block());
  const std::uint64_t writes = device_->write_count();
  EXPECT_FALSE(try_write(end_, pattern(bs, 2)));
  EXPECT_FALSE(try_write(end_ + 100, pattern(10, 3)));  // partial block
  EXPECT_FALSE(try_write(end_, pattern(bs, 4), /*fua=*/true));
  Status z = pool_->write_zeroes(origin_, end_, 4 * bs, false);
  EXPECT_EQ(z.code(), errc::no_space) << z.to_string();
  EXPECT_EQ(device_->write_count(), writes) << "a refused write reached the device";
  EXPECT_FALSE(pool_->read_only());
  expect_model();
  ASSERT_NO_FATAL_FAILURE(flush());
  close();
  expect_clean();
}

TEST_F(PoolSpaceTest, UnmapWhenFullGivesSpaceBack) {
  ASSERT_NO_FATAL_FAILURE(fill_to_the_last_block());
  ASSERT_NO_FATAL_FAILURE(unmap(1 << 20, 1 << 20));  // 256 written blocks
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().data_blocks_free, 256u);
  expect_model();
  // The space is usable again, to the last block.
  EXPECT_TRUE(try_write(end_, pattern(256 * bs, 7)));
  EXPECT_FALSE(try_write(end_ + 256 * bs, pattern(bs, 8)));
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().data_blocks_free, 0u);
  expect_model();
  close();
  expect_clean();
  ASSERT_NO_FATAL_FAILURE(open());
  expect_model();
}

// A write larger than the free space fails whole; the blocks it took and gave back
// while trying are free again after the next commit, even if nothing else changed.
TEST_F(PoolSpaceTest, BlocksHeldByAFailedWriteComeBackAtTheNextFlush) {
  ASSERT_NO_FATAL_FAILURE(fill_to_the_last_block());
  ASSERT_NO_FATAL_FAILURE(unmap(1 << 20, 1 << 20));  // 256 written blocks
  ASSERT_NO_FATAL_FAILURE(flush());
  ASSERT_EQ(pool_->stats().data_blocks_free, 256u);
  EXPECT_FALSE(try_write(end_, pattern(257 * bs, 6)));
  expect_model();
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().data_blocks_free, 256u) << "a failed write kept blocks past a commit";
  EXPECT_TRUE(try_write(end_, pattern(256 * bs, 7)));
  ASSERT_NO_FATAL_FAILURE(flush());
  expect_model();
  close();
  expect_clean();
}

// Invariant 4 says unmaps go on working when full: an unmap whose ends are not block
// aligned still gives back the whole blocks it covers. (The edges may read as zeroes or
// keep their bytes; nothing else may change.)
TEST_F(PoolSpaceTest, UnalignedUnmapWhenFullGivesSpaceBack) {
  ASSERT_NO_FATAL_FAILURE(fill_to_the_last_block());
  const std::uint64_t offset = (1 << 20) + 2048, length = 1 << 20;
  const std::vector<std::byte> before = model_;
  Status st = pool_->unmap(origin_, offset, length, false);
  ASSERT_TRUE(st) << st.to_string();
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_GE(pool_->stats().data_blocks_free, 255u);
  std::vector<std::byte> out(origin_size);
  ASSERT_TRUE(pool_->read(origin_, 0, out));
  for (std::uint64_t i = 0; i < origin_size; ++i) {
    const bool inside = i >= offset && i < offset + length;
    const bool whole = i >= (1 << 20) + bs && i < (2 << 20);
    const bool ok = whole    ? out[i] == std::byte{0}
                    : inside ? (out[i] == std::byte{0} || out[i] == before[i])
                             : out[i] == before[i];
    if (!ok) {
      ADD_FAILURE() << "byte " << i << " holds the wrong value after the unmap";
      break;
    }
  }
  close();
  expect_clean();
}

// Overwrites need a new block before the old one is released at the commit: when full
// they fail with no_space or succeed, and never damage anything.
TEST_F(PoolSpaceTest, OverwritesWhenFullFailCleanlyOrSucceed) {
  ASSERT_NO_FATAL_FAILURE(fill_to_the_last_block());
  EXPECT_FALSE(try_write(0, pattern(bs, 10)));
  EXPECT_FALSE(try_write(3 * bs + 7, pattern(100, 11)));
  expect_model();
  // Four free blocks, then eight single-block overwrites spread over the volume.
  ASSERT_NO_FATAL_FAILURE(unmap(2 << 20, 4 * bs));
  ASSERT_NO_FATAL_FAILURE(flush());
  ASSERT_EQ(pool_->stats().data_blocks_free, 4u);
  unsigned ok = 0;
  for (std::uint64_t i = 0; i < 8; ++i) {
    if (try_write(i * (1 << 20) + 5 * bs, pattern(bs, 20 + i))) ++ok;
    expect_model();
  }
  // Four free blocks; the old blocks come back at a commit, and a write that finds the
  // pool full commits once and retries, so every overwrite fits.
  EXPECT_EQ(ok, 8u) << "an overwrite failed although a commit would have freed room for it";
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().data_blocks_free, 4u);
  for (std::uint64_t i = 4; i < 8; ++i)
    EXPECT_TRUE(try_write(i * (1 << 20) + 5 * bs, pattern(bs, 30 + i)));
  // Rewriting the same block again and again in one transaction.
  ASSERT_NO_FATAL_FAILURE(flush());
  for (std::uint64_t i = 0; i < 6; ++i) (void)try_write(7 * bs, pattern(bs, 40 + i));
  expect_model();
  ASSERT_NO_FATAL_FAILURE(flush());
  expect_model();
  close();
  expect_clean();
  ASSERT_NO_FATAL_FAILURE(open());
  expect_model();
}

TEST_F(PoolSpaceTest, FullPoolReopensCleanAndRecovers) {
  ASSERT_NO_FATAL_FAILURE(fill_to_the_last_block());
  close();
  expect_clean();
  ASSERT_NO_FATAL_FAILURE(open());
  EXPECT_FALSE(pool_->read_only());
  EXPECT_EQ(pool_->stats().data_blocks_free, 0u);
  expect_model();
  EXPECT_FALSE(try_write(end_, pattern(bs, 50)));
  ASSERT_NO_FATAL_FAILURE(unmap(0, end_ / 2 / bs * bs));
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().data_blocks_free, end_ / 2 / bs);
  EXPECT_TRUE(try_write(end_, pattern(piece, 51)));
  EXPECT_TRUE(try_write(0, pattern(piece, 52)));
  ASSERT_NO_FATAL_FAILURE(flush());
  expect_model();
  close();
  expect_clean();
  ASSERT_NO_FATAL_FAILURE(open());
  expect_model();
}

// Metadata never runs out before data: with the data space full, trimming everything block
// by block (a b-tree change per call) and committing all along still works.
TEST_F(PoolSpaceTest, TrimsAndCommitsWorkWithTheDataSpaceFull) {
  ASSERT_NO_FATAL_FAILURE(fill_to_the_last_block());
  for (std::uint64_t off = 0; off < end_; off += 2 * bs) {
    ASSERT_NO_FATAL_FAILURE(unmap(off, bs));
    if (off % (1 << 20) == 0) {
      ASSERT_NO_FATAL_FAILURE(flush());
    }
  }
  ASSERT_NO_FATAL_FAILURE(flush());
  EXPECT_EQ(pool_->stats().data_blocks_free, (end_ / bs + 1) / 2);
  expect_model();
  close();
  expect_clean();
}

}  // namespace
}  // namespace snapstore
