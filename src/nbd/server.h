// Server: accepts NBD clients on TCP and Unix sockets and runs a Connection for each.
//
// Invariants:
//  1. TCP listens only where told (the daemon defaults to 127.0.0.1); Unix sockets are
//     created with the requested mode (0600 unless a group is configured) and removed on stop.
//  2. Past max_connections, new clients are accepted and closed at once, so a flood of idle
//     clients cannot exhaust descriptors needed by others.
//  3. stop() closes the listeners and stops every connection gracefully (after
//     stop_grace, blocked sends are broken); once they have all finished, the io_context
//     runs out of work.
//  4. disconnect_export(name) ends the connections attached to one export the way stop()
//     ends them all, and waits for them: the clients of other exports are untouched.
//  5. The payloads and read replies of all connections together hold at most
//     memory_limit bytes (and each connection at most limits.connection_memory), plus
//     idle buffers kept for reuse (request_memory.h); a request waits for room.
#pragma once

#include "nbd/asio.h"
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nbd/connection.h"

namespace snapstore::nbd {

struct ServerOptions {
  ConnectionLimits limits{};
  std::size_t max_connections = 512;
  std::size_t memory_limit = std::size_t{512} << 20;  // invariant 5
  // How long stop() lets in-flight requests finish before breaking blocked sends.
  std::chrono::milliseconds stop_grace{5000};
};

class Server {
 public:
  Server(boost::asio::io_context& io, const ExportTable& exports, ServerOptions options = {});
  ~Server();

  Status listen_tcp(const std::string& host, std::uint16_t port);
  // mode: permission bits for the socket file; gid: group owner, or -1 to leave it.
  Status listen_unix(const std::filesystem::path& path, unsigned mode, int gid = -1);
  std::uint16_t tcp_port() const { return tcp_port_; }
  void stop();

  // Makes every connection attached to `export_name` stop reading requests, run and answer
  // the ones it already has, then close; returns once they have all gone, so
  // connections().count_attached(export_name) is 0 unless clients attached since.
  // "Already has" = read, or waiting in the socket's receive queue: the socket is shut for
  // reading, which on a Unix socket also stops the client sending more; a TCP client that
  // keeps sending is cut off by the timeout.
  // After `timeout`, the remaining ones are force-closed (replies not yet sent are lost)
  // and the result is errc::busy, saying how many were still open a moment later (a
  // request stuck inside the volume keeps its connection until the volume returns).
  //
  // Call from any thread except the io thread (it waits for work done there; on the io
  // thread the result is errc::invalid_argument at once). To keep clients from attaching
  // again, remove the export from the ExportTable first: a client still negotiating is then
  // refused (GO gets NBD_REP_ERR_UNKNOWN, EXPORT_NAME a closed connection).
  Status disconnect_export(std::string_view export_name, std::chrono::milliseconds timeout);

  ConnectionRegistry& connections() { return registry_; }

 private:
  template <typename Acceptor>
  boost::asio::awaitable<void> accept_loop(Acceptor& acceptor);
  void admit(Connection::socket_type socket, std::string peer);
  void watch_stop();

  boost::asio::io_context& io_;
  ConnectionRegistry registry_;
  std::shared_ptr<ServerMemory> memory_;  // before context_; sessions share it
  ConnectionContext context_;
  ServerOptions options_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> tcp_acceptors_;
  std::vector<std::unique_ptr<boost::asio::local::stream_protocol::acceptor>> unix_acceptors_;
  std::vector<std::filesystem::path> unix_paths_;
  std::uint16_t tcp_port_ = 0;
  bool stopped_ = false;
  boost::asio::steady_timer stop_timer_;
  std::chrono::steady_clock::time_point stop_deadline_;
};

}  // namespace snapstore::nbd
