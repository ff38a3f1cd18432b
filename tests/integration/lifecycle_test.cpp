// Stopping the in-process server: with clients in every state, with requests in flight.
#include <gtest/gtest.h>

#include "test_server.h"

namespace snapstore::integration {
namespace {

class Lifecycle : public ::testing::Test {
 protected:
  InProcessServer server_;
};

TEST_F(Lifecycle, StopEndsConnectionsInEveryStateAndRemovesTheSocket) {
  auto attached = server_.connect("origin");
  ASSERT_TRUE(attached);
  RawSocket silent = server_.raw();  // still in negotiation
  ASSERT_TRUE(raw_read_greeting(silent));
  RawSocket idle = server_.raw();  // attached, then quiet
  ASSERT_TRUE(raw_attach(idle, "origin"));
  ASSERT_TRUE(eventually([&] { return server_.connection_count() == 3; }));

  ASSERT_TRUE(server_.stop()) << "the server did not stop within 10 s";
  EXPECT_TRUE(silent.read_until_closed().closed);
  EXPECT_TRUE(idle.read_until_closed().closed);
  char byte = 0;
  EXPECT_EQ(nbd_pread(attached.get(), &byte, 1, 0, 0), -1) << "the connection should be gone";
  EXPECT_FALSE(std::filesystem::exists(server_.socket_path())) << "socket file left behind";
  EXPECT_EQ(server_.connection_count(), 0u);
}

// Stop is graceful: a request the server has read is carried out and answered, so every
// write the client saw succeed is in the volume.
TEST_F(Lifecycle, StopAnswersTheRequestsAlreadyRead) {
  auto h = server_.connect("origin");
  ASSERT_TRUE(h);
  constexpr int count = 200;
  constexpr std::size_t size = 64 * 1024;
  std::vector<std::vector<char>> data;
  std::vector<int64_t> cookies;
  for (int i = 0; i < count; ++i) {
    data.push_back(pattern(size, 900 + i));
    int64_t c = nbd_aio_pwrite(h.get(), data.back().data(), size, size * i, NBD_NULL_COMPLETION, 0);
    ASSERT_GT(c, 0) << nbd_error_text();
    cookies.push_back(c);
  }
  // Let the server take some of them (and no more than its window) before it stops.
  ASSERT_TRUE(eventually([&] {
    nbd_poll(h.get(), 0);
    return nbd_aio_in_flight(h.get()) < count;
  })) << "no write completed";
  ASSERT_TRUE(server_.stop()) << "the server did not stop within 10 s";
  drain(h.get(), 10s);  // the rest fail once the server closes: that is fine

  int succeeded = 0;
  for (int i = 0; i < count; ++i) {
    if (nbd_aio_command_completed(h.get(), cookies[i]) != 1) continue;
    ++succeeded;
    std::vector<char> stored(size);
    ASSERT_TRUE(server_.volume("origin").read(size * i, std::as_writable_bytes(std::span(stored))));
    EXPECT_TRUE(stored == data[i]) << "write " << i << " was acknowledged but is not there";
  }
  EXPECT_GT(succeeded, 0);
}

}  // namespace
}  // namespace snapstore::integration
