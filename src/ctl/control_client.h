// ControlClient: snapshotctl's side of the daemon's control socket
// (docs/control-protocol.md). One connection, one request at a time, every wait bounded.
//
// A request has three outcomes, which snapshotctl turns into its exit codes:
//   - a result (reply "ok": true),
//   - a refusal (reply "ok": false with an error code and message),
//   - no usable reply: the socket cannot be reached, the daemon closed it, the wait timed
//     out, or the reply is not a version-1 reply line (a non-ok Result).
#pragma once

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "snapstore/status.h"

namespace snapstore::ctl {

struct Reply {
  bool ok = false;
  nlohmann::json result;  // when ok
  std::string code;       // when not ok: the stable error code
  std::string message;    // when not ok: for humans
};

// Checks one reply line: a JSON object with version 1 and either a result or an error.
Result<Reply> parse_reply(std::string_view line);

class ControlClient {
 public:
  // Replies longer than this are a protocol error (a reply is one line held in memory).
  static constexpr std::size_t max_reply_bytes = 256u << 20;

  static Result<ControlClient> connect(const std::filesystem::path& socket);
  ControlClient(ControlClient&& other) noexcept;
  ControlClient& operator=(ControlClient&&) = delete;
  ~ControlClient();

  Result<Reply> request(std::string_view command, const nlohmann::json& args,
                        std::chrono::milliseconds timeout);

 private:
  explicit ControlClient(int fd) : fd_(fd) {}
  Status send_line(const std::string& line, std::chrono::steady_clock::time_point deadline);
  Result<std::string> read_line(std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string pending_;  // bytes read past the last reply line
};

}  // namespace snapstore::ctl
