// ControlServer: the daemon's Unix control socket, a JSON request/reply protocol.
//
// One request per line, one reply per line (docs/control-protocol.md):
//   {"version": 1, "command": "status", "args": {...}}
//   {"version": 1, "ok": true, "result": {...}}
//   {"version": 1, "ok": false, "error": {"code": "...", "message": "..."}}
//
// Invariants:
//  1. A request line longer than max_request_bytes, malformed JSON, a missing or
//     unsupported version, or an unknown command gets an error reply and runs nothing.
//     An oversized line also closes that client (the rest of it is never read).
//  2. Handlers run one at a time (on the io thread): a command sees no other command
//     half-done.
//  3. The socket is created mode 0600 (0660 with a group) and removed on stop.
#pragma once

#include "nbd/asio.h"
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "snapstore/status.h"

namespace snapstore {

inline constexpr int control_protocol_version = 1;

class ControlServer {
 public:
  using Handler = std::function<Result<nlohmann::json>(const nlohmann::json& args)>;

  explicit ControlServer(boost::asio::io_context& io, std::size_t max_request_bytes = 64 * 1024);
  ~ControlServer();

  void add_command(std::string name, Handler handler);
  Status listen(const std::filesystem::path& path, unsigned mode, int gid = -1);
  void stop();

  // Runs one request line and returns the reply line (no newline). Public for tests.
  std::string handle_line(std::string_view line) const;

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::local::stream_protocol::socket socket);

  boost::asio::io_context& io_;
  std::size_t max_request_bytes_;
  std::map<std::string, Handler, std::less<>> commands_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
  std::filesystem::path path_;
  std::vector<std::weak_ptr<boost::asio::local::stream_protocol::socket>> clients_;
};

}  // namespace snapstore
