// Bounded memory per client and for the daemon (nbd/session.h, nbd/request_memory.h),
// measured on a real snapstored from /proc/PID/status: clients that announce large writes
// and send nothing, or ask for large reads and never read the replies, hold no more than
// their share, are disconnected after --stall-timeout, and do not slow anybody else down.
// An idle client (between requests) stays attached. The raw backend keeps the figures free
// of the pool's metadata cache.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_server.h"

namespace snapstore::integration {
namespace {

using json = nlohmann::json;
using std::chrono::steady_clock;

constexpr std::size_t mib = 1 << 20;
constexpr std::uint32_t max_request = 32u << 20;  // the largest request snapstored advertises
constexpr std::uint16_t cmd_read = 0, cmd_write = 1;
constexpr std::uint32_t simple_reply_magic = 0x67446698u;

// RssAnon of process `pid` in bytes, or 0 if it cannot be read.
std::size_t rss_anon(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::stoull(line.substr(8)) * 1024;
  return 0;
}

// The largest RssAnon seen while sampling for `span`.
std::size_t peak_rss_anon(pid_t pid, std::chrono::milliseconds span) {
  std::size_t peak = 0;
  const auto end = steady_clock::now() + span;
  while (steady_clock::now() < end) {
    peak = std::max(peak, rss_anon(pid));
    std::this_thread::sleep_for(20ms);
  }
  return peak;
}

std::size_t in_mib(std::size_t bytes) { return bytes / mib; }

class MemoryLimits : public ::testing::Test {
 protected:
  // A raw-backend daemon with a 2 s stall timeout and `extra` arguments.
  DaemonProcess start(std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"--stall-timeout", "2"});
    return DaemonProcess(dir_.path(), {.backend = "raw", .extra_args = extra});
  }
  static RawSocket attached(const DaemonProcess& d) {
    RawSocket s = RawSocket::connect_unix(d.nbd_socket());
    EXPECT_TRUE(raw_attach(s, "origin")) << "raw handshake failed";
    return s;
  }
  // Asks for `count` reads of 32 MiB and never reads a reply.
  static RawSocket reader_that_never_reads(const DaemonProcess& d, int count) {
    RawSocket s = attached(d);
    std::vector<std::uint8_t> requests;
    for (int i = 0; i < count; ++i) {
      auto r = request_header(0, cmd_read, static_cast<std::uint64_t>(i),
                              static_cast<std::uint64_t>(i % 2) * max_request, max_request);
      requests.insert(requests.end(), r.begin(), r.end());
    }
    EXPECT_TRUE(s.send_all(requests));
    return s;
  }
  static std::size_t connections(const DaemonProcess& d) {
    auto line = control_request(d.control_socket(), R"({"version":1,"command":"status"})");
    json j = json::parse(line.value_or(""), nullptr, false);
    return j.is_object() ? j["result"].value("connections", std::size_t{999}) : 999;
  }
  // Waits until only `left` connections remain; how long that took from `since`.
  static std::optional<steady_clock::duration> closed_down_to(const DaemonProcess& d,
                                                              std::size_t left,
                                                              steady_clock::time_point since) {
    if (!eventually([&] { return connections(d) == left; }, 15s)) return std::nullopt;
    return steady_clock::now() - since;
  }

  TempDir dir_;
};

TEST_F(MemoryLimits, ClientsThatStopAfterAWriteHeaderHoldNothingAndAreClosed) {
  DaemonProcess d = start();
  ASSERT_TRUE(d.ready());
  auto good = d.connect();
  ASSERT_TRUE(good);
  ASSERT_TRUE(write_read_within(good.get(), 0, 1));
  RawSocket idle = attached(d);  // attached and silent: idle, not stalled
  const std::size_t before = rss_anon(d.pid());
  ASSERT_GT(before, 0u) << "no RssAnon in /proc/" << d.pid() << "/status";

  std::vector<RawSocket> stalled;
  steady_clock::time_point first_sent;
  for (std::uint64_t i = 0; i < 40; ++i) {
    RawSocket s = attached(d);
    ASSERT_TRUE(s.send_all(request_header(0, cmd_write, i, 0, max_request)));
    if (i == 0) first_sent = steady_clock::now();
    stalled.push_back(std::move(s));
  }
  // Meanwhile another client is served promptly and correctly.
  const auto served_from = steady_clock::now();
  for (std::uint64_t i = 0; i < 32; ++i)
    ASSERT_TRUE(write_read_within(good.get(), (i % 16) << 20, 100 + i, 2s))
        << "4k request " << i << " was not served within 2 s";
  const auto served_in = steady_clock::now() - served_from;
  const std::size_t peak = peak_rss_anon(d.pid(), 1s);
  RecordProperty("rss_anon_growth_mib", static_cast<int>(in_mib(peak - std::min(peak, before))));
  EXPECT_LT(peak, before + 256 * mib)
      << "40 write headers made RssAnon grow by " << in_mib(peak - before) << " MiB";
  EXPECT_LT(served_in, 5s) << "32 4k write+read pairs took "
                           << std::chrono::duration_cast<std::chrono::milliseconds>(served_in).count()
                           << " ms";

  auto first = stalled.front().read_until_closed(10s);
  const auto closed_after = steady_clock::now() - first_sent;
  EXPECT_TRUE(first.closed && first.bytes.empty()) << "a stalled writer was not closed";
  EXPECT_GE(closed_after, 1900ms) << "closed before the stall timeout";
  for (std::size_t i = 1; i < stalled.size(); ++i) {
    if (stalled[i].read_until_closed(5s).closed) continue;
    ADD_FAILURE() << "stalled writer " << i << " was not closed";
    break;
  }

  // The idle client is still attached and served, and so is the other one.
  ASSERT_TRUE(idle.send_all(request_header(0, cmd_read, 7, 0, 4096)));
  std::uint8_t reply[16];
  ASSERT_TRUE(idle.recv_exact(reply, sizeof reply)) << "the idle client was disconnected";
  EXPECT_EQ(get_be32(reply), simple_reply_magic);
  EXPECT_EQ(get_be32(reply + 4), 0u);
  std::vector<std::uint8_t> data(4096);
  EXPECT_TRUE(idle.recv_exact(data.data(), data.size()));
  EXPECT_TRUE(write_read_within(good.get(), 0, 2));
  EXPECT_NE(d.log().find("arrived for 2000 ms"), std::string::npos) << d.log();
}

TEST_F(MemoryLimits, AClientThatStopsHalfWayThroughAPayloadIsClosed) {
  DaemonProcess d = start();
  ASSERT_TRUE(d.ready());
  RawSocket s = attached(d);
  std::vector<std::uint8_t> half(1 << 20, 0xa5);
  ASSERT_TRUE(s.send_all(request_header(0, cmd_write, 1, 0, 4 << 20)));
  ASSERT_TRUE(s.send_all(half));
  const auto sent = steady_clock::now();
  auto rest = s.read_until_closed(10s);
  EXPECT_TRUE(rest.closed && rest.bytes.empty()) << "the stalled writer was not closed";
  EXPECT_GE(steady_clock::now() - sent, 1900ms);
  auto h = d.connect();
  ASSERT_TRUE(h);
  std::vector<char> block(4096);
  ASSERT_EQ(nbd_pread(h.get(), block.data(), block.size(), 0, 0), 0) << nbd_error_text();
  EXPECT_TRUE(all_zero(block.data(), block.size())) << "half a write was applied";
}

// Eight threads of one client could each hold a 32 MiB reply; its share (64 MiB by
// default) lets two of them.
TEST_F(MemoryLimits, AClientThatDoesNotReadItsRepliesHoldsOnlyItsShareAndIsClosed) {
  DaemonProcess d = start({"--threads", "8"});
  ASSERT_TRUE(d.ready());
  const std::size_t before = rss_anon(d.pid());
  ASSERT_GT(before, 0u);
  RawSocket stuck = reader_that_never_reads(d, 16);
  const auto sent = steady_clock::now();
  const std::size_t peak = peak_rss_anon(d.pid(), 1500ms);
  RecordProperty("rss_anon_growth_mib", static_cast<int>(in_mib(peak - std::min(peak, before))));
  EXPECT_LT(peak, before + 112 * mib)
      << "unread replies made RssAnon grow by " << in_mib(peak - before) << " MiB";
  auto took = closed_down_to(d, 0, sent);
  ASSERT_TRUE(took) << "the client that never reads was not disconnected";
  EXPECT_GE(*took, 1900ms);
  EXPECT_NE(d.log().find("a reply was not read for 2000 ms"), std::string::npos) << d.log();
  auto h = d.connect();
  ASSERT_TRUE(h);
  EXPECT_TRUE(write_read_within(h.get(), 0, 3)) << "its memory was not given back";
}

// Three such clients could hold 64 MiB each; the daemon's limit is 96 MiB.
TEST_F(MemoryLimits, ClientsThatDoNotReadTheirRepliesHoldAtMostTheDaemonLimit) {
  DaemonProcess d = start({"--threads", "8", "--memory-limit", "96M"});
  ASSERT_TRUE(d.ready());
  const std::size_t before = rss_anon(d.pid());
  ASSERT_GT(before, 0u);
  std::vector<RawSocket> stuck;
  for (int i = 0; i < 3; ++i) stuck.push_back(reader_that_never_reads(d, 16));
  const auto sent = steady_clock::now();
  const std::size_t peak = peak_rss_anon(d.pid(), 1500ms);
  RecordProperty("rss_anon_growth_mib", static_cast<int>(in_mib(peak - std::min(peak, before))));
  EXPECT_LT(peak, before + 160 * mib)
      << "unread replies made RssAnon grow by " << in_mib(peak - before) << " MiB";
  auto took = closed_down_to(d, 0, sent);
  ASSERT_TRUE(took) << "the clients that never read were not disconnected";
  auto h = d.connect();
  ASSERT_TRUE(h);
  EXPECT_TRUE(write_read_within(h.get(), 0, 4)) << "their memory was not given back";
}

}  // namespace
}  // namespace snapstore::integration
