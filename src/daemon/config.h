// DaemonConfig: snapstored's settings, from the command line and an optional config file.
//
// parse_daemon_config() checks every value, so the daemon starts only with a configuration
// it can serve. On --help/--version or an error it prints what CLI11 prints, sets
// exit_code (0 for help/version, 2 for a bad command line or config) and returns nullopt.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace snapstore {

struct DaemonConfig {
  std::filesystem::path pool;
  std::uint64_t pool_size = 16ull << 30;
  std::string backend = "pool";          // "pool", or "raw": the file's bytes are the export
  std::uint64_t cache_bytes = 64ull << 20;
  unsigned commit_interval_ms = 1000;
  std::filesystem::path nbd_socket;      // default: beside the pool
  bool tcp = true;
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 10809;
  std::filesystem::path control_socket;  // default: beside the pool
  std::string socket_group;              // empty: sockets are 0600
  std::string log_level = "info";
  unsigned worker_threads = 4;
  unsigned handshake_timeout_seconds = 30;
  unsigned max_connections = 512;
  bool read_only = false;
};

// The pool that scripts/run.sh serves unless SNAPSTORE_POOL says otherwise; snapshotctl
// finds the daemon's control socket beside it by default.
inline constexpr const char* default_pool_path = "/var/lib/snapstore/pool.snap";

// The default socket paths for a pool file: "<pool>.nbd.sock" and "<pool>.ctl.sock".
std::filesystem::path default_nbd_socket(const std::filesystem::path& pool);
std::filesystem::path default_control_socket(const std::filesystem::path& pool);

std::optional<DaemonConfig> parse_daemon_config(int argc, const char* const* argv,
                                                int& exit_code);

}  // namespace snapstore
