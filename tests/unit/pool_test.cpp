// Pool tests on in-memory devices: format, I/O semantics against a byte model, reopen.
#include <gtest/gtest.h>

#include <random>

#include "store/memory_device.h"
#include "volume/pool.h"
#include "volume/pool_checker.h"
#include "pool_fixture.h"

namespace snapstore {
namespace {

class PoolTest : public PoolFixture {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(format_and_open(64 << 20, 32 << 20)); }
  std::vector<std::byte> read(std::uint64_t offset, std::size_t n) { return read_origin(offset, n); }
};

TEST_F(PoolTest, FreshPoolHasAnEmptyOrigin) {
  auto vols = pool_->volumes();
  ASSERT_EQ(vols.size(), 1u);
  EXPECT_EQ(vols[0].name, "origin");
  EXPECT_EQ(vols[0].size, 32u << 20);
  EXPECT_EQ(read(0, 8192), std::vector<std::byte>(8192));
  auto ext = pool_->block_status(origin_, 0, 1 << 20);
  ASSERT_TRUE(ext);
  ASSERT_EQ(ext->size(), 1u);
  EXPECT_EQ((*ext)[0], (Extent{1 << 20, extent_hole | extent_zero}));
}

TEST_F(PoolTest, RandomIoMatchesModelAcrossReopen) {
  std::vector<std::byte> model(32 << 20);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 400; ++i) {
    const std::uint64_t len = 1 + rng() % (300 << 10);
    const std::uint64_t off = rng() % (model.size() - len);
    if (rng() % 5 == 0) {
      ASSERT_TRUE(pool_->unmap(origin_, off, len, false));
      std::fill(model.begin() + off, model.begin() + off + len, std::byte{0});
    } else {
      auto data = pattern(len, i);
      ASSERT_TRUE(pool_->write(origin_, off, data, rng() % 10 == 0));
      std::copy(data.begin(), data.end(), model.begin() + off);
    }
    if (i % 100 == 99) {
      ASSERT_TRUE(pool_->flush());
      reopen();
    }
  }
  EXPECT_TRUE(read(0, model.size()) == model);
}

std::uint64_t used_blocks(Pool& pool) {
  PoolStats s = pool.stats();
  return s.data_blocks - s.data_blocks_free;
}

TEST_F(PoolTest, UnmapGivesSpaceBackAndReadsZero) {
  const std::uint64_t before = used_blocks(*pool_);
  auto data = pattern(4 << 20, 1);
  ASSERT_TRUE(pool_->write(origin_, 0, data, false));
  ASSERT_TRUE(pool_->commit());
  EXPECT_EQ(used_blocks(*pool_), before + 1024);
  ASSERT_TRUE(pool_->unmap(origin_, 0, 4 << 20, false));
  ASSERT_TRUE(pool_->commit());
  EXPECT_EQ(used_blocks(*pool_), before);
  EXPECT_EQ(read(0, 4 << 20), std::vector<std::byte>(4 << 20));
}

TEST_F(PoolTest, OverwriteReleasesTheOldBlockAtCommit) {
  auto a = pattern(4096, 1), b = pattern(4096, 2);
  ASSERT_TRUE(pool_->write(origin_, 0, a, false));
  ASSERT_TRUE(pool_->commit());
  const std::uint64_t used = used_blocks(*pool_);
  ASSERT_TRUE(pool_->write(origin_, 0, b, false));
  ASSERT_TRUE(pool_->commit());
  EXPECT_EQ(used_blocks(*pool_), used);
  EXPECT_EQ(read(0, 4096), b);
}

TEST_F(PoolTest, ForeignDeviceIsRefusedAndUntouched) {
  auto foreign = std::make_shared<MemoryDevice>(16 << 20);
  auto junk = pattern(1 << 20, 9);
  ASSERT_TRUE(foreign->write(0, junk));
  auto p = Pool::open({foreign}, PoolOptions{});
  ASSERT_FALSE(p);
  EXPECT_NE(p.status().message().find("not a snapstore pool"), std::string::npos);
  EXPECT_EQ(foreign->write_count(), 1u);
}

// FormatOptions::chunk_size: 0 picks one from the device size; a given one is checked.
TEST(PoolFormatTest, ChunkSizeIsValidated) {
  auto device = std::make_shared<MemoryDevice>(16 << 20);
  for (std::uint64_t bad : {64ull << 10, 384ull << 10, 2ull << 30}) {
    FormatOptions f;
    f.chunk_size = bad;
    EXPECT_EQ(Pool::format({device}, f).code(), errc::invalid_argument) << bad;
  }
  FormatOptions f;
  f.chunk_size = 256 << 10;
  f.data_block_size = 512 << 10;  // larger than the chunk
  EXPECT_EQ(Pool::format({device}, f).code(), errc::invalid_argument);
  f.data_block_size = 4096;
  ASSERT_TRUE(Pool::format({device}, f));
  auto pool = Pool::open({device}, quiet_options());
  ASSERT_TRUE(pool) << pool.status().to_string();
  EXPECT_EQ((*pool)->superblock().chunk_size, 256u << 10);
}

}  // namespace
}  // namespace snapstore
