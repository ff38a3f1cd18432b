// ControlServer: the daemon's Unix control socket, a JSON request/reply protocol.
//
// One request per line, one reply per line (docs/control-protocol.md):
//   {"version": 1, "command": "status", "args": {...}}
//   {"version": 1, "ok": true, "result": {...}}
//   {"version": 1, "ok": false, "error": {"code": "...", "message": "..."}}
//
// Threads: sockets are served on the io thread (the one that also runs NBD handshakes),
// which also checks each request's framing (JSON, version, command, args); the handler of
// a well-formed request runs on one dedicated control worker thread, and its reply is
// written back on the io side. So a handler may block (commit, wait for NBD clients to
// disconnect) without stalling the io thread, and handlers never run at the same time.
//
// Invariants:
//  1. A request line longer than max_request_bytes, malformed JSON, a missing or
//     unsupported version, or an unknown command gets an error reply and runs nothing.
//     An oversized line also closes that client (the rest of it is never read).
//  2. Handlers run one at a time, in arrival order, on the worker thread: a command sees
//     no other command half-done. Requests of one client are answered in order.
//  3. Any number of clients up to max_clients may be connected at once; one more gets a
//     "busy" error reply and is closed. A slow or silent client delays no other client's
//     reading, only the serialised handlers.
//  4. Error codes are stable strings (error_code_name); the message is for humans.
//  5. The socket is created mode 0600 (0660 with a group) and removed on stop.
//  6. add_command() is for set-up, before listen(); the table is not changed afterwards.
#pragma once

#include "nbd/asio.h"
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "daemon/control_protocol.h"
#include "snapstore/status.h"

namespace snapstore {

// The protocol's name for a handler's error code ("not_found", "busy", ...).
std::string error_code_name(errc code);

struct ControlServerOptions {
  std::size_t max_request_bytes = 64 * 1024;
  std::size_t max_clients = 64;
};

class ControlServer {
 public:
  using Handler = std::function<Result<nlohmann::json>(const nlohmann::json& args)>;

  explicit ControlServer(boost::asio::io_context& io, ControlServerOptions options = {});
  ~ControlServer();  // joins the worker thread

  void add_command(std::string name, Handler handler);
  Status listen(const std::filesystem::path& path, unsigned mode, int gid = -1);
  void stop();

  // Runs one request line on the calling thread and returns the reply line (no newline).
  // Public for tests; the socket path runs it on the worker thread.
  std::string handle_line(std::string_view line) const;

 private:
  using socket_ptr = std::shared_ptr<boost::asio::local::stream_protocol::socket>;
  struct Call {
    const Handler* handler;
    nlohmann::json args;
  };

  // A request's framing is checked on the io thread (a bad request never waits behind a
  // slow handler); only the handler runs on the worker.
  std::variant<Call, std::string> parse_request(std::string_view line) const;
  static std::string run(const Call& call);

  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(socket_ptr socket);
  boost::asio::awaitable<std::string> run_on_worker(Call call);

  boost::asio::io_context& io_;
  ControlServerOptions options_;
  std::map<std::string, Handler, std::less<>> commands_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
  std::filesystem::path path_;
  // Touched only on the io thread.
  std::vector<std::weak_ptr<boost::asio::local::stream_protocol::socket>> clients_;
  // One thread: handlers are serialised. Declared last so it is joined first.
  boost::asio::thread_pool worker_{1};
};

}  // namespace snapstore
