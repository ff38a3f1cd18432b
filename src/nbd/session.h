// Session: the transmission phase of one connection, served by the connection's own
// threads with blocking socket I/O (the model nbdkit uses).
//
// Each thread loops: take the read lock, read one request header and its payload, let go;
// take memory for the reply; run the request; take the write lock and send the whole
// reply; give the memory back. No request is handed between threads, and a large reply
// goes out in one writev. Up to `threads` requests of one connection run at once, and
// replies go out in completion order (NBD allows any order).
//
// Memory: every write payload and read reply lives in a buffer from the server's
// BufferPool, granted by its MemoryBudget before the buffer exists (request_memory.h),
// against this connection's account (cap: connection_memory) and the server's limit. A
// large payload's budget is taken only once its first byte has arrived, so a client that
// sends a header and nothing more holds nothing; a request that must wait for budget holds
// nothing while it waits.
//
// Invariants:
//  1. Only the thread holding the read lock reads from the socket, and only the thread
//     holding the write lock writes to it; a reply is written whole or the session ends.
//  2. A request that cannot be trusted (bad magic, oversized payload) ends the session:
//     in-flight requests finish and send their replies, nothing more is read.
//  3. A client that stalls in the middle of a request (a header or payload not arriving,
//     a reply not being read) for stall_timeout (socket_stream.h says how it is measured)
//     ends the session at once: the socket is shut both ways and waits for budget end. A
//     client idle between requests is not stalled.
//  4. stop() ends the session gracefully (no new requests, in-flight ones finish);
//     force_close() also breaks a send blocked on a client that never reads, and ends
//     waits for budget.
//  5. When the last thread ends, every buffer and grant has been given back, the socket
//     is closed and on_finished runs once. The session shares ownership of the server's
//     memory, so it may outlive the server.
//
// Locks: read_mutex_ may be held while taking write_mutex_ or fd_mutex_; write_mutex_
// while taking fd_mutex_; never the other way round.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>

#include "nbd/handshake.h"
#include "nbd/request_memory.h"
#include "nbd/request_parser.h"
#include "nbd/socket_stream.h"
#include "nbd/transmission.h"

namespace snapstore::nbd {

struct SessionOptions {
  unsigned threads = 4;                            // requests of one client that run at once
  std::chrono::milliseconds stall_timeout{60000};  // invariant 3
  std::size_t connection_memory = std::size_t{64} << 20;  // this connection's account cap
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(int fd, Negotiated negotiated, SessionOptions options,
          std::shared_ptr<ServerMemory> memory, std::string peer,
          std::function<void()> on_finished);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts the threads; each keeps the session alive until it ends.
  void start();
  void stop();
  void force_close();

 private:
  struct Work;  // one request as its thread carries it

  void serve();
  bool read_request(Work& work);
  bool read_payload(Work& work);
  bool reserve_reply(const TransmissionContext& ctx, Work& work);
  bool take_memory(Work& work, std::size_t bytes, bool buffer);
  Reply respond(TransmissionContext& ctx, const Work& work);
  bool received(Transfer t, const char* what);
  void send(const Reply& reply);
  void end_reading(const std::string& why);
  void end_session(const std::string& why);
  void finish_thread();

  Negotiated negotiated_;  // constant until the last thread drops its volume (invariant 5)
  // Constant after construction.
  const unsigned thread_count_;
  const std::string peer_;
  const std::function<void()> on_finished_;
  const RequestParser parser_;
  const std::shared_ptr<ServerMemory> memory_;  // outlives account_ (declared first)
  MemoryBudget::Account account_;  // counts guarded by the budget's own mutex
  SocketStream stream_;
  std::stop_source closing_;  // thread-safe: stopped when the session is torn down

  std::mutex read_mutex_;
  bool reading_done_ = false;  // guarded by read_mutex_
  std::mutex write_mutex_;
  bool broken_ = false;        // guarded by write_mutex_: the socket failed, drop replies
  std::mutex fd_mutex_;
  int fd_;                     // guarded by fd_mutex_ once threads run (closed by the last)
  std::atomic<unsigned> running_{0};
};

}  // namespace snapstore::nbd
