// Listeners and accept loops. See server.h.
#include "nbd/server.h"

#include "nbd/unix_listener.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <future>

namespace snapstore::nbd {

namespace asio = boost::asio;

Server::Server(asio::io_context& io, const ExportTable& exports, ServerOptions options)
    : io_(io),
      memory_(std::make_shared<ServerMemory>(options.memory_limit)),
      context_{exports, registry_, options.limits, memory_},
      options_(options),
      stop_timer_(io) {}

Server::~Server() {
  for (const auto& p : unix_paths_) ::unlink(p.c_str());
}

Status Server::listen_tcp(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return invalid_argument("'" + host + "' is not an IP address");
  auto acceptor = std::make_unique<asio::ip::tcp::acceptor>(io_);
  asio::ip::tcp::endpoint endpoint(address, port);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return io_error("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  tcp_port_ = acceptor->local_endpoint().port();
  spdlog::info("serving NBD on {}:{}", host, tcp_port_);
  asio::co_spawn(io_, accept_loop(*acceptor), asio::detached);
  tcp_acceptors_.push_back(std::move(acceptor));
  return Status::ok();
}

Status Server::listen_unix(const std::filesystem::path& path, unsigned mode, int gid) {
  auto acceptor = listen_unix_socket(io_, path, mode, gid);
  if (!acceptor) return acceptor.status();
  spdlog::info("serving NBD on unix socket {}", path.string());
  unix_paths_.push_back(path);
  asio::co_spawn(io_, accept_loop(**acceptor), asio::detached);
  unix_acceptors_.push_back(std::move(acceptor).value());
  return Status::ok();
}

template <typename Acceptor>
asio::awaitable<void> Server::accept_loop(Acceptor& acceptor) {
  for (;;) {
    boost::system::error_code ec;
    auto socket = co_await acceptor.async_accept(asio::make_strand(io_),
                                                 asio::redirect_error(asio::use_awaitable, ec));
    if (stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      spdlog::warn("accept failed: {}", ec.message());
      continue;
    }
    std::string peer = "unix";
    if constexpr (std::is_same_v<Acceptor, asio::ip::tcp::acceptor>) {
      socket.set_option(asio::ip::tcp::no_delay(true), ec);
      auto remote = socket.remote_endpoint(ec);
      peer = ec ? "tcp" : remote.address().to_string() + ":" + std::to_string(remote.port());
    }
    admit(Connection::socket_type(std::move(socket)), std::move(peer));
  }
}

void Server::admit(Connection::socket_type socket, std::string peer) {
  if (registry_.count() >= options_.max_connections) {
    spdlog::warn("{}: refused, {} connections already open", peer, options_.max_connections);
    boost::system::error_code ec;
    socket.close(ec);
    return;
  }
  spdlog::debug("{}: connected", peer);
  std::make_shared<Connection>(std::move(socket), context_, std::move(peer))->start();
}

void Server::stop() {
  asio::post(io_, [this] {
    if (stopped_) return;
    stopped_ = true;
    boost::system::error_code ec;
    for (auto& a : tcp_acceptors_) a->close(ec);
    for (auto& a : unix_acceptors_) a->close(ec);
    for (const auto& p : unix_paths_) ::unlink(p.c_str());
    unix_paths_.clear();
    registry_.stop_all();
    stop_deadline_ = std::chrono::steady_clock::now() + options_.stop_grace;
    watch_stop();
  });
}

// Until every connection has gone: after the grace period, break sends that a client
// never reads, so shutdown cannot hang on it.
void Server::watch_stop() {
  if (registry_.count() == 0) return;
  if (std::chrono::steady_clock::now() >= stop_deadline_) registry_.force_close_all();
  stop_timer_.expires_after(std::chrono::milliseconds(50));
  stop_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) watch_stop();
  });
}

}  // namespace snapstore::nbd

namespace snapstore::nbd {

namespace {
// After force-closing, how long disconnect_export waits before it reports what is left.
constexpr std::chrono::milliseconds force_close_grace{1000};
}  // namespace

Status Server::disconnect_export(std::string_view export_name, std::chrono::milliseconds timeout) {
  if (io_.get_executor().running_in_this_thread())
    return invalid_argument("disconnect_export cannot wait on the io thread");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string name(export_name);
  auto stopped = std::make_shared<std::promise<std::vector<std::uint64_t>>>();
  auto ids_future = stopped->get_future();
  asio::post(io_, [this, stopped, name] { stopped->set_value(registry_.stop_attached(name)); });
  if (ids_future.wait_until(deadline) != std::future_status::ready)
    return Status(errc::busy, "the NBD server did not get to disconnecting '" + name + "' within " +
                                  std::to_string(timeout.count()) + " ms");
  const std::vector<std::uint64_t> ids = ids_future.get();
  if (registry_.wait_gone(ids, deadline)) {
    spdlog::info("export '{}': {} connection(s) disconnected", name, ids.size());
    return Status::ok();
  }
  const std::size_t late = registry_.count_of(ids);
  asio::post(io_, [this, ids] { registry_.force_close(ids); });
  (void)registry_.wait_gone(ids, std::chrono::steady_clock::now() + force_close_grace);
  const std::size_t left = registry_.count_of(ids);
  spdlog::warn("export '{}': {} connection(s) force-closed after {} ms, {} still open", name, late,
               timeout.count(), left);
  return Status(errc::busy, std::to_string(late) + " connection(s) to '" + name +
                                "' did not finish within " + std::to_string(timeout.count()) +
                                " ms and were force-closed; " + std::to_string(left) +
                                " still open");
}

}  // namespace snapstore::nbd
