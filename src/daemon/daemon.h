// Daemon: wires a configuration to volumes, the NBD server and the control socket, and
// runs until SIGTERM/SIGINT. On a signal it stops accepting, lets in-flight requests
// finish, flushes every volume and returns 0.
#pragma once

#include "daemon/config.h"

namespace snapstore {

// Returns the process exit code. Start-up failures are logged with their reason.
int run_daemon(const DaemonConfig& config);

}  // namespace snapstore
