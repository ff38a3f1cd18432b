// nbd::Server::disconnect_export through libnbd: requests in flight are answered before the
// connection closes, clients of other exports are untouched, a removed export refuses new
// clients, and a connection that cannot finish is force-closed after the timeout.
#include <gtest/gtest.h>

#include <future>

#include "test_server.h"
#include "test_volumes.h"

namespace snapstore::integration {
namespace {

constexpr std::uint64_t gated_size = 8ull << 20;
constexpr std::size_t block = 4096;

class Disconnect : public ::testing::Test {
 protected:
  Disconnect() { EXPECT_TRUE(server_.exports().add("gated", gated_).is_ok()); }

  std::size_t attached(const char* name) {
    return server_.server().connections().count_attached(name);
  }
  Status disconnect(const char* name, std::chrono::milliseconds timeout = 10s) {
    return server_.server().disconnect_export(name, timeout);
  }

  InProcessServer server_;
  std::shared_ptr<TestVolume> gated_ = std::make_shared<TestVolume>(
      MemoryVolumeOptions{.size = gated_size, .description = "writes wait at a gate"});
};

// Lets libnbd send every request it has queued (bounded).
bool send_queued(nbd_handle* h, std::chrono::milliseconds timeout = 10s) {
  return eventually(
      [&] {
        if ((nbd_aio_get_direction(h) & LIBNBD_AIO_DIRECTION_WRITE) == 0) return true;
        nbd_poll(h, 10);
        return false;
      },
      timeout);
}

// True once libnbd has noticed that the server closed the connection.
bool closed_by_server(nbd_handle* h) {
  return eventually([&] {
    if (nbd_aio_is_dead(h) == 1 || nbd_aio_is_closed(h) == 1) return true;
    nbd_poll(h, 10);
    return false;
  });
}

TEST_F(Disconnect, WritesInFlightAreAnsweredThenTheConnectionCloses) {
  auto h = server_.connect("gated");
  auto other = server_.connect("origin");
  ASSERT_TRUE(h && other);
  ASSERT_EQ(attached("gated"), 1u);

  // Eight writes: four run inside the volume (one per session thread) and wait at the
  // gate; four more wait in the socket.
  gated_->close_gate();
  constexpr int writes = 8;
  std::vector<std::vector<char>> data;
  std::vector<int64_t> cookies;
  for (int i = 0; i < writes; ++i) {
    data.push_back(pattern(block, 100 + i));
    cookies.push_back(
        nbd_aio_pwrite(h.get(), data[i].data(), block, i * 65536ull, NBD_NULL_COMPLETION, 0));
    ASSERT_GT(cookies.back(), 0) << nbd_error_text();
  }
  ASSERT_TRUE(send_queued(h.get())) << "libnbd did not send its requests";
  ASSERT_TRUE(eventually([&] { return gated_->waiting_writes() == 4; }))
      << gated_->waiting_writes() << " writes reached the volume";

  auto result = std::async(std::launch::async, [&] { return disconnect("gated"); });
  EXPECT_EQ(result.wait_for(200ms), std::future_status::timeout)
      << "disconnect_export returned while requests were still running";
  gated_->open_gate();
  const Status st = result.get();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(attached("gated"), 0u);

  // Every write was answered, and answered ok, before the connection closed.
  ASSERT_TRUE(drain(h.get(), 10s)) << nbd_error_text();
  for (int i = 0; i < writes; ++i)
    EXPECT_EQ(nbd_aio_command_completed(h.get(), cookies[i]), 1) << i << ": " << nbd_error_text();
  EXPECT_TRUE(closed_by_server(h.get()));
  std::vector<char> buffer(block);
  EXPECT_EQ(nbd_pread(h.get(), buffer.data(), buffer.size(), 0, 0), -1);
  for (int i = 0; i < writes; ++i) {
    ASSERT_TRUE(gated_->read(i * 65536ull, std::as_writable_bytes(std::span(buffer))).is_ok());
    EXPECT_EQ(buffer, data[i]) << "write " << i << " did not land";
  }

  // The other export's client never noticed.
  EXPECT_EQ(attached("origin"), 1u);
  EXPECT_TRUE(write_read_within(other.get(), 0, 7));
}

TEST_F(Disconnect, EveryClientOfTheExportGoesAndOnlyThose) {
  std::vector<NbdHandle> gated, origin;
  for (int i = 0; i < 3; ++i) gated.push_back(server_.connect("gated"));
  for (int i = 0; i < 2; ++i) origin.push_back(server_.connect("origin"));
  for (auto& h : gated) ASSERT_TRUE(h);
  for (auto& h : origin) ASSERT_TRUE(h);
  ASSERT_EQ(attached("gated"), 3u);

  const Status st = disconnect("gated");
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(attached("gated"), 0u);
  for (auto& h : gated) EXPECT_TRUE(closed_by_server(h.get()));
  EXPECT_EQ(attached("origin"), 2u);
  for (std::size_t i = 0; i < origin.size(); ++i)
    EXPECT_TRUE(write_read_within(origin[i].get(), i * block, 20 + i));
}

TEST_F(Disconnect, AnExportWithoutClientsIsDoneAtOnce) {
  EXPECT_TRUE(disconnect("gated", 1s).is_ok());
  EXPECT_TRUE(disconnect("nosuch", 1s).is_ok());
}

// The order the control socket uses: remove from the table, then disconnect.
TEST_F(Disconnect, ARemovedExportRefusesNewClientsAndDisconnectEndsTheOldOnes) {
  auto h = server_.connect("gated");
  ConnectOptions o;
  o.export_name = "gated";
  o.opt_mode = true;
  auto negotiating = server_.connect(o);
  ASSERT_TRUE(h && negotiating);
  ASSERT_EQ(nbd_aio_is_negotiating(negotiating.get()), 1);

  ASSERT_TRUE(server_.exports().remove("gated").is_ok());
  // Removal alone does not detach anyone.
  EXPECT_TRUE(write_read_within(h.get(), 0, 1));
  // New clients are refused, by GO and by EXPORT_NAME.
  NbdHandle late = make_handle(o);
  ASSERT_TRUE(late);
  ASSERT_EQ(nbd_set_opt_mode(late.get(), false), 0);
  EXPECT_EQ(nbd_connect_unix(late.get(), server_.socket_path().c_str()), -1);
  RawSocket raw = server_.raw();
  EXPECT_FALSE(raw_attach(raw, "gated"));

  EXPECT_TRUE(disconnect("gated").is_ok());
  EXPECT_EQ(attached("gated"), 0u);
  EXPECT_TRUE(closed_by_server(h.get()));

  // A client that was negotiating all along is refused at GO and may pick another export.
  EXPECT_EQ(nbd_opt_go(negotiating.get()), -1);
  ASSERT_EQ(nbd_aio_is_negotiating(negotiating.get()), 1) << "a GO error ends nothing";
  ASSERT_EQ(nbd_set_export_name(negotiating.get(), "origin"), 0);
  ASSERT_EQ(nbd_opt_go(negotiating.get()), 0) << nbd_error_text();
  EXPECT_TRUE(write_read_within(negotiating.get(), 0, 2));
}

// A volume that takes itself out of the export table the first time GO or EXPORT_NAME asks
// for its size: the export goes between negotiation's lookup and the reply, the window
// that Connection::claim_export closes (connection.h, invariant 4).
class VanishingVolume final : public Volume {
 public:
  VanishingVolume(ExportTable& table, std::string name) : table_(table), name_(std::move(name)) {}
  std::uint64_t size() const override {
    if (armed_.exchange(false)) {
      EXPECT_TRUE(table_.remove(name_).is_ok());
    }
    return memory_.size();
  }
  bool read_only() const override { return false; }
  std::string description() const override { return "vanishing"; }
  Status read(std::uint64_t o, std::span<std::byte> out) override { return memory_.read(o, out); }
  Status write(std::uint64_t o, std::span<const std::byte> d, bool fua) override {
    return memory_.write(o, d, fua);
  }
  Status flush() override { return memory_.flush(); }
  Status trim(std::uint64_t o, std::uint64_t n, bool fua) override {
    return memory_.trim(o, n, fua);
  }
  Status write_zeroes(std::uint64_t o, std::uint64_t n, bool unmap, bool fast, bool fua) override {
    return memory_.write_zeroes(o, n, unmap, fast, fua);
  }
  Result<std::vector<Extent>> block_status(std::uint64_t o, std::uint64_t n) override {
    return memory_.block_status(o, n);
  }
  void arm() { armed_ = true; }

 private:
  ExportTable& table_;
  std::string name_;
  mutable std::atomic<bool> armed_{false};
  MemoryVolume memory_{MemoryVolumeOptions{.size = 1 << 20}};
};

TEST_F(Disconnect, AnExportRemovedWhileGoIsAnsweredIsRefused) {
  auto volume = std::make_shared<VanishingVolume>(server_.exports(), "vanishing");
  ASSERT_TRUE(server_.exports().add("vanishing", volume).is_ok());
  ConnectOptions o;
  o.export_name = "vanishing";
  o.opt_mode = true;
  auto h = server_.connect(o);
  ASSERT_TRUE(h);
  volume->arm();
  EXPECT_EQ(nbd_opt_go(h.get()), -1) << "attached to an export that was removed";
  ASSERT_EQ(nbd_aio_is_negotiating(h.get()), 1) << "the refusal is an ordinary GO error";
  EXPECT_EQ(attached("vanishing"), 0u);
  ASSERT_EQ(nbd_set_export_name(h.get(), "origin"), 0);
  ASSERT_EQ(nbd_opt_go(h.get()), 0) << nbd_error_text();

  // NBD_OPT_EXPORT_NAME cannot carry an error: the connection is closed instead.
  ASSERT_TRUE(server_.exports().add("vanishing", volume).is_ok());
  volume->arm();
  RawSocket raw = server_.raw();
  EXPECT_FALSE(raw_attach(raw, "vanishing"));
  EXPECT_TRUE(raw.read_until_closed().closed);
  EXPECT_EQ(attached("vanishing"), 0u);
}

TEST_F(Disconnect, AConnectionThatCannotFinishIsForceClosedAfterTheTimeout) {
  auto h = server_.connect("gated");
  ASSERT_TRUE(h);
  gated_->close_gate();
  const auto data = pattern(block, 3);
  const int64_t cookie = nbd_aio_pwrite(h.get(), data.data(), block, 0, NBD_NULL_COMPLETION, 0);
  ASSERT_GT(cookie, 0) << nbd_error_text();
  ASSERT_TRUE(send_queued(h.get()));
  ASSERT_TRUE(eventually([&] { return gated_->waiting_writes() == 1; }));

  const Status st = disconnect("gated", 200ms);
  EXPECT_EQ(st.code(), errc::busy) << st.to_string();
  EXPECT_NE(st.message().find("force-closed"), std::string::npos) << st.message();
  // The write is still inside the volume, so its connection is not gone yet.
  EXPECT_EQ(attached("gated"), 1u);
  EXPECT_TRUE(closed_by_server(h.get())) << "the client should see the socket closed";

  gated_->open_gate();
  EXPECT_TRUE(eventually([&] { return attached("gated") == 0; }));
}

TEST_F(Disconnect, OnTheIoThreadIsRefusedInsteadOfHanging) {
  auto h = server_.connect("gated");
  ASSERT_TRUE(h);
  std::promise<Status> done;
  auto result = done.get_future();
  boost::asio::post(server_.io(),
                    [&] { done.set_value(server_.server().disconnect_export("gated", 1s)); });
  ASSERT_EQ(result.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(result.get().code(), errc::invalid_argument);
  EXPECT_EQ(attached("gated"), 1u);
  EXPECT_TRUE(write_read_within(h.get(), 0, 4));
}

}  // namespace
}  // namespace snapstore::integration
