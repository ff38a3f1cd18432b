// Connection I/O: negotiation, the request loop, worker dispatch and the reply writer.
#include "nbd/connection.h"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace snapstore::nbd {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {
std::atomic<std::uint64_t> next_connection_id{1};
}  // namespace

Connection::Connection(socket_type socket, ConnectionContext& context, std::string peer)
    : id_(next_connection_id++),
      socket_(std::move(socket)),
      context_(context),
      peer_(std::move(peer)),
      handshake_timer_(socket_.get_executor()),
      keep_running_(socket_.get_executor()) {}

void Connection::start() {
  context_.registry.add(shared_from_this());
  asio::co_spawn(socket_.get_executor(),
                 [self = shared_from_this()]() -> awaitable<void> { co_await self->run(); },
                 asio::detached);
}

void Connection::stop() {
  stopping_ = true;
  {
    std::lock_guard lock(mutex_);
    if (session_) {
      session_->stop();
      return;
    }
  }
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ec;
    if (!self->in_transmission_) self->socket_.close(ec);
  });
}

void Connection::force_close() {
  std::lock_guard lock(mutex_);
  if (session_) session_->force_close();
}

std::string Connection::export_name() const {
  std::lock_guard lock(mutex_);
  return export_name_;
}

awaitable<void> Connection::run() {
  handshake_timer_.expires_after(context_.limits.handshake_timeout);
  handshake_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->in_transmission_) return;
    spdlog::info("{}: negotiation timed out", self->peer_);
    self->socket_.close(ec);
  });
  bool attached = co_await negotiate();
  handshake_timer_.cancel();
  if (attached && !stopping_ && start_session()) co_return;
  boost::system::error_code ec;
  socket_.shutdown(socket_type::shutdown_both, ec);
  socket_.close(ec);
  finished(shared_from_this());
}

// Hands the socket to a Session; the asio socket lets go of its descriptor.
bool Connection::start_session() {
  const int fd = ::dup(socket_.native_handle());
  if (fd < 0) {
    spdlog::error("{}: cannot hand the connection over: {}", peer_, std::strerror(errno));
    return false;
  }
  boost::system::error_code ec;
  socket_.close(ec);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  in_transmission_ = true;
  spdlog::info("{}: attached export '{}'", peer_, negotiated_.export_name);
  const SessionOptions options{.threads = context_.limits.threads_per_connection,
                               .stall_timeout = context_.limits.stall_timeout,
                               .connection_memory = context_.limits.connection_memory};
  auto session = std::make_shared<Session>(
      fd, negotiated_, options, context_.memory, peer_,
      [weak = weak_from_this()] {
        if (auto self = weak.lock()) finished(std::move(self));
      });
  {
    std::lock_guard lock(mutex_);
    session_ = session;
  }
  session->start();
  if (stopping_) session->stop();  // a stop() that came in while we were handing over
  return true;
}

// Attaches this connection to the export negotiation chose, unless the export has left the
// table (or now names another volume) since negotiation looked it up. The name is published
// before the table is checked again: either the check sees the removal, or the remover's
// later scan for attached connections sees this one (connection.h, invariant 4).
bool Connection::claim_export(const Negotiated& negotiated) {
  {
    std::lock_guard lock(mutex_);
    export_name_ = negotiated.export_name;
  }
  if (context_.exports.find(negotiated.export_name) == negotiated.volume) return true;
  std::lock_guard lock(mutex_);
  export_name_.clear();
  return false;
}

// Runs the clean-up on the io thread, which then drops the last reference: a Connection
// owns io objects and must never be destroyed on a session thread, where the io_context
// may already be gone.
void Connection::finished(std::shared_ptr<Connection> self) {
  auto executor = self->keep_running_.get_executor();
  asio::post(executor, [self = std::move(self)] {
    {
      std::lock_guard lock(self->mutex_);
      self->session_.reset();
    }
    self->context_.registry.remove(self.get());
    spdlog::debug("{}: connection closed", self->peer_);
    self->keep_running_.reset();
  });
}

awaitable<bool> Connection::read_exact(void* data, std::size_t size) {
  boost::system::error_code ec;
  co_await asio::async_read(socket_, asio::buffer(data, size),
                            asio::redirect_error(use_awaitable, ec));
  co_return !ec;
}

awaitable<void> Connection::send_now(std::vector<std::byte> bytes) {
  if (bytes.empty()) co_return;
  boost::system::error_code ec;
  co_await asio::async_write(socket_, asio::buffer(bytes), asio::redirect_error(use_awaitable, ec));
  if (ec) broken_ = true;
}

awaitable<bool> Connection::negotiate() {
  Handshake handshake(context_.exports, context_.limits.handshake);
  co_await send_now(handshake.greeting());
  std::array<std::byte, 4> flags_bytes;
  if (broken_ || !co_await read_exact(flags_bytes.data(), flags_bytes.size())) co_return false;
  HandshakeStep step = handshake.on_client_flags(load_be32(flags_bytes.data()));
  std::array<std::byte, option_header_size> header;
  std::vector<std::byte> data;
  while (!broken_ && !stopping_) {
    if (step.action == HandshakeStep::next::enter_transmission &&
        !claim_export(handshake.negotiated())) {
      spdlog::info("{}: export '{}' was removed during negotiation", peer_,
                   handshake.negotiated().export_name);
      step = handshake.on_export_gone();
    }
    co_await send_now(std::move(step.reply));
    switch (step.action) {
      case HandshakeStep::next::close:
        spdlog::info("{}: closing during negotiation: {}", peer_, step.reason);
        co_return false;
      case HandshakeStep::next::enter_transmission:
        negotiated_ = handshake.negotiated();
        co_return !broken_;
      case HandshakeStep::next::read_option_header:
        if (!co_await read_exact(header.data(), header.size())) co_return false;
        step = handshake.on_option_header(header);
        break;
      case HandshakeStep::next::read_option_data:
        data.resize(step.data_length);
        if (!co_await read_exact(data.data(), data.size())) co_return false;
        step = handshake.on_option_data(data);
        break;
    }
  }
  co_return false;
}

void ConnectionRegistry::add(const std::shared_ptr<Connection>& c) {
  std::lock_guard lock(mutex_);
  connections_.push_back(c);
}

void ConnectionRegistry::remove(const Connection* c) {
  {
    std::lock_guard lock(mutex_);
    std::erase_if(connections_, [c](const std::shared_ptr<Connection>& p) { return p.get() == c; });
  }
  removed_.notify_all();
}

void ConnectionRegistry::stop_all() {
  for (auto& c : live()) c->stop();
}

void ConnectionRegistry::force_close_all() {
  for (auto& c : live()) c->force_close();
}

std::vector<std::uint64_t> ConnectionRegistry::stop_attached(std::string_view export_name) {
  std::vector<std::uint64_t> ids;
  for (auto& c : live()) {
    if (c->export_name() != export_name) continue;
    ids.push_back(c->id());
    c->stop();
  }
  return ids;
}

void ConnectionRegistry::force_close(std::span<const std::uint64_t> ids) {
  for (auto& c : live())
    if (std::find(ids.begin(), ids.end(), c->id()) != ids.end()) c->force_close();
}

std::size_t ConnectionRegistry::count_of_locked(std::span<const std::uint64_t> ids) const {
  return static_cast<std::size_t>(std::count_if(
      connections_.begin(), connections_.end(),
      [&](const auto& p) { return std::find(ids.begin(), ids.end(), p->id()) != ids.end(); }));
}

std::size_t ConnectionRegistry::count_of(std::span<const std::uint64_t> ids) const {
  std::lock_guard lock(mutex_);
  return count_of_locked(ids);
}

bool ConnectionRegistry::wait_gone(std::span<const std::uint64_t> ids,
                                   std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mutex_);
  return removed_.wait_until(lock, deadline, [&] { return count_of_locked(ids) == 0; });
}

std::vector<std::shared_ptr<Connection>> ConnectionRegistry::live() const {
  std::lock_guard lock(mutex_);
  return connections_;
}

std::size_t ConnectionRegistry::count() const {
  std::lock_guard lock(mutex_);
  return connections_.size();
}

std::size_t ConnectionRegistry::count_attached(std::string_view export_name) const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(std::count_if(
      connections_.begin(), connections_.end(),
      [&](const std::shared_ptr<Connection>& p) { return p->export_name() == export_name; }));
}

}  // namespace snapstore::nbd
