// Listening Unix sockets with exact permissions. See unix_listener.h.
#include "nbd/unix_listener.h"

#include <sys/stat.h>
#include <unistd.h>

namespace snapstore {

namespace asio = boost::asio;

namespace {

bool someone_listens(boost::asio::io_context& io, const std::filesystem::path& path) {
  asio::local::stream_protocol::socket probe(io);
  boost::system::error_code ec;
  probe.connect(asio::local::stream_protocol::endpoint(path.string()), ec);
  return !ec;
}

}  // namespace

Result<std::unique_ptr<UnixAcceptor>> listen_unix_socket(asio::io_context& io,
                                                         const std::filesystem::path& path,
                                                         unsigned mode, int gid) {
  struct stat sb {};
  if (::lstat(path.c_str(), &sb) == 0) {
    if (!S_ISSOCK(sb.st_mode))
      return invalid_argument(path.string() + " exists and is not a socket; not replacing it");
    if (someone_listens(io, path))
      return Status(errc::busy, path.string() + " is in use by another process");
    ::unlink(path.c_str());  // a stale socket from an earlier run
  }
  boost::system::error_code ec;
  auto acceptor = std::make_unique<UnixAcceptor>(io);
  asio::local::stream_protocol::endpoint endpoint(path.string());
  const mode_t old_mask = ::umask(0177);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  ::umask(old_mask);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return io_error("cannot listen on " + path.string() + ": " + ec.message());
  if (gid >= 0 && ::chown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0)
    return errno_status(errno, "chown " + path.string());
  if (::chmod(path.c_str(), mode) != 0) return errno_status(errno, "chmod " + path.string());
  return acceptor;
}

}  // namespace snapstore
