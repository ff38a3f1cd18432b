// Every NBD command through libnbd against the in-process server, checked both from the
// client and in the MemoryVolume behind it.
#include <gtest/gtest.h>

#include <cstring>

#include "test_server.h"

namespace snapstore::integration {
namespace {

constexpr std::uint64_t page = 4096;

class Commands : public ::testing::Test {
 protected:
  void SetUp() override {
    h_ = server_.connect("origin");
    ASSERT_TRUE(h_);
  }

  // What the volume itself holds, bypassing NBD.
  std::vector<char> stored(const std::string& name, std::uint64_t offset, std::size_t size) {
    std::vector<char> out(size);
    EXPECT_TRUE(server_.volume(name).read(offset, std::as_writable_bytes(std::span(out))).is_ok());
    return out;
  }
  std::vector<char> read(std::uint64_t offset, std::size_t size) {
    std::vector<char> out(size, '\x55');
    EXPECT_EQ(nbd_pread(h_.get(), out.data(), size, offset, 0), 0) << nbd_error_text();
    return out;
  }
  void write(std::uint64_t offset, const std::vector<char>& data, std::uint32_t flags = 0) {
    ASSERT_EQ(nbd_pwrite(h_.get(), data.data(), data.size(), offset, flags), 0) << nbd_error_text();
  }
  std::vector<ExtentEntry> extents(std::uint64_t offset, std::uint64_t count,
                                   std::uint32_t flags = 0) {
    auto e = block_status(h_.get(), count, offset, flags);
    EXPECT_TRUE(e) << nbd_error_text();
    return e.value_or(std::vector<ExtentEntry>{});
  }

  InProcessServer server_;
  NbdHandle h_;
};

TEST_F(Commands, AlignedWriteReadsBackThroughNbdAndInTheVolume) {
  const auto data = pattern(64 * 1024, 1);
  write(1 << 20, data);
  EXPECT_EQ(read(1 << 20, data.size()), data);
  EXPECT_EQ(stored("origin", 1 << 20, data.size()), data);
  EXPECT_TRUE(all_zero(read((1 << 20) - page, page).data(), page)) << "the page before changed";
}

TEST_F(Commands, UnalignedAndSingleByteRequests) {
  write(12345, {'\x7f'});
  EXPECT_EQ(read(12345, 1), std::vector<char>{'\x7f'});
  const auto around = read(12344, 3);
  EXPECT_EQ(around, (std::vector<char>{0, '\x7f', 0}));

  const auto across = pattern(3, 2);  // straddles a page boundary
  write(page - 1, across);
  EXPECT_EQ(read(page - 1, 3), across);
  EXPECT_EQ(stored("origin", page - 1, 3), across);

  const auto odd = pattern(1001, 3);
  write(3 * page + 7, odd);
  EXPECT_EQ(read(3 * page + 7, odd.size()), odd);
  EXPECT_EQ(read(3 * page + 6, 1), std::vector<char>{0});
  EXPECT_EQ(read(3 * page + 7 + odd.size(), 1), std::vector<char>{0});
}

TEST_F(Commands, LargestRequestIs32MiBBothWays) {
  int64_t maximum = nbd_get_block_size(h_.get(), LIBNBD_SIZE_MAXIMUM);
  ASSERT_EQ(maximum, InProcessServer::max_block) << nbd_error_text();
  EXPECT_EQ(nbd_get_block_size(h_.get(), LIBNBD_SIZE_MINIMUM), 1);
  const auto data = pattern(InProcessServer::max_block, 4);
  write(InProcessServer::origin_size - data.size(), data);  // ends exactly at the end
  EXPECT_TRUE(read(InProcessServer::origin_size - data.size(), data.size()) == data);
  EXPECT_TRUE(stored("origin", InProcessServer::origin_size - data.size(), data.size()) == data);
}

TEST_F(Commands, FlushReachesTheVolume) {
  const auto before = server_.volume("origin").flush_count();
  write(0, pattern(512, 5));
  ASSERT_EQ(nbd_flush(h_.get(), 0), 0) << nbd_error_text();
  ASSERT_EQ(nbd_flush(h_.get(), 0), 0) << nbd_error_text();
  EXPECT_EQ(server_.volume("origin").flush_count(), before + 2);
}

TEST_F(Commands, FuaIsPassedOnForWritesTrimsAndZeroes) {
  ASSERT_EQ(nbd_can_fua(h_.get()), 1);
  MemoryVolume& v = server_.volume("origin");
  write(0, pattern(page, 6));
  EXPECT_EQ(v.fua_count(), 0u) << "a plain write must not count as FUA";
  write(page, pattern(page, 7), LIBNBD_CMD_FLAG_FUA);
  EXPECT_EQ(v.fua_count(), 1u);
  ASSERT_EQ(nbd_trim(h_.get(), page, 0, LIBNBD_CMD_FLAG_FUA), 0) << nbd_error_text();
  EXPECT_EQ(v.fua_count(), 2u);
  ASSERT_EQ(nbd_zero(h_.get(), page, page, LIBNBD_CMD_FLAG_FUA), 0) << nbd_error_text();
  EXPECT_EQ(v.fua_count(), 3u);
  ASSERT_EQ(nbd_zero(h_.get(), page, page, 0), 0) << nbd_error_text();
  EXPECT_EQ(v.fua_count(), 3u);
}

TEST_F(Commands, CacheSucceedsAndChangesNothing) {
  ASSERT_EQ(nbd_can_cache(h_.get()), 1);
  const auto data = pattern(8192, 8);
  write(page, data);
  EXPECT_EQ(nbd_cache(h_.get(), 1 << 20, 0, 0), 0) << nbd_error_text();
  EXPECT_EQ(nbd_cache(h_.get(), 1, InProcessServer::origin_size - 1, 0), 0) << nbd_error_text();
  EXPECT_EQ(read(page, data.size()), data);
}

TEST_F(Commands, FreshExportIsOneHole) {
  EXPECT_EQ(extents(0, 1 << 20), (std::vector<ExtentEntry>{{1 << 20, hole_zero}}));
}

TEST_F(Commands, BlockStatusShowsDataAfterWriteAndHolesAfterTrim) {
  write(2 * page, pattern(page, 9));
  EXPECT_EQ(extents(0, 8 * page),
            (std::vector<ExtentEntry>{{2 * page, hole_zero}, {page, 0}, {5 * page, hole_zero}}));
  ASSERT_EQ(nbd_can_trim(h_.get()), 1);
  ASSERT_EQ(nbd_trim(h_.get(), page, 2 * page, 0), 0) << nbd_error_text();
  EXPECT_EQ(extents(0, 8 * page), (std::vector<ExtentEntry>{{8 * page, hole_zero}}));
  EXPECT_TRUE(all_zero(read(2 * page, page).data(), page));
}

TEST_F(Commands, TrimOfPartOfAPageZeroesItButKeepsItAllocated) {
  write(0, pattern(page, 10));
  ASSERT_EQ(nbd_trim(h_.get(), 100, 0, 0), 0) << nbd_error_text();
  auto back = read(0, page);
  EXPECT_TRUE(all_zero(back.data(), 100));
  EXPECT_TRUE(std::equal(back.begin() + 100, back.end(), pattern(page, 10).begin() + 100));
  EXPECT_EQ(extents(0, page), (std::vector<ExtentEntry>{{page, 0}}));
}

TEST_F(Commands, ZeroPunchesAHoleUnlessNoHoleIsSet) {
  ASSERT_EQ(nbd_can_zero(h_.get()), 1);
  write(0, pattern(4 * page, 11));
  ASSERT_EQ(nbd_zero(h_.get(), page, 0, 0), 0) << nbd_error_text();
  ASSERT_EQ(nbd_zero(h_.get(), page, 2 * page, LIBNBD_CMD_FLAG_NO_HOLE), 0) << nbd_error_text();
  EXPECT_EQ(extents(0, 4 * page), (std::vector<ExtentEntry>{{page, hole_zero}, {3 * page, 0}}));
  auto back = read(0, 4 * page);
  EXPECT_TRUE(all_zero(back.data(), page));
  EXPECT_TRUE(all_zero(back.data() + 2 * page, page));
  EXPECT_TRUE(std::equal(back.begin() + page, back.begin() + 2 * page,
                         pattern(4 * page, 11).begin() + page));
}

TEST_F(Commands, FastZeroSucceedsWhereTheVolumeCanZeroQuickly) {
  ASSERT_EQ(nbd_can_fast_zero(h_.get()), 1);
  write(0, pattern(2 * page, 12));
  ASSERT_EQ(nbd_zero(h_.get(), 2 * page, 0, LIBNBD_CMD_FLAG_FAST_ZERO), 0) << nbd_error_text();
  EXPECT_TRUE(all_zero(read(0, 2 * page).data(), 2 * page));
  EXPECT_EQ(extents(0, 2 * page), (std::vector<ExtentEntry>{{2 * page, hole_zero}}));
}

TEST_F(Commands, ReqOneGivesExactlyOneExtent) {
  write(4 * page, pattern(page, 13));
  EXPECT_EQ(extents(0, 1 << 20, LIBNBD_CMD_FLAG_REQ_ONE),
            (std::vector<ExtentEntry>{{4 * page, hole_zero}}));
  EXPECT_EQ(extents(4 * page, 1 << 20, LIBNBD_CMD_FLAG_REQ_ONE),
            (std::vector<ExtentEntry>{{page, 0}}));
  // A request shorter than the extent: the one descriptor stops at the request's end.
  EXPECT_EQ(extents(100, 1000, LIBNBD_CMD_FLAG_REQ_ONE),
            (std::vector<ExtentEntry>{{1000, hole_zero}}));
}

TEST_F(Commands, BlockStatusNeverDescribesMoreThanWasAsked) {
  write(0, pattern(3 * page, 14));
  for (auto [offset, count] : {std::pair<std::uint64_t, std::uint64_t>{1, 100},
                               {page - 10, 20},
                               {InProcessServer::origin_size - 513, 513}}) {
    std::uint64_t total = 0;
    for (const ExtentEntry& e : extents(offset, count)) {
      EXPECT_GT(e.length, 0u);
      total += e.length;
    }
    EXPECT_GT(total, 0u) << "offset " << offset;
    EXPECT_LE(total, count) << "offset " << offset;
  }
}

struct Chunk {
  std::uint64_t offset = 0;
  std::size_t count = 0;
  unsigned status = 0;
};

int record_chunk(void* user_data, const void* /*subbuf*/, std::size_t count, std::uint64_t offset,
                 unsigned status, int* /*error*/) {
  static_cast<std::vector<Chunk>*>(user_data)->push_back({offset, count, status});
  return 0;
}

std::vector<Chunk> read_structured(nbd_handle* h, std::vector<char>& buffer, std::uint64_t offset,
                                   std::uint32_t flags) {
  std::vector<Chunk> chunks;
  nbd_chunk_callback cb{record_chunk, &chunks, nullptr};
  EXPECT_EQ(nbd_pread_structured(h, buffer.data(), buffer.size(), offset, cb, flags), 0)
      << nbd_error_text();
  return chunks;
}

TEST_F(Commands, DontFragmentReadsArriveAsOneChunk) {
  ASSERT_EQ(nbd_can_df(h_.get()), 1);
  const auto data = pattern(64 * 1024, 15);
  write(page, data);
  std::vector<char> buffer(data.size() + 2 * page);  // a hole, the data, a hole
  auto chunks = read_structured(h_.get(), buffer, 0, LIBNBD_CMD_FLAG_DF);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].offset, 0u);
  EXPECT_EQ(chunks[0].count, buffer.size());
  EXPECT_EQ(chunks[0].status, unsigned{LIBNBD_READ_DATA}) << "data and hole mixed must be DATA";
  EXPECT_TRUE(std::equal(data.begin(), data.end(), buffer.begin() + page));

  std::vector<char> zeroes(32 * 1024, '\x55');
  chunks = read_structured(h_.get(), zeroes, 8 << 20, LIBNBD_CMD_FLAG_DF);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].count, zeroes.size());
  EXPECT_TRUE(all_zero(zeroes.data(), zeroes.size()));
}

TEST_F(Commands, TinyOddSizedExportWorksUpToItsLastByte) {
  auto h = server_.connect("tiny");
  ASSERT_TRUE(h);
  ASSERT_EQ(nbd_get_size(h.get()), static_cast<int64_t>(InProcessServer::tiny_size));
  const auto data = pattern(InProcessServer::tiny_size, 16);
  ASSERT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 0, 0), 0) << nbd_error_text();
  char last = 0;
  ASSERT_EQ(nbd_pread(h.get(), &last, 1, InProcessServer::tiny_size - 1, 0), 0);
  EXPECT_EQ(last, data.back());
  // Trimming to the end frees the short last page too.
  ASSERT_EQ(nbd_trim(h.get(), page, InProcessServer::tiny_size - page, 0), 0) << nbd_error_text();
  auto e = block_status(h.get(), InProcessServer::tiny_size, 0);
  ASSERT_TRUE(e) << nbd_error_text();
  EXPECT_EQ(*e,
            (std::vector<ExtentEntry>{{page, 0}, {InProcessServer::tiny_size - page, hole_zero}}));
  std::vector<char> back(InProcessServer::tiny_size);
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 0, 0), 0) << nbd_error_text();
  const std::size_t kept = InProcessServer::tiny_size - page;  // bytes before the trim
  EXPECT_TRUE(std::equal(back.begin(), back.begin() + kept, data.begin()));
  EXPECT_TRUE(all_zero(back.data() + kept, back.size() - kept));
}

}  // namespace
}  // namespace snapstore::integration
