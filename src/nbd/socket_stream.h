// SocketStream: blocking reads and writes on one connected socket, where a transfer that
// makes no progress for a whole stall timeout ends as `stalled`.
//
// The timeout is the socket's SO_RCVTIMEO and SO_SNDTIMEO (set by start()): each system
// call waits at most that long, and one that moves no byte in that time ends the
// transfer: a transfer that stops half-way ends between one and two timeouts after its
// last byte. A client that keeps moving bytes, however slowly, is not stalled. Only
// read_header() waits without limit, and only for its first byte: a client between
// requests is idle, not stalled.
//
// Invariants:
//  1. Never reads or writes more than asked; EINTR is retried, short transfers continued.
//  2. Does not own the descriptor, and is not synchronised: its owner serialises reads
//     among themselves and writes among themselves (one reader and one writer may run at
//     once, as the socket allows).
#pragma once

#include <chrono>
#include <cstddef>
#include <span>

namespace snapstore::nbd {

enum class Transfer { done, closed, stalled, failed };

class SocketStream {
 public:
  SocketStream(int fd, std::chrono::milliseconds stall_timeout)
      : fd_(fd), stall_timeout_(stall_timeout) {}

  // Sets the socket's timeouts; false if the socket refuses them (errno says why).
  bool start();

  // A request header: waits for its first byte as long as it takes.
  Transfer read_header(std::span<std::byte> out) { return read(out, /*idle_first=*/true); }
  // A payload: every byte within the stall timeout of the one before.
  Transfer read_payload(std::span<std::byte> out) { return read(out, /*idle_first=*/false); }
  // Waits until the next byte has arrived (or the peer closed), without reading it.
  Transfer wait_readable();
  // Reads and drops `size` bytes.
  Transfer discard(std::size_t size);
  // Writes head, then body, in as few system calls as the socket takes.
  Transfer write(std::span<const std::byte> head, std::span<const std::byte> body);

  std::chrono::milliseconds stall_timeout() const { return stall_timeout_; }

 private:
  Transfer read(std::span<std::byte> out, bool idle_first);

  int fd_;
  std::chrono::milliseconds stall_timeout_;
};

}  // namespace snapstore::nbd
