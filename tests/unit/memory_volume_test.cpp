// Unit tests for volume/memory_volume.h: page-granular allocation, zeroes, fault injection.
#include "volume/memory_volume.h"

#include <gtest/gtest.h>

#include <thread>

#include "nbd_test_util.h"

namespace snapstore {
namespace {

using test::Bytes;
using test::hex;
using test::pattern;

constexpr std::uint32_t hz = extent_hole | extent_zero;
constexpr std::uint64_t page = MemoryVolume::page_size;

MemoryVolumeOptions options(std::uint64_t size = 64 * 1024) {
  MemoryVolumeOptions o;
  o.size = size;
  return o;
}

Bytes read(MemoryVolume& v, std::uint64_t offset, std::size_t n) {
  Bytes out(n, std::byte{0xee});
  EXPECT_TRUE(v.read(offset, out).is_ok());
  return out;
}

std::vector<Extent> extents(MemoryVolume& v, std::uint64_t offset, std::uint64_t length) {
  auto r = v.block_status(offset, length);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? r.value() : std::vector<Extent>{};
}

Bytes slice(const Bytes& b, std::size_t from, std::size_t n) {
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(from),
               b.begin() + static_cast<std::ptrdiff_t>(from + n));
}

TEST(MemoryVolume, ReportsItsOptions) {
  MemoryVolumeOptions o;
  o.size = 12345;
  o.read_only = true;
  o.block_sizes = {512, 8192, 65536};
  o.description = "described";
  MemoryVolume v(o);
  EXPECT_EQ(v.size(), 12345u);
  EXPECT_TRUE(v.read_only());
  EXPECT_EQ(v.description(), "described");
  EXPECT_EQ(v.block_sizes().minimum, 512u);
  EXPECT_EQ(v.block_sizes().preferred, 8192u);
  EXPECT_EQ(v.block_sizes().maximum, 65536u);
  EXPECT_EQ(v.flush_count(), 0u);
  EXPECT_EQ(v.fua_count(), 0u);
}

TEST(MemoryVolume, NewVolumeReadsZeroesAndIsOneHole) {
  MemoryVolume v(options());
  EXPECT_EQ(hex(read(v, 0, 64 * 1024)), hex(Bytes(64 * 1024)));
  EXPECT_EQ(extents(v, 0, 64 * 1024), (std::vector<Extent>{{64 * 1024, hz}}));
}

TEST(MemoryVolume, WriteReadsBack) {
  MemoryVolume v(options());
  Bytes data = pattern(10000, 2);
  ASSERT_TRUE(v.write(1234, data, false).is_ok());
  EXPECT_EQ(hex(read(v, 1234, 10000)), hex(data));
  EXPECT_EQ(hex(read(v, 0, 1234)), hex(Bytes(1234)));
  EXPECT_EQ(hex(read(v, 11234, 100)), hex(Bytes(100)));
}

TEST(MemoryVolume, WriteAllocatesEveryPageItTouches) {
  MemoryVolume v(options());
  ASSERT_TRUE(v.write(page + 100, pattern(1), false).is_ok());  // one byte in page 1
  EXPECT_EQ(extents(v, 0, 4 * page), (std::vector<Extent>{{page, hz}, {page, 0}, {2 * page, hz}}));
  ASSERT_TRUE(v.write(3 * page - 1, pattern(2), false).is_ok());  // straddles pages 2 and 3
  EXPECT_EQ(extents(v, 0, 5 * page), (std::vector<Extent>{{page, hz}, {3 * page, 0}, {page, hz}}));
}

TEST(MemoryVolume, BlockStatusStartsExactlyAtTheOffsetAndStaysInRange) {
  MemoryVolume v(options());
  ASSERT_TRUE(v.write(0, pattern(page), false).is_ok());
  EXPECT_EQ(extents(v, 100, 200), (std::vector<Extent>{{200, 0}}));
  EXPECT_EQ(extents(v, 100, page), (std::vector<Extent>{{page - 100, 0}, {100, hz}}));
  EXPECT_EQ(extents(v, page + 7, 10), (std::vector<Extent>{{10, hz}}));
  EXPECT_EQ(extents(v, 64 * 1024 - 1, 1), (std::vector<Extent>{{1, hz}}));
}

TEST(MemoryVolume, TrimOfWholePagesLeavesHoles) {
  MemoryVolume v(options());
  Bytes data = pattern(4 * page, 3);
  ASSERT_TRUE(v.write(0, data, false).is_ok());
  ASSERT_TRUE(v.trim(page, 2 * page, false).is_ok());
  EXPECT_EQ(extents(v, 0, 4 * page), (std::vector<Extent>{{page, 0}, {2 * page, hz}, {page, 0}}));
  EXPECT_EQ(hex(read(v, page, 2 * page)), hex(Bytes(2 * page)));
  EXPECT_EQ(hex(read(v, 0, page)), hex(slice(data, 0, page)));
  EXPECT_EQ(hex(read(v, 3 * page, page)), hex(slice(data, 3 * page, page)));
}

TEST(MemoryVolume, TrimOfPartialPagesZeroesButKeepsThemAllocated) {
  MemoryVolume v(options());
  Bytes data = pattern(3 * page, 4);
  ASSERT_TRUE(v.write(0, data, false).is_ok());
  ASSERT_TRUE(v.trim(1000, 9000 - 1000, false).is_ok());  // [1000, 9000)
  EXPECT_EQ(extents(v, 0, 3 * page), (std::vector<Extent>{{page, 0}, {page, hz}, {page, 0}}));
  EXPECT_EQ(hex(read(v, 0, 1000)), hex(slice(data, 0, 1000)));
  EXPECT_EQ(hex(read(v, 1000, 8000)), hex(Bytes(8000)));
  EXPECT_EQ(hex(read(v, 9000, 3 * page - 9000)), hex(slice(data, 9000, 3 * page - 9000)));
}

TEST(MemoryVolume, TrimInsideOnePageFreesNothing) {
  MemoryVolume v(options());
  ASSERT_TRUE(v.write(0, pattern(page), false).is_ok());
  ASSERT_TRUE(v.trim(512, 1024, false).is_ok());
  EXPECT_EQ(extents(v, 0, page), (std::vector<Extent>{{page, 0}}));
  EXPECT_EQ(hex(read(v, 512, 1024)), hex(Bytes(1024)));
}

TEST(MemoryVolume, TrimToTheEndFreesTheShortLastPage) {
  MemoryVolume v(options(6000));  // page 1 is [4096, 6000)
  ASSERT_TRUE(v.write(0, pattern(6000), false).is_ok());
  ASSERT_TRUE(v.trim(page, 6000 - page, false).is_ok());
  EXPECT_EQ(extents(v, 0, 6000), (std::vector<Extent>{{page, 0}, {6000 - page, hz}}));
}

TEST(MemoryVolume, TrimOfPartOfTheShortLastPageKeepsIt) {
  MemoryVolume v(options(6000));
  ASSERT_TRUE(v.write(0, pattern(6000), false).is_ok());
  ASSERT_TRUE(v.trim(4608, 6000 - 4608, false).is_ok());
  EXPECT_EQ(extents(v, 0, 6000), (std::vector<Extent>{{6000, 0}}));
  EXPECT_EQ(hex(read(v, 4608, 6000 - 4608)), hex(Bytes(6000 - 4608)));
}

TEST(MemoryVolume, TrimOfEverythingLeavesOneHole) {
  MemoryVolume v(options(6000));
  ASSERT_TRUE(v.write(0, pattern(6000), false).is_ok());
  ASSERT_TRUE(v.trim(0, 6000, false).is_ok());
  EXPECT_EQ(extents(v, 0, 6000), (std::vector<Extent>{{6000, hz}}));
  EXPECT_EQ(hex(read(v, 0, 6000)), hex(Bytes(6000)));
}

TEST(MemoryVolume, WriteZeroesWithUnmapIsLikeTrim) {
  MemoryVolume v(options());
  Bytes data = pattern(3 * page, 5);
  ASSERT_TRUE(v.write(0, data, false).is_ok());
  ASSERT_TRUE(v.write_zeroes(100, 3 * page - 200, /*may_unmap=*/true, false, false).is_ok());
  EXPECT_EQ(extents(v, 0, 3 * page), (std::vector<Extent>{{page, 0}, {page, hz}, {page, 0}}));
  EXPECT_EQ(hex(read(v, 100, 3 * page - 200)), hex(Bytes(3 * page - 200)));
  EXPECT_EQ(hex(read(v, 0, 100)), hex(slice(data, 0, 100)));
  EXPECT_EQ(hex(read(v, 3 * page - 100, 100)), hex(slice(data, 3 * page - 100, 100)));
}

TEST(MemoryVolume, WriteZeroesWithoutUnmapAllocates) {
  MemoryVolume v(options());
  ASSERT_TRUE(v.write(0, pattern(page), false).is_ok());
  ASSERT_TRUE(v.write_zeroes(0, 3 * page, /*may_unmap=*/false, false, false).is_ok());
  EXPECT_EQ(extents(v, 0, 4 * page), (std::vector<Extent>{{3 * page, 0}, {page, hz}}));
  EXPECT_EQ(hex(read(v, 0, 3 * page)), hex(Bytes(3 * page)));
}

TEST(MemoryVolume, FlushAndFuaAreCounted) {
  MemoryVolume v(options());
  ASSERT_TRUE(v.flush().is_ok());
  ASSERT_TRUE(v.flush().is_ok());
  ASSERT_TRUE(v.write(0, pattern(10), true).is_ok());
  ASSERT_TRUE(v.write(0, pattern(10), false).is_ok());
  ASSERT_TRUE(v.trim(0, page, true).is_ok());
  ASSERT_TRUE(v.write_zeroes(0, page, false, false, true).is_ok());
  EXPECT_EQ(v.flush_count(), 2u);
  EXPECT_EQ(v.fua_count(), 3u);
}

TEST(MemoryVolume, CacheIsANoOp) {
  MemoryVolume v(options());
  EXPECT_TRUE(v.cache(0, page).is_ok());
}

// --- fault injection -------------------------------------------------------------------

TEST(MemoryVolumeFaults, FailsOnceByDefault) {
  MemoryVolume v(options());
  v.inject_failure(volume_op::write, no_space("full"));
  Status st = v.write(0, pattern(10), false);
  EXPECT_EQ(st.code(), errc::no_space);
  EXPECT_EQ(st.message(), "full");
  EXPECT_EQ(hex(read(v, 0, 10)), hex(Bytes(10)));  // the failed write changed nothing
  EXPECT_TRUE(v.write(0, pattern(10), false).is_ok());
}

TEST(MemoryVolumeFaults, FailsTheGivenNumberOfTimes) {
  MemoryVolume v(options());
  v.inject_failure(volume_op::flush, io_error("eio"), 2);
  EXPECT_EQ(v.flush().code(), errc::io_error);
  EXPECT_EQ(v.flush().code(), errc::io_error);
  EXPECT_TRUE(v.flush().is_ok());
  EXPECT_EQ(v.flush_count(), 1u);
}

TEST(MemoryVolumeFaults, NegativeCountFailsForever) {
  MemoryVolume v(options());
  v.inject_failure(volume_op::read, corruption("bad"), -1);
  Bytes out(10);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(v.read(0, out).code(), errc::corruption) << i;
}

TEST(MemoryVolumeFaults, EachOperationIsSeparate) {
  MemoryVolume v(options());
  v.inject_failure(volume_op::trim, read_only_error("ro"));
  v.inject_failure(volume_op::block_status, io_error("map"));
  v.inject_failure(volume_op::write_zeroes, not_supported("slow"));
  EXPECT_TRUE(v.write(0, pattern(10), false).is_ok());
  EXPECT_TRUE(v.flush().is_ok());
  EXPECT_EQ(v.trim(0, page, false).code(), errc::read_only);
  EXPECT_EQ(v.block_status(0, page).status().code(), errc::io_error);
  EXPECT_EQ(v.write_zeroes(0, page, true, true, false).code(), errc::not_supported);
  EXPECT_TRUE(v.trim(0, page, false).is_ok());
  EXPECT_TRUE(v.block_status(0, page).is_ok());
  EXPECT_TRUE(v.write_zeroes(0, page, true, true, false).is_ok());
}

TEST(MemoryVolumeFaults, InjectingAgainReplacesTheFault) {
  MemoryVolume v(options());
  v.inject_failure(volume_op::flush, io_error("first"), -1);
  v.inject_failure(volume_op::flush, no_space("second"), 1);
  EXPECT_EQ(v.flush().code(), errc::no_space);
  EXPECT_TRUE(v.flush().is_ok());
}

TEST(MemoryVolume, ConcurrentDisjointWritesAllLand) {
  MemoryVolume v(options(8 * 64 * 1024));
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 8; ++t)
    threads.emplace_back([&v, t] {
      for (unsigned i = 0; i < 16; ++i)
        EXPECT_TRUE(v.write(t * 65536 + i * 4096, pattern(4096, t), false).is_ok());
    });
  for (auto& th : threads) th.join();
  for (unsigned t = 0; t < 8; ++t)
    for (unsigned i = 0; i < 16; ++i)
      ASSERT_EQ(hex(read(v, t * 65536 + i * 4096, 4096)), hex(pattern(4096, t))) << t << " " << i;
  EXPECT_EQ(extents(v, 0, 8 * 65536), (std::vector<Extent>{{8 * 65536, 0}}));
}

}  // namespace
}  // namespace snapstore
