// snapstored as a separate process, on its default backend: signals, sockets, command-line
// flags and the control socket (daemon_data_test.cpp has the data on each backend). Each
// test has a private directory for the pool and the sockets.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_server.h"

namespace snapstore::integration {
namespace {

using json = nlohmann::json;

constexpr std::uint64_t export_size = 64ull << 20;  // --pool-size 64M

class Daemon : public ::testing::Test {
 protected:
  std::filesystem::path pool() const { return dir_.path() / "pool"; }
  TempDir dir_;
};

json parse_reply(const std::optional<std::string>& line) {
  EXPECT_TRUE(line) << "no reply line from the control socket";
  json j = json::parse(line.value_or(""), nullptr, false);
  EXPECT_TRUE(j.is_object()) << "reply is not a JSON object: " << line.value_or("");
  return j;
}

TEST_F(Daemon, OnlyTheOriginExportIsServed) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.ready());
  NbdHandle h = make_handle({.export_name = "nope"});
  ASSERT_TRUE(h);
  EXPECT_EQ(nbd_connect_unix(h.get(), d.nbd_socket().c_str()), -1);
  auto origin = d.connect();
  ASSERT_TRUE(origin);
  EXPECT_EQ(nbd_is_read_only(origin.get()), 0);
  EXPECT_EQ(nbd_can_multi_conn(origin.get()), 1);
}

TEST_F(Daemon, SigtermOrSigintWhileIdleExitsZero) {
  for (int signal : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(signal == SIGTERM ? "SIGTERM" : "SIGINT");
    DaemonProcess d(dir_.path(), {.tcp = true});
    ASSERT_TRUE(d.ready());
    auto status = d.terminate(10s, signal);
    ASSERT_TRUE(status) << "snapstored ignored the signal for 10 s; log:\n" << d.log();
    EXPECT_TRUE(exited_with(*status, 0)) << describe_wait_status(*status);
    EXPECT_NE(d.log().find("snapstored ready"), std::string::npos) << d.log();
  }
}

// The default backend must not mistake a disk image for a pool (nor format over it).
TEST_F(Daemon, AFileThatIsNotAPoolIsRefusedAndLeftAlone) {
  const auto image = pattern(1 << 20, 20);
  {
    std::ofstream out(pool(), std::ios::binary);
    out.write(image.data(), static_cast<std::streamsize>(image.size()));
  }
  RunResult r = run_snapstored(
      {"--pool", pool().string(), "--no-tcp", "--nbd-socket", (dir_.path() / "nbd.sock").string(),
       "--control-socket", (dir_.path() / "ctl.sock").string()},
      dir_.path());
  ASSERT_TRUE(r.exited) << "snapstored served a file that is not a pool; output:\n" << r.output;
  EXPECT_TRUE(exited_with(r.status, 1)) << describe_wait_status(r.status) << "; output:\n"
                                        << r.output;
  EXPECT_NE(r.output.find("--backend raw"), std::string::npos) << r.output;
  EXPECT_TRUE(read_file_range(pool(), 0, image.size()) == image) << "the image was modified";
}

TEST_F(Daemon, ARegularFileWhereTheSocketGoesIsNotReplaced) {
  const auto socket = dir_.path() / "nbd.sock";
  { std::ofstream(socket) << "precious"; }
  RunResult r =
      run_snapstored({"--pool", pool().string(), "--pool-size", "64M", "--no-tcp", "--nbd-socket",
                      socket.string(), "--control-socket", (dir_.path() / "ctl.sock").string()},
                     dir_.path());
  ASSERT_TRUE(r.exited) << "snapstored started anyway; output:\n" << r.output;
  EXPECT_TRUE(exited_with(r.status, 1)) << describe_wait_status(r.status) << "; output:\n"
                                        << r.output;
  EXPECT_NE(r.output.find("not a socket"), std::string::npos) << r.output;
  std::ifstream in(socket);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

// Shutdown waits for in-flight requests, but a client that never reads its replies must
// not be able to hold the daemon (and the final flush) hostage.
TEST_F(Daemon, SigtermExitsEvenWithAClientThatNeverReadsItsReplies) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.ready());
  RawSocket stuck = RawSocket::connect_unix(d.nbd_socket());
  ASSERT_TRUE(raw_attach(stuck, "origin"));
  std::vector<std::uint8_t> requests;
  for (std::uint64_t i = 0; i < 64; ++i) {
    auto r = request_header(0, /*read*/ 0, i, (i % 32) << 20, 1 << 20);
    requests.insert(requests.end(), r.begin(), r.end());
  }
  ASSERT_TRUE(stuck.send_all(requests));  // 64 MiB of replies that nobody reads
  auto other = d.connect();
  ASSERT_TRUE(other);
  EXPECT_TRUE(write_read_within(other.get(), 0, 11)) << "the stuck client stalled another";
  const auto data = pattern(4096, 12);
  ASSERT_EQ(nbd_pwrite(other.get(), data.data(), data.size(), 40 << 20, 0), 0) << nbd_error_text();

  auto status = d.terminate(10s);
  ASSERT_TRUE(status) << "snapstored did not exit within 10 s of SIGTERM while a client "
                         "left its replies unread; log:\n"
                      << d.log();
  EXPECT_TRUE(exited_with(*status, 0)) << describe_wait_status(*status);
  DaemonProcess again(dir_.path());
  ASSERT_TRUE(again.ready());
  auto h = again.connect();
  ASSERT_TRUE(h);
  std::vector<char> back(data.size());
  ASSERT_EQ(nbd_pread(h.get(), back.data(), back.size(), 40 << 20, 0), 0) << nbd_error_text();
  EXPECT_EQ(back, data) << "the other client's acknowledged write was lost";
}

TEST_F(Daemon, HandshakeTimeoutAndConnectionLimitFlagsAreHonoured) {
  DaemonProcess d(dir_.path(),
                  {.extra_args = {"--handshake-timeout", "1", "--max-connections", "2"}});
  ASSERT_TRUE(d.ready());
  auto attached = d.connect();
  ASSERT_TRUE(attached);
  // The readiness probe's connection may not be gone yet: wait until only ours is left.
  ASSERT_TRUE(eventually([&] {
    json r =
        parse_reply(control_request(d.control_socket(), R"({"version":1,"command":"status"})"));
    return r.is_object() && r["result"].value("connections", 0) == 1;
  })) << "status never showed exactly one connection";
  const auto start = std::chrono::steady_clock::now();
  RawSocket silent = RawSocket::connect_unix(d.nbd_socket());
  ASSERT_TRUE(silent.is_open());
  ASSERT_TRUE(raw_read_greeting(silent));
  RawSocket third = RawSocket::connect_unix(d.nbd_socket());
  ASSERT_TRUE(third.is_open());
  auto refused = third.read_until_closed();
  EXPECT_TRUE(refused.closed && refused.bytes.empty()) << "a third client was let in";

  EXPECT_TRUE(silent.read_until_closed(10s).closed) << "the silent client was never closed";
  EXPECT_GE(std::chrono::steady_clock::now() - start, 900ms);
  EXPECT_TRUE(write_read_within(attached.get(), 0, 7)) << "the attached client was disturbed";
}

TEST_F(Daemon, SocketsAreOwnerOnly) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.ready());
  for (const auto& path : {d.nbd_socket(), d.control_socket()}) {
    struct stat sb {};
    ASSERT_EQ(::lstat(path.c_str(), &sb), 0) << path;
    EXPECT_TRUE(S_ISSOCK(sb.st_mode)) << path;
    EXPECT_EQ(sb.st_mode & 07777, 0600u)
        << path << std::oct << " has mode " << (sb.st_mode & 07777);
  }
}

TEST_F(Daemon, BadCommandLinesExitTwoWithAMessage) {
  const std::string p = pool().string();
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {{"--pool", p, "--pool-size", "0", "--no-tcp"}, "pool-size"},
      {{"--pool", p, "--pool-size", "12Q", "--no-tcp"}, "pool-size"},
      {{"--pool", p, "--bogus"}, "--bogus"},
      {{"--no-tcp"}, "--pool"},
      {{"--pool", p, "--listen", "nonsense"}, "--listen"},
      {{"--pool", p, "--no-tcp", "--listen", "127.0.0.1:1"}, "--listen"},
      {{"--pool", p, "--no-tcp", "--threads", "0"}, "--threads"},
      {{"--pool", p, "--no-tcp", "--backend", "zfs"}, "--backend"},
  };
  for (const Case& c : cases) {
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    SCOPED_TRACE(line);
    RunResult r = run_snapstored(c.args, dir_.path());
    ASSERT_TRUE(r.exited) << "still running after 10 s; output:\n" << r.output;
    EXPECT_TRUE(exited_with(r.status, 2)) << describe_wait_status(r.status) << "; output:\n"
                                          << r.output;
    EXPECT_NE(r.output.find(c.mentions), std::string::npos) << "output:\n" << r.output;
    EXPECT_FALSE(std::filesystem::exists(pool())) << "a rejected command line created the pool";
  }
}

TEST_F(Daemon, ControlSocketAnswersStatus) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.ready());
  json reply =
      parse_reply(control_request(d.control_socket(), R"({"version":1,"command":"status"})"));
  ASSERT_TRUE(reply.is_object());
  EXPECT_EQ(reply.value("ok", false), true) << reply.dump();
  EXPECT_EQ(reply.value("version", 0), 1) << reply.dump();
  const json& volumes = reply["result"]["volumes"];
  ASSERT_TRUE(volumes.is_array() && !volumes.empty()) << reply.dump();
  EXPECT_EQ(volumes[0].value("name", ""), "origin") << reply.dump();
  EXPECT_EQ(volumes[0].value("size", std::uint64_t{0}), export_size) << reply.dump();
  EXPECT_EQ(volumes[0].value("read_only", true), false) << reply.dump();

  auto h = d.connect();  // an attached client shows up in the counts
  ASSERT_TRUE(h);
  EXPECT_TRUE(eventually([&] {
    json r =
        parse_reply(control_request(d.control_socket(), R"({"version":1,"command":"status"})"));
    return r.is_object() && r["result"]["volumes"][0].value("connections", 0) == 1;
  })) << "status never counted the attached client";
  // A write goes to the intent log before it is acknowledged, and the NBD flush after it
  // is made durable by the log, without a commit; both are counted (a timer commit landing
  // between the write and the flush would leave the flush nothing to do: try a few times).
  std::vector<char> block(4096, 'x');
  json after;
  for (int attempt = 0; attempt < 5; ++attempt) {
    ASSERT_EQ(nbd_pwrite(h.get(), block.data(), block.size(), 8192, 0), 0) << nbd_error_text();
    ASSERT_EQ(nbd_flush(h.get(), 0), 0) << nbd_error_text();
    after = parse_reply(control_request(d.control_socket(), R"({"version":1,"command":"status"})"));
    ASSERT_TRUE(after.is_object());
    if (after["result"]["space"]["log"].value("flushes", std::uint64_t{0}) > 0) break;
  }
  const json& log = after["result"]["space"]["log"];
  EXPECT_GE(log.value("flushes", std::uint64_t{0}), 1u) << after.dump();
  EXPECT_GE(log.value("appends", std::uint64_t{0}), 2u) << after.dump();  // the write's, a marker
  EXPECT_GE(log.value("bytes", std::uint64_t{0}), 200u) << after.dump();
  EXPECT_EQ(log.value("replayed", std::uint64_t{1}), 0u) << after.dump();
}

TEST_F(Daemon, ControlSocketAnswersGarbageWithAnErrorAndKeepsGoing) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.ready());
  RawSocket s = RawSocket::connect_unix(d.control_socket());
  ASSERT_TRUE(s.is_open());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"this is not json", "bad_request"},
      {"[1,2,3]", "bad_request"},
      {R"({"command":"status"})", "bad_request"},
      {R"({"version":99,"command":"status"})", "unsupported_version"},
      {R"({"version":1,"command":"frobnicate"})", "unknown_command"},
      {R"({"version":1,"command":"status","args":[]})", "bad_request"},
  };
  for (const auto& [line, code] : cases) {
    SCOPED_TRACE(line);
    ASSERT_TRUE(s.send_all(line.data(), line.size()) && s.send_all("\n", 1));
    json reply = parse_reply(s.read_line());
    ASSERT_TRUE(reply.is_object());
    EXPECT_EQ(reply.value("ok", true), false) << reply.dump();
    EXPECT_EQ(reply["error"].value("code", ""), code) << reply.dump();
    EXPECT_FALSE(reply["error"].value("message", "").empty()) << reply.dump();
  }
  const std::string status = R"({"version":1,"command":"status"})";
  ASSERT_TRUE(s.send_all(status.data(), status.size()) && s.send_all("\n", 1));
  json reply = parse_reply(s.read_line());
  EXPECT_EQ(reply.value("ok", false), true) << "the same connection still works: " << reply.dump();
}

TEST_F(Daemon, ControlRequestsSentTogetherGetOneReplyEach) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.ready());
  RawSocket s = RawSocket::connect_unix(d.control_socket());
  const std::string lines =
      "{\"version\":1,\"command\":\"status\"}\n"
      "nonsense\n"
      "{\"version\":1,\"command\":\"status\"}\n";
  ASSERT_TRUE(s.send_all(lines.data(), lines.size()));
  for (bool ok : {true, false, true}) {
    json reply = parse_reply(s.read_line());
    ASSERT_TRUE(reply.is_object());
    EXPECT_EQ(reply.value("ok", !ok), ok) << reply.dump();
  }
}

TEST_F(Daemon, OversizedControlRequestIsRefusedAndClosed) {
  DaemonProcess d(dir_.path());
  ASSERT_TRUE(d.ready());
  RawSocket s = RawSocket::connect_unix(d.control_socket());
  ASSERT_TRUE(s.is_open());
  const std::string huge(128 * 1024, 'x');  // no newline: the server must not wait for one
  ASSERT_TRUE(s.send_all(huge.data(), huge.size()));
  json reply = parse_reply(s.read_line());
  ASSERT_TRUE(reply.is_object());
  EXPECT_EQ(reply.value("ok", true), false);
  EXPECT_EQ(reply["error"].value("code", ""), "request_too_large") << reply.dump();
  EXPECT_TRUE(s.read_until_closed().closed);
  // The daemon is fine.
  json status =
      parse_reply(control_request(d.control_socket(), R"({"version":1,"command":"status"})"));
  EXPECT_EQ(status.value("ok", false), true);
}

}  // namespace
}  // namespace snapstore::integration
