// Blocking transmission on per-connection threads. See session.h.
#include "nbd/session.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <thread>

namespace snapstore::nbd {

namespace {

// The most a request's reply may hold beyond its head: a read's data, or the chunks of a
// BLOCK_STATUS (per selected context: chunk header, context id, descriptors).
std::size_t reply_bytes(const TransmissionContext& ctx, const Request& r) {
  if (r.type == cmd_read) return r.length;
  if (r.type != cmd_block_status) return 0;
  const std::size_t descriptors = (r.flags & cmd_flag_req_one) ? 1 : ctx.max_extents;
  return ctx.meta_contexts.size() * (20 + 4 + 8 * descriptors);
}

}  // namespace

struct Session::Work {
  ParsedRequest parsed;
  RequestMemory memory;  // a write's payload, a read's reply, or room for a reply's chunks
};

Session::Session(int fd, Negotiated negotiated, SessionOptions options,
                 std::shared_ptr<ServerMemory> memory, std::string peer,
                 std::function<void()> on_finished)
    : negotiated_(std::move(negotiated)),
      thread_count_(std::max(1u, options.threads)),
      peer_(std::move(peer)),
      on_finished_(std::move(on_finished)),
      parser_({negotiated_.volume->size(), negotiated_.volume->read_only(),
               negotiated_.structured_replies, !negotiated_.meta_contexts.empty(),
               negotiated_.volume->block_sizes()}),
      memory_(std::move(memory)),
      account_(memory_->budget, options.connection_memory),
      stream_(fd, options.stall_timeout),
      fd_(fd) {}

Session::~Session() {
  if (fd_ >= 0) ::close(fd_);
}

void Session::start() {
  if (!stream_.start())
    spdlog::warn("{}: cannot set the stall timeout: {}", peer_, std::strerror(errno));
  running_ = thread_count_;
  for (unsigned i = 0; i < thread_count_; ++i)
    std::thread([self = shared_from_this()] { self->serve(); }).detach();
}

void Session::stop() {
  std::lock_guard lock(fd_mutex_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RD);
}

void Session::force_close() {
  closing_.request_stop();
  std::lock_guard lock(fd_mutex_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

// Under the read lock.
void Session::end_reading(const std::string& why) {
  if (!reading_done_ && !why.empty()) spdlog::debug("{}: {}", peer_, why);
  reading_done_ = true;
}

// The client stalled or the socket broke: nothing more is read or sent (invariant 3).
// Under the read lock, not the write lock.
void Session::end_session(const std::string& why) {
  reading_done_ = true;
  {
    std::lock_guard lock(write_mutex_);
    if (broken_) return;
    broken_ = true;
  }
  spdlog::info("{}: closing connection: {}", peer_, why);
  force_close();
}

// Under the read lock: true if the transfer completed, else ends reading or the session.
bool Session::received(Transfer t, const char* what) {
  switch (t) {
    case Transfer::done: return true;
    case Transfer::closed: end_reading("client closed the connection"); return false;
    case Transfer::failed:
      end_reading(std::string("cannot read ") + what + ": " + std::strerror(errno));
      return false;
    case Transfer::stalled:
      end_session(std::string("no byte of ") + what + " arrived for " +
                  std::to_string(stream_.stall_timeout().count()) + " ms");
      return false;
  }
  return false;
}

// Reads one request under the read lock. Returns false when the session stops reading.
bool Session::read_request(Work& work) {
  std::lock_guard lock(read_mutex_);
  if (reading_done_) return false;
  std::array<std::byte, request_header_size> header;
  if (!received(stream_.read_header(header), "a request header")) return false;
  ParsedRequest& p = work.parsed;
  p = parser_.parse(header);
  switch (p.action) {
    case ParsedRequest::verdict::disconnect:
      end_reading("client disconnected");
      return false;
    case ParsedRequest::verdict::close:
      spdlog::warn("{}: closing connection: {}", peer_, p.reason);
      end_reading({});
      return p.error != 0;  // send the error, then stop
    case ParsedRequest::verdict::reply_error:
      return !p.payload_length || received(stream_.discard(p.payload_length), "a payload");
    case ParsedRequest::verdict::execute:
      return !p.payload_length || read_payload(work);
  }
  return false;
}

// A write's payload, under the read lock. A large one is given memory only once its first
// byte is here, so a client that stops after the header holds nothing.
bool Session::read_payload(Work& work) {
  const std::size_t length = work.parsed.payload_length;
  if (length >= huge_buffer_threshold && !received(stream_.wait_readable(), "a write payload"))
    return false;
  if (!take_memory(work, length, /*buffer=*/true)) {
    end_reading("the connection is closing");
    return false;
  }
  if (work.parsed.action != ParsedRequest::verdict::execute)  // refused: drop the payload
    return received(stream_.discard(length), "a write payload");
  return received(stream_.read_payload(work.memory.bytes(length)), "a write payload");
}

// Memory for what the reply will hold, outside the read lock. False if the session closes.
bool Session::reserve_reply(const TransmissionContext& ctx, Work& work) {
  if (work.parsed.action != ParsedRequest::verdict::execute) return true;
  const Request& r = work.parsed.request;
  const std::size_t bytes = reply_bytes(ctx, r);
  return bytes == 0 || take_memory(work, bytes, /*buffer=*/r.type == cmd_read);
}

// Waits for `bytes` of budget (and a buffer of that size if asked). A request larger than
// this connection may ever hold becomes an ENOMEM reply; false if the session is closing.
bool Session::take_memory(Work& work, std::size_t bytes, bool buffer) {
  auto taken = buffer ? RequestMemory::buffer(*memory_, account_, bytes, closing_.get_token())
                      : RequestMemory::reserve(*memory_, account_, bytes, closing_.get_token());
  if (taken) {
    work.memory = std::move(taken).value();
    return true;
  }
  if (taken.status().code() != errc::invalid_argument) return false;
  work.parsed.action = ParsedRequest::verdict::reply_error;
  work.parsed.error = err_nomem;
  work.parsed.reason = taken.status().message();
  return true;
}

Reply Session::respond(TransmissionContext& ctx, const Work& work) {
  const ParsedRequest& p = work.parsed;
  if (p.action != ParsedRequest::verdict::execute)
    return error_reply(p.request, negotiated_.structured_replies, p.error, p.reason);
  ctx.read_buffer = p.request.type == cmd_read ? work.memory.whole() : std::span<std::byte>{};
  return execute(ctx, p.request, work.memory.bytes(p.payload_length));
}

void Session::send(const Reply& reply) {
  std::lock_guard lock(write_mutex_);
  if (broken_) return;
  const Transfer t = stream_.write(reply.head, reply.body());
  if (t == Transfer::done) return;
  broken_ = true;  // and wake the reader: nothing more can be answered
  if (t == Transfer::stalled)
    spdlog::info("{}: closing connection: a reply was not read for {} ms", peer_,
                 stream_.stall_timeout().count());
  else
    spdlog::debug("{}: cannot send a reply: {}", peer_, std::strerror(errno));
  force_close();
}

void Session::serve() {
  TransmissionContext ctx{*negotiated_.volume, negotiated_.structured_replies,
                          negotiated_.meta_contexts};
  for (;;) {
    Work work;
    if (!read_request(work) || !reserve_reply(ctx, work)) break;
    send(respond(ctx, work));
    if (work.parsed.action == ParsedRequest::verdict::close) break;
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
