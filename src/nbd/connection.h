// Connection: one NBD client, from greeting to close.
//
// Negotiation runs asynchronously on the connection's strand (the handshake is a pure
// state machine, handshake.h; this class only moves its bytes). Once the client enters
// transmission, the socket is handed to a Session (session.h) whose threads serve the
// requests with blocking I/O.
//
// Invariants:
//  1. A connection that has not finished negotiating within handshake_timeout is closed,
//     so half-open clients cannot pile up; idle attached clients only hold their threads.
//     In transmission, a client that stalls in the middle of a request is closed after
//     stall_timeout, and the memory its requests hold is bounded (session.h).
//  2. stop() ends the connection gracefully: during negotiation it closes at once; in
//     transmission no new requests are read, in-flight ones complete and their replies
//     are sent. force_close() also breaks sends blocked on a client that never reads.
//  3. The registry holds every live connection until its socket is closed, and the
//     io_context keeps running until every session has ended.
//  4. A connection is attached to an export (export_name() non-empty) before the client is
//     told it may enter transmission, and only if the ExportTable still maps that name to
//     the volume negotiation found: whoever removes an export from the table and then stops
//     the connections attached to it (Server::disconnect_export) reaches every client that
//     got in, and no client gets in afterwards.
#pragma once

#include "nbd/asio.h"
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "nbd/handshake.h"
#include "nbd/request_parser.h"
#include "nbd/session.h"
#include "nbd/transmission.h"

namespace snapstore::nbd {

struct ConnectionLimits {
  std::chrono::milliseconds handshake_timeout{30000};
  unsigned threads_per_connection = 4;  // requests of one client that run at once
  std::chrono::milliseconds stall_timeout{60000};  // a request half-sent, a reply unread
  std::size_t connection_memory = std::size_t{64} << 20;  // payloads and replies held at once
  HandshakeLimits handshake{};
};

class ConnectionRegistry;

struct ConnectionContext {
  const ExportTable& exports;
  ConnectionRegistry& registry;
  ConnectionLimits limits;
  std::shared_ptr<ServerMemory> memory;  // shared by every connection of the server
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using socket_type = boost::asio::generic::stream_protocol::socket;

  Connection(socket_type socket, ConnectionContext& context, std::string peer);
  void start();
  void stop();  // graceful; safe from any thread
  void force_close();
  const std::string& peer() const { return peer_; }
  // Unique among the connections of this process, never reused.
  std::uint64_t id() const { return id_; }
  // The export this connection attached, or empty while still negotiating.
  std::string export_name() const;

 private:
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<bool> negotiate();
  boost::asio::awaitable<bool> read_exact(void* data, std::size_t size);
  boost::asio::awaitable<void> send_now(std::vector<std::byte> bytes);
  bool claim_export(const Negotiated& negotiated);
  bool start_session();
  static void finished(std::shared_ptr<Connection> self);

  const std::uint64_t id_;
  socket_type socket_;
  ConnectionContext& context_;
  std::string peer_;
  boost::asio::steady_timer handshake_timer_;
  boost::asio::executor_work_guard<boost::asio::any_io_executor> keep_running_;
  std::atomic<bool> stopping_{false};
  Negotiated negotiated_;
  std::atomic<bool> in_transmission_{false};
  bool broken_ = false;  // a socket write failed during negotiation
  mutable std::mutex mutex_;  // guards session_ and export_name_
  std::shared_ptr<Session> session_;
  std::string export_name_;
};

// All live connections, so that shutdown and forced detach can reach them.
//
// Threads: stop_all, force_close_all, stop_attached and force_close run on the io thread
// (the copies of connection pointers they take must be dropped there; see finished()).
// count, count_attached and wait_gone may be called from any thread; wait_gone never on
// the io thread, which is the one that removes connections.
class ConnectionRegistry {
 public:
  void add(const std::shared_ptr<Connection>& c);
  void remove(const Connection* c);
  void stop_all();
  void force_close_all();
  // Stops every connection attached to `export_name` gracefully; returns their ids.
  std::vector<std::uint64_t> stop_attached(std::string_view export_name);
  void force_close(std::span<const std::uint64_t> ids);
  std::vector<std::shared_ptr<Connection>> live() const;
  std::size_t count() const;
  std::size_t count_attached(std::string_view export_name) const;
  // How many of `ids` are still registered.
  std::size_t count_of(std::span<const std::uint64_t> ids) const;
  // Waits until none of `ids` is registered; false if some still are at `deadline`.
  bool wait_gone(std::span<const std::uint64_t> ids,
                 std::chrono::steady_clock::time_point deadline) const;

 private:
  std::size_t count_of_locked(std::span<const std::uint64_t> ids) const;

  mutable std::mutex mutex_;
  mutable std::condition_variable removed_;
  std::vector<std::shared_ptr<Connection>> connections_;  // until finished() on the io thread
};

}  // namespace snapstore::nbd
