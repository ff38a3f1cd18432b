// snapshotctl's command line (CLI11): parses argv, runs one command (commands.h) and
// returns the process exit code (0 ok, 1 refused, 2 usage, 3 daemon unreachable).
#pragma once

#include <filesystem>
#include <ostream>

namespace snapstore::ctl {

// The control socket snapshotctl talks to without --socket: the one snapstored makes
// beside its pool, the pool being $SNAPSTORE_POOL or /var/lib/snapstore/pool.snap (as in
// scripts/run.sh).
std::filesystem::path default_socket_path();

int run_snapshotctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace snapstore::ctl
