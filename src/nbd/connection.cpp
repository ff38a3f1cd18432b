// Connection I/O: negotiation, the request loop, worker dispatch and the reply writer.
#include "nbd/connection.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace snapstore::nbd {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {

// Bytes a request holds in memory while in flight: its payload or its read buffer.
std::uint64_t buffered_bytes(const Request& r) {
  return (r.type == cmd_read || r.type == cmd_write) ? r.length : 0;
}

}  // namespace

Connection::Connection(socket_type socket, ConnectionContext& context, std::string peer)
    : socket_(std::move(socket)),
      context_(context),
      peer_(std::move(peer)),
      wake_(socket_.get_executor()),
      handshake_timer_(socket_.get_executor()) {
  wake_.expires_at(asio::steady_timer::time_point::max());
}

void Connection::start() {
  context_.registry.add(shared_from_this());
  asio::co_spawn(socket_.get_executor(),
                 [self = shared_from_this()]() -> awaitable<void> { co_await self->run(); },
                 asio::detached);
}

void Connection::stop() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->stopping_ = true;
    boost::system::error_code ec;
    if (self->in_transmission_)
      self->socket_.shutdown(socket_type::shutdown_receive, ec);  // ends the pending read
    else
      self->socket_.close(ec);
    self->wake();
  });
}

std::string Connection::export_name() const {
  std::lock_guard lock(name_mutex_);
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
  if (attached && !stopping_) {
    in_transmission_ = true;
    co_await transmit();
  }
  boost::system::error_code ec;
  socket_.shutdown(socket_type::shutdown_both, ec);
  socket_.close(ec);
  context_.registry.remove(this);
  spdlog::debug("{}: connection closed", peer_);
}

awaitable<bool> Connection::read_exact(void* data, std::size_t size) {
  boost::system::error_code ec;
  co_await asio::async_read(socket_, asio::buffer(data, size),
                            asio::redirect_error(use_awaitable, ec));
  co_return !ec;
}

awaitable<bool> Connection::discard(std::size_t size) {
  std::vector<std::byte> sink(std::min<std::size_t>(size, 1 << 20));
  while (size > 0) {
    std::size_t step = std::min(size, sink.size());
    if (!co_await read_exact(sink.data(), step)) co_return false;
    size -= step;
  }
  co_return true;
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

bool Connection::has_room() const {
  return in_flight_ < context_.limits.max_in_flight &&
         in_flight_bytes_ < context_.limits.max_in_flight_bytes;
}

awaitable<void> Connection::wait_until(auto&& condition) {
  while (!condition()) {
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

awaitable<void> Connection::transmit() {
  {
    std::lock_guard lock(name_mutex_);
    export_name_ = negotiated_.export_name;
  }
  Volume& volume = *negotiated_.volume;
  transmission_ = std::make_unique<TransmissionContext>(TransmissionContext{
      volume, negotiated_.structured_replies, negotiated_.meta_contexts});
  RequestParser parser({volume.size(), volume.read_only(), negotiated_.structured_replies,
                        !negotiated_.meta_contexts.empty(), volume.block_sizes()});
  spdlog::info("{}: attached export '{}'", peer_, negotiated_.export_name);
  std::array<std::byte, request_header_size> header;
  while (!broken_ && !stopping_) {
    co_await wait_until([this] { return has_room() || broken_ || stopping_; });
    if (broken_ || stopping_ || !co_await read_exact(header.data(), header.size())) break;
    ParsedRequest p = parser.parse(header);
    const Request& r = p.request;
    if (p.action == ParsedRequest::verdict::disconnect) break;
    if (p.action == ParsedRequest::verdict::close) {
      spdlog::warn("{}: closing connection: {}", peer_, p.reason);
      if (p.error) enqueue(error_reply(r, negotiated_.structured_replies, p.error, p.reason));
      break;
    }
    std::unique_ptr<std::byte[]> payload;
    if (p.action == ParsedRequest::verdict::reply_error) {
      if (p.payload_length && !co_await discard(p.payload_length)) break;
      spdlog::debug("{}: request error {}: {}", peer_, p.error, p.reason);
      enqueue(error_reply(r, negotiated_.structured_replies, p.error, p.reason));
      continue;
    }
    if (p.payload_length) {
      payload = std::make_unique_for_overwrite<std::byte[]>(p.payload_length);
      if (!co_await read_exact(payload.get(), p.payload_length)) break;
    }
    dispatch(r, std::move(payload));
  }
  co_await wait_until(
      [this] { return broken_ || (in_flight_ == 0 && pending_.empty() && writing_.empty()); });
}

void Connection::dispatch(const Request& request, std::unique_ptr<std::byte[]> payload) {
  const std::uint64_t bytes = buffered_bytes(request);
  ++in_flight_;
  in_flight_bytes_ += bytes;
  asio::post(context_.workers, [self = shared_from_this(), request, bytes,
                                payload = std::move(payload)]() mutable {
    std::span<const std::byte> data;
    if (payload) data = {payload.get(), request.length};
    Reply reply = execute(*self->transmission_, request, data);
    payload.reset();
    asio::post(self->socket_.get_executor(),
               [self, bytes, reply = std::move(reply)]() mutable {
                 self->finish(std::move(reply), bytes);
               });
  });
}

void Connection::finish(Reply reply, std::uint64_t bytes) {
  --in_flight_;
  in_flight_bytes_ -= bytes;
  enqueue(std::move(reply));
  wake();
}

void Connection::enqueue(Reply reply) {
  if (broken_) return;
  pending_.push_back(std::move(reply));
  if (writing_.empty()) start_write();
}

void Connection::start_write() {
  constexpr std::size_t max_batch = 64;
  std::vector<asio::const_buffer> buffers;
  while (!pending_.empty() && writing_.size() < max_batch) {
    writing_.push_back(std::move(pending_.front()));
    pending_.pop_front();
    const Reply& r = writing_.back();
    buffers.emplace_back(r.head.data(), r.head.size());
    if (r.data_length) buffers.emplace_back(r.data.get(), r.data_length);
  }
  if (writing_.empty()) return;
  asio::async_write(socket_, buffers,
                    [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                      self->writing_.clear();
                      if (ec) {
                        self->broken_ = true;
                        self->pending_.clear();
                        boost::system::error_code ignored;
                        self->socket_.close(ignored);
                      } else {
                        self->start_write();
                      }
                      self->wake();
                    });
}

void ConnectionRegistry::add(const std::shared_ptr<Connection>& c) {
  std::lock_guard lock(mutex_);
  connections_.push_back(c);
}

void ConnectionRegistry::remove(const Connection* c) {
  std::lock_guard lock(mutex_);
  std::erase_if(connections_, [c](const std::weak_ptr<Connection>& w) {
    auto p = w.lock();
    return !p || p.get() == c;
  });
}

void ConnectionRegistry::stop_all() {
  std::lock_guard lock(mutex_);
  for (auto& w : connections_)
    if (auto p = w.lock()) p->stop();
}

std::size_t ConnectionRegistry::count() const {
  std::lock_guard lock(mutex_);
  return connections_.size();
}

std::size_t ConnectionRegistry::count_attached(std::string_view export_name) const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(std::count_if(
      connections_.begin(), connections_.end(), [&](const std::weak_ptr<Connection>& w) {
        auto p = w.lock();
        return p && p->export_name() == export_name;
      }));
}

}  // namespace snapstore::nbd
