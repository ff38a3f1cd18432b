// BufferPool (nbd/buffer_pool.h): capacity classes, reuse of idle buffers within the idle
// limit, large buffers freed at once, and pages committed only as bytes are written.
#include "nbd/buffer_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>

namespace snapstore::nbd {
namespace {

constexpr std::size_t kib = 1 << 10, mib = 1 << 20;

// RssAnon of this process in bytes (/proc/self/status), or 0 if it cannot be read.
std::size_t rss_anon() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::stoull(line.substr(8)) * kib;
  return 0;
}

TEST(BufferPool, CapacitiesArePowersOfTwoThenWholeHugePages) {
  EXPECT_EQ(BufferPool::capacity_for(0), 0u);
  EXPECT_EQ(BufferPool::capacity_for(1), 4 * kib);
  EXPECT_EQ(BufferPool::capacity_for(4 * kib), 4 * kib);
  EXPECT_EQ(BufferPool::capacity_for(4 * kib + 1), 8 * kib);
  EXPECT_EQ(BufferPool::capacity_for(64 * kib), 64 * kib);
  EXPECT_EQ(BufferPool::capacity_for(256 * kib), 256 * kib);
  EXPECT_EQ(BufferPool::capacity_for(256 * kib + 1), 2 * mib);  // allocated as a huge page
  EXPECT_EQ(BufferPool::capacity_for(1 * mib), 2 * mib);
  EXPECT_EQ(BufferPool::capacity_for(2 * mib + 1), 4 * mib);
  EXPECT_EQ(BufferPool::capacity_for(32 * mib), 32 * mib);
}

TEST(BufferPool, BuffersAreAlignedAndAsLargeAsTheirClass) {
  BufferPool pool(16 * mib);
  for (std::size_t bytes : {std::size_t{1}, 5000 * std::size_t{1}, 300 * kib, 1 * mib}) {
    PageAlignedBuffer b = pool.take(bytes);
    ASSERT_NE(b.data(), nullptr);
    EXPECT_EQ(b.capacity(), BufferPool::capacity_for(bytes));
    const auto at = reinterpret_cast<std::uintptr_t>(b.data());
    EXPECT_EQ(at % (b.capacity() >= huge_buffer_threshold ? huge_page_size : 4096), 0u) << bytes;
    std::memset(b.data(), 0x5a, b.capacity());  // the whole capacity is usable
  }
  EXPECT_EQ(pool.take(0).data(), nullptr);
}

TEST(BufferPool, AGivenBufferIsReusedForItsClass) {
  BufferPool pool(16 * mib);
  PageAlignedBuffer b = pool.take(1 * mib);
  std::byte* const first = b.data();
  pool.give(std::move(b));
  EXPECT_EQ(pool.idle_bytes(), 2 * mib);
  PageAlignedBuffer other_class = pool.take(4 * kib);
  EXPECT_NE(other_class.data(), first);
  PageAlignedBuffer again = pool.take(1536 * kib);  // same 2 MiB class
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(pool.idle_bytes(), 0u);
}

TEST(BufferPool, IdleBuffersStayWithinTheIdleLimit) {
  BufferPool pool(5 * mib);
  std::vector<PageAlignedBuffer> taken;
  for (int i = 0; i < 4; ++i) taken.push_back(pool.take(2 * mib));
  for (auto& b : taken) pool.give(std::move(b));
  EXPECT_EQ(pool.idle_bytes(), 4 * mib);  // two kept, two freed
  for (int i = 0; i < 8; ++i) pool.give(pool.take(4 * kib));
  EXPECT_LE(pool.idle_bytes(), 5 * mib);
}

TEST(BufferPool, LargeBuffersAreNeverKeptIdle) {
  BufferPool pool(256 * mib);
  pool.give(pool.take(BufferPool::max_idle_capacity + 1));
  pool.give(pool.take(32 * mib));
  EXPECT_EQ(pool.idle_bytes(), 0u);
  pool.give(pool.take(BufferPool::max_idle_capacity));
  EXPECT_EQ(pool.idle_bytes(), BufferPool::max_idle_capacity);
}

// A buffer for a 32 MiB request costs (almost) nothing until bytes land in it: a client
// that announces a payload and sends none of it must not make the server commit memory.
TEST(BufferPool, ANewBufferCommitsPagesOnlyAsTheyAreWritten) {
  const std::size_t before = rss_anon();
  if (before == 0) GTEST_SKIP() << "no RssAnon in /proc/self/status";
  BufferPool pool(0);
  std::vector<PageAlignedBuffer> buffers;
  for (int i = 0; i < 8; ++i) buffers.push_back(pool.take(32 * mib));
  const std::size_t untouched = rss_anon();
  EXPECT_LT(untouched, before + 32 * mib) << "taking 256 MiB of buffers committed them";
  for (auto& b : buffers) std::memset(b.data(), 1, b.capacity());
  EXPECT_GE(rss_anon(), before + 200 * mib) << "the measurement does not see writes";
}

}  // namespace
}  // namespace snapstore::nbd
