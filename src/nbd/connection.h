// Connection: one NBD client, from greeting to close, on its own strand.
//
// The handshake and request parsing are pure state machines (handshake.h,
// request_parser.h); this class only moves bytes between them and the socket, hands
// validated requests to the worker pool, and writes replies in completion order.
//
// Invariants:
//  1. Everything that touches the socket or the connection's state runs on its strand;
//     only Volume calls run on worker threads.
//  2. At most limits.max_in_flight requests (and max_in_flight_bytes of payload and read
//     data) are outstanding; past that the connection stops reading until replies go out,
//     so a client that never reads its replies only stalls itself.
//  3. A connection that has not finished negotiating within handshake_timeout is closed.
//  4. stop() ends the connection gracefully: no new requests are read, in-flight ones
//     complete and their replies are sent, then the socket closes.
#pragma once

#include "nbd/asio.h"
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "nbd/handshake.h"
#include "nbd/request_parser.h"
#include "nbd/transmission.h"

namespace snapstore::nbd {

struct ConnectionLimits {
  std::chrono::milliseconds handshake_timeout{30000};
  std::uint32_t max_in_flight = 128;
  std::uint64_t max_in_flight_bytes = 256ull << 20;
  HandshakeLimits handshake{};
};

class ConnectionRegistry;

struct ConnectionContext {
  const ExportTable& exports;
  boost::asio::thread_pool& workers;
  ConnectionRegistry& registry;
  ConnectionLimits limits;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using socket_type = boost::asio::generic::stream_protocol::socket;

  Connection(socket_type socket, ConnectionContext& context, std::string peer);
  void start();
  void stop();  // graceful; safe from any thread
  const std::string& peer() const { return peer_; }
  // The export this connection attached, or empty while still negotiating.
  std::string export_name() const;

 private:
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<bool> negotiate();
  boost::asio::awaitable<void> transmit();
  boost::asio::awaitable<bool> read_exact(void* data, std::size_t size);
  boost::asio::awaitable<bool> discard(std::size_t size);
  boost::asio::awaitable<void> wait_until(auto&& condition);
  boost::asio::awaitable<void> send_now(std::vector<std::byte> bytes);
  void dispatch(const Request& request, std::unique_ptr<std::byte[]> payload);
  void finish(Reply reply, std::uint64_t bytes);
  void enqueue(Reply reply);
  void start_write();
  void wake() { wake_.cancel(); }
  bool has_room() const;

  socket_type socket_;
  ConnectionContext& context_;
  std::string peer_;
  boost::asio::steady_timer wake_;
  boost::asio::steady_timer handshake_timer_;
  Negotiated negotiated_;
  std::unique_ptr<TransmissionContext> transmission_;
  std::atomic<bool> stopping_{false};
  bool in_transmission_ = false;
  bool broken_ = false;  // a socket write failed: stop everything
  std::uint32_t in_flight_ = 0;
  std::uint64_t in_flight_bytes_ = 0;
  std::deque<Reply> pending_;
  std::vector<Reply> writing_;
  mutable std::mutex name_mutex_;
  std::string export_name_;
};

// All live connections, so that shutdown (and later, forced detach) can reach them.
class ConnectionRegistry {
 public:
  void add(const std::shared_ptr<Connection>& c);
  void remove(const Connection* c);
  void stop_all();
  std::size_t count() const;
  std::size_t count_attached(std::string_view export_name) const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::weak_ptr<Connection>> connections_;
};

}  // namespace snapstore::nbd
