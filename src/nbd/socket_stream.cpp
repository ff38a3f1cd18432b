// Blocking socket transfers with a stall timeout. See socket_stream.h.
#include "nbd/socket_stream.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace snapstore::nbd {

namespace {

constexpr std::size_t discard_step = 64 << 10;

bool timed_out(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

}  // namespace

bool SocketStream::start() {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(stall_timeout_).count();
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  return ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
         ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0;
}

Transfer SocketStream::read(std::span<std::byte> out, bool idle_first) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::recv(fd_, out.data() + done, out.size() - done, MSG_WAITALL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (n == 0) {
      return Transfer::closed;
    } else if (errno == EINTR || (timed_out(errno) && idle_first && done == 0)) {
      continue;
    } else {
      return timed_out(errno) ? Transfer::stalled : Transfer::failed;
    }
  }
  return Transfer::done;
}

Transfer SocketStream::wait_readable() {
  pollfd p{fd_, POLLIN, 0};
  for (;;) {
    const int n = ::poll(&p, 1, static_cast<int>(stall_timeout_.count()));
    if (n > 0) return Transfer::done;  // data, or a close that the next read reports
    if (n == 0) return Transfer::stalled;
    if (errno != EINTR) return Transfer::failed;
  }
}

Transfer SocketStream::discard(std::size_t size) {
  std::array<std::byte, discard_step> scratch;
  while (size > 0) {
    const std::size_t step = std::min(size, scratch.size());
    if (Transfer t = read_payload({scratch.data(), step}); t != Transfer::done) return t;
    size -= step;
  }
  return Transfer::done;
}

Transfer SocketStream::write(std::span<const std::byte> head, std::span<const std::byte> body) {
  iovec iov[2] = {{const_cast<std::byte*>(head.data()), head.size()},
                  {const_cast<std::byte*>(body.data()), body.size()}};
  int count = body.empty() ? 1 : 2;
  iovec* v = iov;
  while (count > 0) {
    msghdr msg{};
    msg.msg_iov = v;
    msg.msg_iovlen = static_cast<std::size_t>(count);
    const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);  // a gone client is an error
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return timed_out(errno) ? Transfer::stalled : Transfer::failed;
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
  return Transfer::done;
}

}  // namespace snapstore::nbd
