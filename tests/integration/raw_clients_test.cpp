// Clients that misbehave on purpose, written byte by byte on plain Unix sockets. Each one
// must be dealt with (an error, or a closed connection) without stalling anybody else; a
// well-behaved libnbd client on the same server checks that after every case.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>

#include "test_server.h"

namespace snapstore::integration {
namespace {

constexpr std::uint32_t simple_reply_magic = 0x67446698u;
constexpr std::uint16_t cmd_read = 0, cmd_write = 1, cmd_disc = 2;
constexpr std::uint32_t opt_export_name = 1, opt_abort = 2, opt_list = 3, opt_go = 7;
constexpr std::uint32_t rep_ack = 1, rep_error_bit = 1u << 31;
constexpr std::uint32_t rep_err_unsup = rep_error_bit | 1, rep_err_invalid = rep_error_bit | 3;
constexpr std::uint32_t client_flags = 1u | 2u;  // FIXED_NEWSTYLE | NO_ZEROES

struct SimpleReply {
  std::uint32_t error = 0;
  std::uint64_t cookie = 0;
};

std::optional<SimpleReply> read_simple_reply(RawSocket& s) {
  std::uint8_t r[16];
  if (!s.recv_exact(r, sizeof r) || get_be32(r) != simple_reply_magic) return std::nullopt;
  return SimpleReply{get_be32(r + 4), get_be64(r + 8)};
}

std::vector<std::uint8_t> be32(std::uint32_t v) {
  std::vector<std::uint8_t> out;
  put_be32(out, v);
  return out;
}

class RawClients : public ::testing::Test {
 protected:
  void SetUp() override {
    good_ = server_.connect("origin");  // attached before the misbehaviour starts
    ASSERT_TRUE(good_);
  }
  // The well-behaved client is still served, promptly.
  void expect_others_served() {
    EXPECT_TRUE(write_read_within(good_.get(), 1 << 20, ++seed_)) << "the attached client stalled";
    auto fresh = connect_unix_within(server_.socket_path(), 5s);
    ASSERT_TRUE(fresh) << "a new client was not served";
    EXPECT_TRUE(write_read_within(fresh.get(), 2 << 20, ++seed_));
  }
  RawSocket attached() {
    RawSocket s = server_.raw();
    EXPECT_TRUE(s.is_open());
    EXPECT_TRUE(raw_attach(s, "origin")) << "raw handshake failed";
    return s;
  }

  InProcessServer server_;
  NbdHandle good_;
  std::uint64_t seed_ = 0;
};

TEST_F(RawClients, ARawClientCanAttachReadAndDisconnect) {
  RawSocket s = attached();
  ASSERT_TRUE(s.send_all(request_header(0, cmd_read, 42, 0, 512)));
  auto reply = read_simple_reply(s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->error, 0u);
  EXPECT_EQ(reply->cookie, 42u);
  std::vector<std::uint8_t> data(512);
  ASSERT_TRUE(s.recv_exact(data.data(), data.size()));
  ASSERT_TRUE(s.send_all(request_header(0, cmd_disc, 43, 0, 0)));
  auto rest = s.read_until_closed();
  EXPECT_TRUE(rest.closed) << "NBD_CMD_DISC must close the connection";
  EXPECT_TRUE(rest.bytes.empty()) << "NBD_CMD_DISC has no reply";
}

// NBD_CMD_DISC: everything sent before it is still carried out and answered.
TEST_F(RawClients, DisconnectFinishesTheRequestsBeforeIt) {
  RawSocket s = attached();
  constexpr int writes = 16;
  std::vector<std::uint8_t> bytes;
  for (int i = 0; i < writes; ++i) {
    auto header = request_header(0, cmd_write, 100 + i, 4096 * i, 4096);
    auto data = pattern(4096, 500 + i);
    bytes.insert(bytes.end(), header.begin(), header.end());
    bytes.insert(bytes.end(), data.begin(), data.end());
  }
  auto disc = request_header(0, cmd_disc, 999, 0, 0);
  bytes.insert(bytes.end(), disc.begin(), disc.end());
  ASSERT_TRUE(s.send_all(bytes));
  std::vector<bool> answered(writes);
  for (int i = 0; i < writes; ++i) {
    auto reply = read_simple_reply(s);
    ASSERT_TRUE(reply) << "reply " << i << " of " << writes << " never came";
    EXPECT_EQ(reply->error, 0u);
    ASSERT_GE(reply->cookie, 100u);
    ASSERT_LT(reply->cookie, 100u + writes);
    answered[reply->cookie - 100] = true;
  }
  EXPECT_EQ(std::count(answered.begin(), answered.end(), true), writes);
  auto rest = s.read_until_closed();
  EXPECT_TRUE(rest.closed);
  EXPECT_TRUE(rest.bytes.empty());
  for (int i = 0; i < writes; ++i) {
    std::vector<char> stored(4096);
    ASSERT_TRUE(server_.volume("origin").read(4096 * i, std::as_writable_bytes(std::span(stored))));
    EXPECT_TRUE(stored == pattern(4096, 500 + i)) << "write " << i;
  }
}

// Without NBD_FLAG_C_NO_ZEROES the reply to NBD_OPT_EXPORT_NAME ends with 124 zero bytes.
TEST_F(RawClients, ExportNameWithoutNoZeroesGetsThePadding) {
  RawSocket s = server_.raw();
  ASSERT_TRUE(raw_read_greeting(s));
  auto bytes = be32(1);  // FIXED_NEWSTYLE only
  auto header = option_header(opt_export_name, 6);
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), {'o', 'r', 'i', 'g', 'i', 'n'});
  ASSERT_TRUE(s.send_all(bytes));
  std::vector<std::uint8_t> reply(8 + 2 + 124, 0xff);
  ASSERT_TRUE(s.recv_exact(reply.data(), reply.size()));
  EXPECT_EQ(get_be64(reply.data()), InProcessServer::origin_size);
  EXPECT_TRUE(std::all_of(reply.begin() + 10, reply.end(), [](std::uint8_t b) { return b == 0; }));
  ASSERT_TRUE(s.send_all(request_header(0, cmd_read, 1, 0, 8)));
  auto simple = read_simple_reply(s);
  ASSERT_TRUE(simple) << "the padding was not exactly 124 bytes, or transmission did not start";
  EXPECT_EQ(simple->cookie, 1u);
}

TEST_F(RawClients, BadRequestMagicClosesOnlyThatConnection) {
  RawSocket s = attached();
  ASSERT_TRUE(s.send_all(request_header(0, cmd_read, 1, 0, 512, 0x12345678u)));
  auto rest = s.read_until_closed();
  EXPECT_TRUE(rest.closed) << "a stream with a bad magic cannot be trusted";
  EXPECT_TRUE(rest.bytes.empty()) << rest.bytes.size() << " unexpected bytes";
  expect_others_served();
}

TEST_F(RawClients, UnknownCommandIsEinvalAndTheStreamContinues) {
  RawSocket s = attached();
  ASSERT_TRUE(s.send_all(request_header(0, 99, 5, 0, 512)));
  auto reply = read_simple_reply(s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->error, 22u);
  EXPECT_EQ(reply->cookie, 5u);
  ASSERT_TRUE(s.send_all(request_header(0, cmd_read, 6, 0, 512)));
  reply = read_simple_reply(s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->error, 0u);
  EXPECT_EQ(reply->cookie, 6u);
}

TEST_F(RawClients, ReadLargerThanTheMaximumIsEinvalWithoutPayload) {
  RawSocket s = attached();
  ASSERT_TRUE(s.send_all(request_header(0, cmd_read, 8, 0, InProcessServer::max_block + 1)));
  auto reply = read_simple_reply(s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->error, 22u);
  ASSERT_TRUE(s.send_all(request_header(0, cmd_read, 9, 4096, 16)));
  reply = read_simple_reply(s);
  ASSERT_TRUE(reply) << "an error reply to a read must carry no data";
  EXPECT_EQ(reply->cookie, 9u);
  EXPECT_EQ(reply->error, 0u);
}

// The server must not wait for payload it never advertised it would take: we never send
// it, so only closing (perhaps after an error reply) ends this.
TEST_F(RawClients, WriteLargerThanTheMaximumClosesWithoutReadingThePayload) {
  for (std::uint32_t length : {InProcessServer::max_block + 1, 0xffffffffu}) {
    SCOPED_TRACE(length);
    RawSocket s = attached();
    ASSERT_TRUE(s.send_all(request_header(0, cmd_write, 7, 0, length)));
    auto rest = s.read_until_closed();
    EXPECT_TRUE(rest.closed) << "still open: the server is waiting for the payload";
    if (!rest.bytes.empty()) {
      ASSERT_EQ(rest.bytes.size(), 16u) << "only an error reply may come first";
      EXPECT_EQ(get_be32(rest.bytes.data()), simple_reply_magic);
      EXPECT_EQ(get_be32(rest.bytes.data() + 4), 22u);
      EXPECT_EQ(get_be64(rest.bytes.data() + 8), 7u);
    }
  }
  expect_others_served();
}

TEST_F(RawClients, UnknownClientFlagsClose) {
  RawSocket s = server_.raw();
  ASSERT_TRUE(raw_read_greeting(s));
  ASSERT_TRUE(s.send_all(be32(client_flags | (1u << 7))));
  auto rest = s.read_until_closed();
  EXPECT_TRUE(rest.closed);
  EXPECT_TRUE(rest.bytes.empty());
  expect_others_served();
}

TEST_F(RawClients, BadOptionMagicCloses) {
  RawSocket s = server_.raw();
  ASSERT_TRUE(raw_read_greeting(s));
  auto bytes = be32(client_flags);
  auto header = option_header(opt_go, 0);
  header[0] ^= 0xff;
  bytes.insert(bytes.end(), header.begin(), header.end());
  ASSERT_TRUE(s.send_all(bytes));
  EXPECT_TRUE(s.read_until_closed().closed);
  expect_others_served();
}

// Only the header is sent: a server that tried to read the data would wait, not close.
TEST_F(RawClients, OptionLongerThan64KiBIsRefusedWithoutBeingRead) {
  RawSocket s = server_.raw();
  ASSERT_TRUE(raw_read_greeting(s));
  auto bytes = be32(client_flags);
  auto header = option_header(opt_go, 64 * 1024 + 1);
  bytes.insert(bytes.end(), header.begin(), header.end());
  ASSERT_TRUE(s.send_all(bytes));
  auto rest = s.read_until_closed();
  EXPECT_TRUE(rest.closed) << "still open: the server is reading the option data";
  if (!rest.bytes.empty()) {
    ASSERT_GE(rest.bytes.size(), 20u);
    EXPECT_EQ(get_be64(rest.bytes.data()), 0x0003e889045565a9ull);
    EXPECT_EQ(get_be32(rest.bytes.data() + 8), opt_go);
    EXPECT_NE(get_be32(rest.bytes.data() + 12) & rep_error_bit, 0u) << "must be an error reply";
  }
  expect_others_served();
}

TEST_F(RawClients, OptionOfExactly64KiBIsReadAndAnswered) {
  RawSocket s = server_.raw();
  ASSERT_TRUE(raw_read_greeting(s));
  auto bytes = be32(client_flags);
  auto header = option_header(opt_list, 64 * 1024);  // LIST takes no data: ERR_INVALID
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + 64 * 1024, 'x');
  ASSERT_TRUE(s.send_all(bytes));
  auto reply = raw_read_option_reply(s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->option, opt_list);
  EXPECT_EQ(reply->type, rep_err_invalid);
  // Negotiation goes on: attach with NBD_OPT_EXPORT_NAME.
  auto name = option_header(opt_export_name, 6);
  name.insert(name.end(), {'o', 'r', 'i', 'g', 'i', 'n'});
  ASSERT_TRUE(s.send_all(name));
  std::uint8_t export_info[10];
  ASSERT_TRUE(s.recv_exact(export_info, sizeof export_info));
  EXPECT_EQ(get_be64(export_info), InProcessServer::origin_size);
}

TEST_F(RawClients, UnknownOptionIsUnsupportedAndAbortIsAcknowledged) {
  RawSocket s = server_.raw();
  ASSERT_TRUE(raw_read_greeting(s));
  auto bytes = be32(client_flags);
  auto unknown = option_header(99, 5);
  bytes.insert(bytes.end(), unknown.begin(), unknown.end());
  bytes.insert(bytes.end(), {'h', 'e', 'l', 'l', 'o'});
  ASSERT_TRUE(s.send_all(bytes));
  auto reply = raw_read_option_reply(s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->option, 99u);
  EXPECT_EQ(reply->type, rep_err_unsup);
  ASSERT_TRUE(s.send_all(option_header(opt_abort, 0)));
  reply = raw_read_option_reply(s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->type, rep_ack);
  EXPECT_TRUE(s.read_until_closed().closed);
}

// NBD_OPT_EXPORT_NAME cannot carry an error, so an unknown name must end the session.
TEST_F(RawClients, ExportNameOfAnUnknownExportCloses) {
  for (std::string_view name : {"nope", ""}) {
    RawSocket s = server_.raw();
    ASSERT_TRUE(raw_read_greeting(s));
    auto bytes = be32(client_flags);
    auto header = option_header(opt_export_name, static_cast<std::uint32_t>(name.size()));
    bytes.insert(bytes.end(), header.begin(), header.end());
    bytes.insert(bytes.end(), name.begin(), name.end());
    ASSERT_TRUE(s.send_all(bytes));
    auto rest = s.read_until_closed();
    EXPECT_TRUE(rest.closed) << "'" << name << "'";
    EXPECT_TRUE(rest.bytes.empty()) << "'" << name << "'";
  }
  expect_others_served();
}

TEST_F(RawClients, TwoHundredIdleConnectionsDoNotKeepANewClientOut) {
  std::vector<RawSocket> idle;
  for (int i = 0; i < 200; ++i) {
    idle.push_back(server_.raw());
    ASSERT_TRUE(idle.back().is_open()) << "connection " << i;
  }
  ASSERT_TRUE(eventually([&] { return server_.connection_count() >= 201; }))
      << server_.connection_count() << " connections registered";
  expect_others_served();
  idle.clear();
  EXPECT_TRUE(eventually([&] { return server_.connection_count() == 1; }))
      << server_.connection_count() << " connections left after the idle clients went away";
}

// A client that sends requests but never reads the replies only stalls itself.
TEST_F(RawClients, AClientThatNeverReadsRepliesStallsOnlyItself) {
  RawSocket s = attached();
  std::vector<std::uint8_t> requests;
  for (std::uint64_t i = 0; i < 300; ++i) {
    auto r = request_header(0, cmd_read, i, (i % 32) << 20, 1 << 20);
    requests.insert(requests.end(), r.begin(), r.end());
  }
  ASSERT_TRUE(s.send_all(requests));  // 8 KiB of headers: fits in the socket buffer
  expect_others_served();
  s.close();
  EXPECT_TRUE(eventually([&] { return server_.connection_count() == 1; }))
      << "the stalled connection was not cleaned up after its client left";
}

class HandshakeTimeout : public ::testing::Test {
 protected:
  InProcessServer server_{InProcessOptions{.handshake_timeout = 1s}};
};

TEST_F(HandshakeTimeout, ASilentClientIsClosedWhileOthersAreServed) {
  const auto start = std::chrono::steady_clock::now();
  RawSocket silent = server_.raw();
  ASSERT_TRUE(silent.is_open());
  auto good = connect_unix_within(server_.socket_path(), 5s);
  ASSERT_TRUE(good);
  EXPECT_TRUE(write_read_within(good.get(), 0, 1));

  auto rest = silent.read_until_closed(10s);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(rest.closed) << "not closed 10 s after a 1 s handshake timeout";
  EXPECT_EQ(rest.bytes.size(), 18u) << "only the greeting";
  EXPECT_GE(elapsed, 900ms) << "closed before the timeout";
  // The timer is for negotiation only: the attached client is still fine after it.
  EXPECT_TRUE(write_read_within(good.get(), 4096, 2));
}

TEST_F(HandshakeTimeout, AClientStalledInsideAnOptionIsClosedToo) {
  RawSocket s = server_.raw();
  ASSERT_TRUE(raw_read_greeting(s));
  auto bytes = be32(client_flags);
  auto header = option_header(opt_go, 100);
  bytes.insert(bytes.end(), header.begin(), header.begin() + 10);  // part of the header
  ASSERT_TRUE(s.send_all(bytes));
  EXPECT_TRUE(s.read_until_closed(10s).closed);
  EXPECT_TRUE(eventually([&] { return server_.connection_count() == 0; }));
}

class ConnectionLimit : public ::testing::Test {
 protected:
  InProcessServer server_{InProcessOptions{.max_connections = 4}};
};

TEST_F(ConnectionLimit, ClientsPastTheLimitAreClosedAtOnceAndFreedSlotsReused) {
  std::vector<RawSocket> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(server_.raw());
  ASSERT_TRUE(eventually([&] { return server_.connection_count() == 4; }));
  RawSocket extra = server_.raw();
  ASSERT_TRUE(extra.is_open()) << "the listener should still accept";
  auto rest = extra.read_until_closed();
  EXPECT_TRUE(rest.closed) << "a client past the limit must be closed at once";
  EXPECT_TRUE(rest.bytes.empty()) << "not even a greeting";

  idle.pop_back();
  ASSERT_TRUE(eventually([&] { return server_.connection_count() == 3; }));
  auto h = connect_unix_within(server_.socket_path(), 5s);
  ASSERT_TRUE(h) << "a freed slot was not reused";
  EXPECT_TRUE(write_read_within(h.get(), 0, 3));
}

}  // namespace
}  // namespace snapstore::integration
