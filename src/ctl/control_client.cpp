// The control-socket client. See control_client.h.
#include "ctl/control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/control_protocol.h"

namespace snapstore::ctl {

using json = nlohmann::json;
using clock = std::chrono::steady_clock;

namespace {

Status protocol_error(std::string why) {
  return io_error("bad reply from the daemon: " + std::move(why));
}

// Waits for `events` on fd until the deadline; ok, or why not.
Status wait_for(int fd, short events, clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left.count() <= 0) return io_error("no reply from the daemon in time");
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1 << 30)));
    if (n > 0) return Status::ok();
    if (n < 0 && errno != EINTR) return errno_status(errno, "poll on the control socket");
  }
}

}  // namespace

Result<Reply> parse_reply(std::string_view line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return protocol_error("not a JSON object");
  auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer() ||
      *version != control_protocol_version)
    return protocol_error("not control protocol version " +
                          std::to_string(control_protocol_version));
  auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean()) return protocol_error("no boolean \"ok\"");
  Reply reply;
  reply.ok = ok->get<bool>();
  if (reply.ok) {
    if (!j.contains("result")) return protocol_error("\"ok\" without a \"result\"");
    reply.result = std::move(j["result"]);
    return reply;
  }
  auto error = j.find("error");
  if (error == j.end() || !error->is_object() || !error->contains("code") ||
      !(*error)["code"].is_string())
    return protocol_error("an error without a code");
  reply.code = (*error)["code"].get<std::string>();
  reply.message = error->value("message", "");
  return reply;
}

Result<ControlClient> ControlClient::connect(const std::filesystem::path& socket) {
  sockaddr_un addr{};
  if (socket.native().size() >= sizeof addr.sun_path)
    return invalid_argument("socket path too long: " + socket.string());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_status(errno, "socket");
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    Status st = errno_status(errno, "connect to " + socket.string());
    ::close(fd);
    return st;
  }
  return ControlClient(fd);
}

ControlClient::ControlClient(ControlClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), pending_(std::move(other.pending_)) {}

ControlClient::~ControlClient() {
  if (fd_ >= 0) ::close(fd_);
}

Status ControlClient::send_line(const std::string& line, clock::time_point deadline) {
  std::size_t sent = 0;
  while (sent < line.size()) {
    SNAPSTORE_RETURN_IF_ERROR(wait_for(fd_, POLLOUT, deadline));
    ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return errno_status(errno, "send to the control socket");
    sent += static_cast<std::size_t>(n);
  }
  return Status::ok();
}

Result<std::string> ControlClient::read_line(clock::time_point deadline) {
  for (;;) {
    if (auto nl = pending_.find('\n'); nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return line;
    }
    if (pending_.size() > max_reply_bytes) return protocol_error("reply too long");
    SNAPSTORE_RETURN_IF_ERROR(wait_for(fd_, POLLIN, deadline));
    char buffer[65536];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(errno, "read from the control socket");
    if (n == 0) return io_error("the daemon closed the control connection without a reply");
    pending_.append(buffer, static_cast<std::size_t>(n));
  }
}

Result<Reply> ControlClient::request(std::string_view command, const json& args,
                                     std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  const json request{{"version", control_protocol_version},
                     {"command", std::string(command)},
                     {"args", args}};
  SNAPSTORE_RETURN_IF_ERROR(send_line(request.dump() + '\n', deadline));
  auto line = read_line(deadline);
  if (!line) return line.status();
  return parse_reply(*line);
}

}  // namespace snapstore::ctl
