// The control socket's transport: an in-process ControlServer with test handlers (threads,
// serialisation, many clients, limits), and snapstored's control socket given requests
// that must change nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "ctl_support.h"
#include "daemon/control_server.h"

namespace snapstore::integration {
namespace {

using json = nlohmann::json;

// A ControlServer on a private socket, its io_context run by one background thread.
class ControlSocket : public ::testing::Test {
 protected:
  ControlSocket() {
    server_.add_command("where", [this](const json&) -> Result<json> {
      return json{{"on_io_thread", std::this_thread::get_id() == io_thread_id_.load()}};
    });
    server_.add_command("slow", [this](const json& args) -> Result<json> {
      const int now = ++running_;
      max_running_ = std::max(max_running_.load(), now);
      std::this_thread::sleep_for(std::chrono::milliseconds(args.value("ms", 50)));
      --running_;
      ++calls_;
      return json{{"id", args.value("id", 0)}};
    });
  }
  void SetUp() override {
    ASSERT_TRUE(server_.listen(socket_, 0600).is_ok());
    io_thread_ = std::thread([this] {
      io_thread_id_ = std::this_thread::get_id();
      auto guard = boost::asio::make_work_guard(io_);
      io_.run();
    });
    ASSERT_TRUE(eventually([&] { return io_thread_id_.load() != std::thread::id(); }));
  }
  ~ControlSocket() override {
    server_.stop();
    io_.stop();
    if (io_thread_.joinable()) io_thread_.join();
  }

  json ask(RawSocket& s, const json& request) {
    const std::string line = request.dump() + "\n";
    EXPECT_TRUE(s.send_all(line.data(), line.size()));
    auto reply = s.read_line(10s);
    EXPECT_TRUE(reply) << "no reply to " << request.dump();
    return json::parse(reply.value_or("null"), nullptr, false);
  }

  TempDir dir_;
  std::filesystem::path socket_ = dir_.path() / "ctl.sock";
  boost::asio::io_context io_;
  ControlServer server_{io_, {.max_request_bytes = 1024, .max_clients = 8}};
  std::thread io_thread_;
  std::atomic<std::thread::id> io_thread_id_{};
  std::atomic<int> running_{0}, max_running_{0}, calls_{0};
};

TEST_F(ControlSocket, HandlersRunOffTheIoThread) {
  RawSocket s = RawSocket::connect_unix(socket_);
  json reply = ask(s, {{"version", 1}, {"command", "where"}});
  EXPECT_EQ(reply["result"].value("on_io_thread", true), false) << reply.dump();
}

// While one client's slow command runs, the io thread still serves: another client's
// malformed request is answered at once, and the slow command's client is not starved.
TEST_F(ControlSocket, ASlowHandlerDoesNotBlockTheIoThread) {
  RawSocket slow = RawSocket::connect_unix(socket_);
  const std::string request = json{{"version", 1}, {"command", "slow"}, {"args", {{"ms", 1000}}}}.dump() + "\n";
  ASSERT_TRUE(slow.send_all(request.data(), request.size()));
  std::this_thread::sleep_for(100ms);
  RawSocket other = RawSocket::connect_unix(socket_);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(other.send_all("{\n", 2));
  auto reply = other.read_line(5s);
  ASSERT_TRUE(reply);
  EXPECT_NE(reply->find("bad_request"), std::string::npos) << *reply;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms)
      << "a parse error waited for the slow handler";
  EXPECT_TRUE(slow.read_line(5s));
}

TEST_F(ControlSocket, SeveralClientsAtOnceAreServedOneHandlerAtATime) {
  constexpr int clients = 6, requests = 5;
  std::vector<std::future<int>> done;
  for (int c = 0; c < clients; ++c)
    done.push_back(std::async(std::launch::async, [this, c] {
      RawSocket s = RawSocket::connect_unix(socket_);
      int good = 0;
      for (int i = 0; i < requests; ++i) {
        const int id = c * 100 + i;
        json reply = ask(s, {{"version", 1}, {"command", "slow"}, {"args", {{"ms", 5}, {"id", id}}}});
        good += reply.value("ok", false) && reply["result"].value("id", -1) == id;
      }
      return good;
    }));
  for (auto& f : done) EXPECT_EQ(f.get(), requests);
  EXPECT_EQ(calls_.load(), clients * requests);
  EXPECT_EQ(max_running_.load(), 1) << "handlers ran at the same time";
}

TEST_F(ControlSocket, PipelinedRequestsAreAnsweredInOrder) {
  RawSocket s = RawSocket::connect_unix(socket_);
  std::string lines;
  for (int i = 0; i < 5; ++i)
    lines += json{{"version", 1}, {"command", "slow"}, {"args", {{"ms", 1}, {"id", i}}}}.dump() +
             (i == 2 ? "\r\n" : "\n");
  ASSERT_TRUE(s.send_all(lines.data(), lines.size()));
  for (int i = 0; i < 5; ++i) {
    auto line = s.read_line(5s);
    ASSERT_TRUE(line);
    EXPECT_EQ(json::parse(*line)["result"].value("id", -1), i) << *line;
  }
}

TEST_F(ControlSocket, ProtocolErrorsRunNoHandler) {
  RawSocket s = RawSocket::connect_unix(socket_);
  for (const std::string line :
       {"nonsense", "[]", R"({"command":"slow"})", R"({"version":2,"command":"slow"})",
        R"({"version":1,"command":"slower"})", R"({"version":1,"command":"slow","args":7})"}) {
    SCOPED_TRACE(line);
    ASSERT_TRUE(s.send_all(line.data(), line.size()) && s.send_all("\n", 1));
    auto reply = s.read_line(5s);
    ASSERT_TRUE(reply);
    EXPECT_EQ(json::parse(*reply).value("ok", true), false) << *reply;
  }
  const std::string huge = R"({"version":1,"command":"slow","args":{"pad":")" +
                           std::string(2000, 'x') + "\"}}\n";
  ASSERT_TRUE(s.send_all(huge.data(), huge.size()));
  auto reply = s.read_line(5s);
  ASSERT_TRUE(reply);
  EXPECT_NE(reply->find("request_too_large"), std::string::npos) << *reply;
  EXPECT_TRUE(s.read_until_closed().closed);
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(ControlSocket, TooManyClientsAreToldAndClosed) {
  std::vector<RawSocket> held;
  for (int i = 0; i < 8; ++i) {
    held.push_back(RawSocket::connect_unix(socket_));
    json reply = ask(held.back(), {{"version", 1}, {"command", "where"}});
    ASSERT_EQ(reply.value("ok", false), true) << reply.dump();
  }
  RawSocket extra = RawSocket::connect_unix(socket_);
  auto line = extra.read_line(5s);
  ASSERT_TRUE(line);
  EXPECT_NE(line->find("busy"), std::string::npos) << *line;
  EXPECT_TRUE(extra.read_until_closed().closed);
  held.pop_back();
  held.back().close();
  held.pop_back();
  EXPECT_TRUE(eventually([&] {
    RawSocket again = RawSocket::connect_unix(socket_);
    const std::string req = R"({"version":1,"command":"where"})" "\n";
    again.send_all(req.data(), req.size());
    auto r = again.read_line(1s);
    return r && r->find("\"ok\":true") != std::string::npos;
  })) << "a freed slot was never reused";
}

// --- snapstored: requests that must change nothing --------------------------------

class DaemonControl : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(d_.ready()); }
  TempDir dir_;
  DaemonProcess d_{dir_.path()};
};

TEST_F(DaemonControl, BadRequestsChangeNothing) {
  const auto& sock = d_.control_socket();
  ASSERT_EQ(control(sock, "snapshot.create", {{"source", "origin"}, {"name", "keep"}}).value("ok", false), true);
  const auto before = volume_names(sock);
  RawSocket s = RawSocket::connect_unix(sock);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"version":1,"command":"snapshot.create","args":{"source":"origin","name":"a1","froce":true}})",
       "invalid_argument"},
      {R"({"version":1,"command":"snapshot.create","args":{"source":"origin"}})", "invalid_argument"},
      {R"({"version":1,"command":"snapshot.create","args":{"source":"origin","name":7}})",
       "invalid_argument"},
      {R"({"version":1,"command":"snapshot.create","args":{"source":"origin","name":"a2","readonly":"yes"}})",
       "invalid_argument"},
      {R"({"version":1,"command":"volume.delete","args":{"name":"keep","force":1}})",
       "invalid_argument"},
      {R"({"version":1,"command":"volume.delete","args":{"nam":"keep"}})", "invalid_argument"},
      {R"({"version":1,"command":"volume.create","args":{"name":"v","size":0}})", "invalid_argument"},
      {R"({"version":1,"command":"volume.create","args":{"name":"v","size":"lots"}})",
       "invalid_argument"},
      {R"({"version":1,"command":"volume.destroy","args":{"name":"keep"}})", "unknown_command"},
      {R"({"version":2,"command":"volume.delete","args":{"name":"keep"}})", "unsupported_version"},
      {R"({"version":1,"command":"volume.delete","args":["keep"]})", "bad_request"},
      {R"({"version":1,"command":"volume.delete","args":{"name":"keep"})", "bad_request"},
      {R"({"version":1,"command":"status","args":{"verbose":true}})", "invalid_argument"},
  };
  for (const auto& [line, code] : cases) {
    SCOPED_TRACE(line);
    ASSERT_TRUE(s.send_all(line.data(), line.size()) && s.send_all("\n", 1));
    auto reply = s.read_line();
    ASSERT_TRUE(reply);
    json j = json::parse(*reply, nullptr, false);
    EXPECT_EQ(j.value("ok", true), false) << *reply;
    EXPECT_EQ(j["error"].value("code", ""), code) << *reply;
  }
  // An oversized request that would be valid is refused whole, and the client closed.
  const std::string huge = R"({"version":1,"command":"volume.delete","args":{"name":"keep","pad":")" +
                           std::string(70000, 'x') + "\"}}\n";
  RawSocket big = RawSocket::connect_unix(sock);
  big.send_all(huge.data(), huge.size());
  auto reply = big.read_line();
  ASSERT_TRUE(reply);
  EXPECT_NE(reply->find("request_too_large"), std::string::npos) << *reply;
  EXPECT_EQ(volume_names(sock), before);
  EXPECT_EQ(nbd_list_exports(d_.nbd_socket()), before);
}

TEST_F(DaemonControl, SeveralControlClientsAtOnce) {
  constexpr int clients = 4, each = 5;
  std::vector<std::future<int>> done;
  for (int c = 0; c < clients; ++c)
    done.push_back(std::async(std::launch::async, [&, c] {
      int good = 0;
      for (int i = 0; i < each; ++i) {
        const std::string name = "c" + std::to_string(c) + "-" + std::to_string(i);
        json r = control(d_.control_socket(), "snapshot.create", {{"source", "origin"}, {"name", name}});
        good += r.value("ok", false);
        json list = control(d_.control_socket(), "volume.list", {{"usage", false}});
        good += list.value("ok", false) ? 0 : -100;
      }
      return good;
    }));
  for (auto& f : done) EXPECT_EQ(f.get(), each);
  EXPECT_EQ(volume_names(d_.control_socket()).size(), std::size_t{clients * each + 1});
  EXPECT_EQ(nbd_list_exports(d_.nbd_socket()).size(), std::size_t{clients * each + 1});
}

}  // namespace
}  // namespace snapstore::integration
