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
  // Bytes of request payloads and read replies held at once: by all clients together, and
  // by one client (at least the largest request, min_connection_memory); a request waits
  // for room. A client that leaves a request half-sent or a reply unread for
  // stall_timeout_seconds is disconnected.
  std::uint64_t memory_limit = 512ull << 20;
  std::uint64_t connection_memory = 64ull << 20;
  unsigned stall_timeout_seconds = 60;
  bool read_only = false;
};

// The largest request an export advertises (BlockSizes::maximum): one client must be able
// to hold one, or it could never be served.
inline constexpr std::uint64_t min_connection_memory = 32ull << 20;

// The pool that scripts/run.sh serves unless SNAPSTORE_POOL says otherwise; snapshotctl
// finds the daemon's control socket beside it by default.
inline constexpr const char* default_pool_path = "/var/lib/snapstore/pool.snap";

// The default socket paths for a pool file: "<pool>.nbd.sock" and "<pool>.ctl.sock".
std::filesystem::path default_nbd_socket(const std::filesystem::path& pool);
std::filesystem::path default_control_socket(const std::filesystem::path& pool);

std::optional<DaemonConfig> parse_daemon_config(int argc, const char* const* argv,
                                                int& exit_code);

}  // namespace snapstore
