// listen_unix_socket: a listening Unix socket with the permissions asked for, shared by
// the NBD server and the control socket.
//
// Invariants:
//  1. The socket never exists with wider permissions than asked: it is bound under a
//     umask that leaves it 0600, then given its group and mode.
//  2. A stale socket file from an earlier run is replaced; a socket someone still
//     listens on, or any other kind of file, is left alone and reported.
#pragma once

#include <filesystem>
#include <memory>

#include "nbd/asio.h"
#include "snapstore/status.h"

namespace snapstore {

using UnixAcceptor = boost::asio::local::stream_protocol::acceptor;

// mode: permission bits of the socket file; gid: its group, or -1 to leave it.
Result<std::unique_ptr<UnixAcceptor>> listen_unix_socket(boost::asio::io_context& io,
                                                         const std::filesystem::path& path,
                                                         unsigned mode, int gid);

}  // namespace snapstore
