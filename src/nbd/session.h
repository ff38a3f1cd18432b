// Session: the transmission phase of one connection, served by the connection's own
// threads with blocking socket I/O (the model nbdkit uses).
//
// Each thread loops: take the read lock, read one request header and its payload, let go;
// run the request; take the write lock and send the whole reply. No request is handed
// between threads, reads and read buffers are reused per thread, and a large reply goes
// out in one writev. Up to `threads` requests of one connection run at once, and replies
// go out in completion order (NBD allows any order).
//
// Invariants:
//  1. Only the thread holding the read lock reads from the socket, and only the thread
//     holding the write lock writes to it; a reply is written whole or the session ends.
//  2. A request that cannot be trusted (bad magic, oversized payload) ends the session:
//     in-flight requests finish and send their replies, nothing more is read.
//  3. stop() ends the session gracefully (no new requests, in-flight ones finish);
//     force_close() also breaks a send blocked on a client that never reads.
//  4. When the last thread ends the socket is closed and on_finished runs once.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nbd/page_aligned.h"
#include "nbd/handshake.h"
#include "nbd/request_parser.h"
#include "nbd/transmission.h"

namespace snapstore::nbd {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(int fd, Negotiated negotiated, unsigned threads, std::string peer,
          std::function<void()> on_finished);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts the threads; each keeps the session alive until it ends.
  void start();
  void stop();
  void force_close();

 private:
  void serve();
  bool read_request(ParsedRequest& parsed, PageAlignedBytes& payload);
  void send(const Reply& reply);
  void end_reading(const std::string& why);
  void finish_thread();

  int fd_;
  Negotiated negotiated_;
  unsigned thread_count_;
  std::string peer_;
  std::function<void()> on_finished_;
  RequestParser parser_;
  std::mutex read_mutex_, write_mutex_;
  bool reading_done_ = false;  // under read_mutex_
  bool broken_ = false;        // under write_mutex_: the socket failed, drop replies
  std::atomic<unsigned> running_{0};
  std::mutex fd_mutex_;  // stop() may race with the close in finish_thread()
};

}  // namespace snapstore::nbd
