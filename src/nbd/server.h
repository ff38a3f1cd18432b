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
  ConnectionRegistry& connections() { return registry_; }

 private:
  template <typename Acceptor>
  boost::asio::awaitable<void> accept_loop(Acceptor& acceptor);
  void admit(Connection::socket_type socket, std::string peer);
  void watch_stop();

  boost::asio::io_context& io_;
  ConnectionRegistry registry_;
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
