// Many requests in flight on one connection, and several connections at once.
#include <gtest/gtest.h>

#include <barrier>
#include <cerrno>

#include "test_server.h"

namespace snapstore::integration {
namespace {

class Concurrency : public ::testing::Test {
 protected:
  InProcessServer server_;
};

// Issues everything before reaping anything, so requests overlap on the wire and in the
// worker pool; more than the server's 128-request window, so it must also stop reading.
TEST_F(Concurrency, PipelinedWritesThenReadsKeepTheirData) {
  auto h = server_.connect("origin");
  ASSERT_TRUE(h);
  constexpr int count = 256;
  constexpr std::size_t size = 16 * 1024;
  std::vector<std::vector<char>> blocks;
  std::vector<int64_t> cookies;
  for (int i = 0; i < count; ++i) {
    blocks.push_back(pattern(size, 100 + i));
    // Every other block, so each write is its own allocation island.
    int64_t c =
        nbd_aio_pwrite(h.get(), blocks.back().data(), size, 2 * size * i, NBD_NULL_COMPLETION, 0);
    ASSERT_GT(c, 0) << nbd_error_text();
    cookies.push_back(c);
  }
  EXPECT_GE(nbd_aio_in_flight(h.get()), 64) << "the requests should still be outstanding";
  ASSERT_TRUE(drain(h.get())) << nbd_error_text();
  for (int64_t c : cookies) EXPECT_EQ(nbd_aio_command_completed(h.get(), c), 1) << nbd_error_text();

  std::vector<std::vector<char>> back(count, std::vector<char>(size));
  cookies.clear();
  for (int i = 0; i < count; ++i) {
    int64_t c = nbd_aio_pread(h.get(), back[i].data(), size, 2 * size * i, NBD_NULL_COMPLETION, 0);
    ASSERT_GT(c, 0) << nbd_error_text();
    cookies.push_back(c);
  }
  ASSERT_TRUE(drain(h.get())) << nbd_error_text();
  for (int i = 0; i < count; ++i) {
    EXPECT_EQ(nbd_aio_command_completed(h.get(), cookies[i]), 1) << nbd_error_text();
    EXPECT_TRUE(back[i] == blocks[i]) << "block " << i;
  }
  auto e = block_status(h.get(), 4 * size, 0);
  ASSERT_TRUE(e) << nbd_error_text();
  EXPECT_EQ(*e,
            (std::vector<ExtentEntry>{{size, 0}, {size, hole_zero}, {size, 0}, {size, hole_zero}}));
}

TEST_F(Concurrency, MixedPipelineOfEveryCommand) {
  auto h = server_.connect("origin");
  ASSERT_TRUE(h);
  constexpr int rounds = 32;
  constexpr std::size_t size = 8192;
  std::vector<std::vector<char>> data, back(rounds, std::vector<char>(size));
  std::vector<int64_t> cookies;
  auto issued = [&](int64_t c) {
    EXPECT_GT(c, 0) << nbd_error_text();
    cookies.push_back(c);
  };
  for (int i = 0; i < rounds; ++i) data.push_back(pattern(size, 300 + i));
  for (int i = 0; i < rounds; ++i) {
    const std::uint64_t base = (4ull << 20) * (i % 16) + size * (i / 16) * 4;
    issued(nbd_aio_pwrite(h.get(), data[i].data(), size, base, NBD_NULL_COMPLETION, 0));
    issued(nbd_aio_zero(h.get(), size, base + size, NBD_NULL_COMPLETION, 0));
    issued(nbd_aio_trim(h.get(), size, base + 2 * size, NBD_NULL_COMPLETION, 0));
    issued(nbd_aio_cache(h.get(), size, base, NBD_NULL_COMPLETION, 0));
  }
  ASSERT_TRUE(drain(h.get())) << nbd_error_text();
  issued(nbd_aio_flush(h.get(), NBD_NULL_COMPLETION, 0));
  for (int i = 0; i < rounds; ++i) {
    const std::uint64_t base = (4ull << 20) * (i % 16) + size * (i / 16) * 4;
    issued(nbd_aio_pread(h.get(), back[i].data(), size, base, NBD_NULL_COMPLETION, 0));
  }
  ASSERT_TRUE(drain(h.get())) << nbd_error_text();
  for (int64_t c : cookies) EXPECT_EQ(nbd_aio_command_completed(h.get(), c), 1) << nbd_error_text();
  for (int i = 0; i < rounds; ++i) EXPECT_TRUE(back[i] == data[i]) << "round " << i;
}

TEST_F(Concurrency, AFaultFailsOneRequestOfAPipelineAndNoOther) {
  auto h = server_.connect("origin");
  ASSERT_TRUE(h);
  constexpr int count = 32;
  constexpr std::size_t size = 4096;
  const auto data = pattern(size * count, 7);
  ASSERT_EQ(nbd_pwrite(h.get(), data.data(), data.size(), 0, 0), 0) << nbd_error_text();
  server_.volume("origin").inject_failure(volume_op::read, io_error("injected"), 1);

  std::vector<char> back(data.size());
  std::vector<int64_t> cookies;
  for (int i = 0; i < count; ++i) {
    int64_t c =
        nbd_aio_pread(h.get(), back.data() + size * i, size, size * i, NBD_NULL_COMPLETION, 0);
    ASSERT_GT(c, 0) << nbd_error_text();
    cookies.push_back(c);
  }
  ASSERT_TRUE(drain(h.get())) << nbd_error_text();
  int failed = 0;
  for (int i = 0; i < count; ++i) {
    if (nbd_aio_command_completed(h.get(), cookies[i]) == 1) {
      EXPECT_TRUE(std::equal(back.begin() + size * i, back.begin() + size * (i + 1),
                             data.begin() + size * i))
          << "read " << i;
    } else {
      ++failed;
      EXPECT_EQ(nbd_get_errno(), EIO) << nbd_error_text();
    }
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(nbd_aio_is_ready(h.get()), 1);
}

// Four connections write disjoint regions at the same time, flush, and then each reads
// what the other three wrote (NBD_FLAG_CAN_MULTI_CONN promises that this works).
TEST_F(Concurrency, MultiConnWritersSeeEachOthersData) {
  constexpr int connections = 4;
  constexpr std::size_t region = 4 << 20, chunk = 64 * 1024;
  std::vector<NbdHandle> handles;
  for (int i = 0; i < connections; ++i) {
    handles.push_back(server_.connect("origin"));
    ASSERT_TRUE(handles.back());
    EXPECT_EQ(nbd_can_multi_conn(handles.back().get()), 1);
  }
  auto chunk_data = [](int writer, std::size_t n) { return pattern(chunk, writer * 1000 + n); };
  std::barrier written(connections);
  std::vector<int> write_errors(connections), mismatches(connections), read_errors(connections);
  std::vector<std::thread> threads;
  for (int me = 0; me < connections; ++me) {
    threads.emplace_back([&, me] {
      nbd_handle* h = handles[me].get();
      for (std::size_t n = 0; n < region / chunk; ++n) {
        auto data = chunk_data(me, n);
        if (nbd_pwrite(h, data.data(), chunk, me * region + n * chunk, 0) != 0) ++write_errors[me];
      }
      if (nbd_flush(h, 0) != 0) ++write_errors[me];
      written.arrive_and_wait();
      std::vector<char> back(chunk);
      for (int other = 0; other < connections; ++other) {
        if (other == me) continue;
        for (std::size_t n = 0; n < region / chunk; ++n) {
          if (nbd_pread(h, back.data(), chunk, other * region + n * chunk, 0) != 0)
            ++read_errors[me];
          else if (back != chunk_data(other, n))
            ++mismatches[me];
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < connections; ++i) {
    EXPECT_EQ(write_errors[i], 0) << "connection " << i;
    EXPECT_EQ(read_errors[i], 0) << "connection " << i;
    EXPECT_EQ(mismatches[i], 0) << "connection " << i;
  }
  EXPECT_GE(server_.volume("origin").flush_count(), std::uint64_t{connections});
}

// Writers on several connections pipelining at once: the server's worker pool is shared.
TEST_F(Concurrency, SeveralPipelinedConnectionsAtOnce) {
  constexpr int connections = 4, count = 64;
  constexpr std::size_t size = 32 * 1024;
  std::vector<std::thread> threads;
  std::vector<int> errors(connections);
  for (int me = 0; me < connections; ++me) {
    threads.emplace_back([&, me] {
      NbdHandle h = make_handle();
      if (!h || nbd_connect_unix(h.get(), server_.socket_path().c_str()) != 0) {
        ++errors[me];
        return;
      }
      std::vector<std::vector<char>> data, back(count, std::vector<char>(size));
      for (int i = 0; i < count; ++i) data.push_back(pattern(size, me * 100 + i));
      const std::uint64_t base = static_cast<std::uint64_t>(me) << 24;
      for (int i = 0; i < count; ++i)
        if (nbd_aio_pwrite(h.get(), data[i].data(), size, base + size * i, NBD_NULL_COMPLETION, 0) <
            0)
          ++errors[me];
      if (!drain(h.get())) ++errors[me];
      for (int i = 0; i < count; ++i)
        if (nbd_aio_pread(h.get(), back[i].data(), size, base + size * i, NBD_NULL_COMPLETION, 0) <
            0)
          ++errors[me];
      if (!drain(h.get())) ++errors[me];
      for (int i = 0; i < count; ++i)
        if (back[i] != data[i]) ++errors[me];
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < connections; ++i) EXPECT_EQ(errors[i], 0) << "connection " << i;
}

}  // namespace
}  // namespace snapstore::integration
