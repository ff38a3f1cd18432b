// Blocking transmission on per-connection threads. See session.h.
#include "nbd/session.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

namespace snapstore::nbd {

namespace {

bool read_all(int fd, void* data, std::size_t size) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = ::recv(fd, p, size, MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool discard_all(int fd, std::size_t size, PageAlignedBytes& scratch) {
  scratch.resize(std::min<std::size_t>(std::max(scratch.size(), std::size_t{1} << 20), 1 << 20));
  while (size > 0) {
    std::size_t step = std::min(size, scratch.size());
    if (!read_all(fd, scratch.data(), step)) return false;
    size -= step;
  }
  return true;
}

bool write_all(int fd, std::span<const std::byte> head, std::span<const std::byte> body) {
  iovec iov[2] = {{const_cast<std::byte*>(head.data()), head.size()},
                  {const_cast<std::byte*>(body.data()), body.size()}};
  int count = body.empty() ? 1 : 2;
  iovec* v = iov;
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = v;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);  // a gone client is an error, not a signal
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= v->iov_len) {
      left -= v->iov_len;
      ++v;
      --count;
    }
    if (count > 0) {
      v->iov_base = static_cast<char*>(v->iov_base) + left;
      v->iov_len -= left;
    }
  }
  return true;
}

}  // namespace

Session::Session(int fd, Negotiated negotiated, unsigned threads, std::string peer,
                 std::function<void()> on_finished)
    : fd_(fd),
      negotiated_(std::move(negotiated)),
      thread_count_(std::max(1u, threads)),
      peer_(std::move(peer)),
      on_finished_(std::move(on_finished)),
      parser_({negotiated_.volume->size(), negotiated_.volume->read_only(),
               negotiated_.structured_replies, !negotiated_.meta_contexts.empty(),
               negotiated_.volume->block_sizes()}) {}

Session::~Session() {
  if (fd_ >= 0) ::close(fd_);
}

void Session::start() {
  running_ = thread_count_;
  for (unsigned i = 0; i < thread_count_; ++i)
    std::thread([self = shared_from_this()] { self->serve(); }).detach();
}

void Session::stop() {
  std::lock_guard lock(fd_mutex_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RD);
}

void Session::force_close() {
  std::lock_guard lock(fd_mutex_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void Session::end_reading(const std::string& why) {
  if (!reading_done_ && !why.empty()) spdlog::debug("{}: {}", peer_, why);
  reading_done_ = true;
}

// Reads one request under the read lock. Returns false when the session stops reading.
bool Session::read_request(ParsedRequest& parsed, PageAlignedBytes& payload) {
  std::lock_guard lock(read_mutex_);
  if (reading_done_) return false;
  std::array<std::byte, request_header_size> header;
  if (!read_all(fd_, header.data(), header.size())) {
    end_reading("client closed the connection");
    return false;
  }
  parsed = parser_.parse(header);
  switch (parsed.action) {
    case ParsedRequest::verdict::disconnect:
      end_reading("client disconnected");
      return false;
    case ParsedRequest::verdict::close:
      spdlog::warn("{}: closing connection: {}", peer_, parsed.reason);
      end_reading({});
      return parsed.error != 0;  // send the error, then stop
    case ParsedRequest::verdict::reply_error:
      if (parsed.payload_length && !discard_all(fd_, parsed.payload_length, payload)) {
        end_reading("client closed the connection");
        return false;
      }
      return true;
    case ParsedRequest::verdict::execute:
      if (parsed.payload_length) {
        if (payload.size() < parsed.payload_length) payload.resize(parsed.payload_length);
        if (!read_all(fd_, payload.data(), parsed.payload_length)) {
          end_reading("client closed the connection");
          return false;
        }
      }
      return true;
  }
  return false;
}

void Session::send(const Reply& reply) {
  std::lock_guard lock(write_mutex_);
  if (broken_) return;
  if (!write_all(fd_, reply.head, reply.body())) {
    broken_ = true;
    ::shutdown(fd_, SHUT_RDWR);  // wakes the reader: nothing more can be answered
  }
}

void Session::serve() {
  PageAlignedBytes payload;  // aligned: large writes go to the pool file with O_DIRECT
  PageAlignedBytes read_buffer;
  TransmissionContext ctx{*negotiated_.volume, negotiated_.structured_replies,
                          negotiated_.meta_contexts};
  ctx.read_buffer = &read_buffer;
  for (;;) {
    ParsedRequest p;
    if (!read_request(p, payload)) break;
    const Request& r = p.request;
    if (p.action == ParsedRequest::verdict::execute) {
      send(execute(ctx, r, {payload.data(), p.payload_length}));
    } else {
      send(error_reply(r, negotiated_.structured_replies, p.error, p.reason));
      if (p.action == ParsedRequest::verdict::close) break;
    }
  }
  finish_thread();
}

void Session::finish_thread() {
  if (--running_ != 0) return;
  {
    std::lock_guard lock(fd_mutex_);
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    fd_ = -1;
  }
  negotiated_.volume.reset();  // whatever outlives this thread holds no volume
  if (on_finished_) on_finished_();
}

}  // namespace snapstore::nbd
