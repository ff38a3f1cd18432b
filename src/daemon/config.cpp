// Command-line and config-file parsing for snapstored (CLI11).
#include "daemon/config.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "daemon/size_parse.h"
#include "snapstore/volume.h"

namespace snapstore {

static_assert(min_connection_memory == BlockSizes{}.maximum,
              "one client must be able to hold the largest request an export advertises");

namespace {

template <typename T>
T value_or_throw(Result<T> r, const std::string& option) {
  if (!r) throw CLI::ValidationError(option, r.status().message());
  return std::move(r).value();
}

// Sets the two memory limits from their option texts (nullptr: the default) and checks
// that one client may hold the largest request, and all clients as much as one.
void apply_memory_limits(DaemonConfig& c, const std::string* total, const std::string* per_client) {
  if (total) c.memory_limit = value_or_throw(parse_size(*total), "--memory-limit");
  if (per_client)
    c.connection_memory = value_or_throw(parse_size(*per_client), "--connection-memory");
  if (c.connection_memory < min_connection_memory)
    throw CLI::ValidationError("--connection-memory",
                               "must be at least " + format_size(min_connection_memory) +
                                   ", the largest request a client may send");
  if (c.memory_limit < c.connection_memory)
    throw CLI::ValidationError("--memory-limit", "must be at least --connection-memory (" +
                                                     format_size(c.connection_memory) + ")");
}

}  // namespace

std::filesystem::path default_nbd_socket(const std::filesystem::path& pool) {
  return pool.string() + ".nbd.sock";
}

std::filesystem::path default_control_socket(const std::filesystem::path& pool) {
  return pool.string() + ".ctl.sock";
}

std::optional<DaemonConfig> parse_daemon_config(int argc, const char* const* argv,
                                                int& exit_code) {
  DaemonConfig c;
  CLI::App app{"snapstored: serves a snapstore pool's volumes as NBD exports", "snapstored"};
  app.set_version_flag("--version", "snapstored 0.1.0");
  app.set_config("--config", "", "read options from this file (TOML or INI: key = value)");
  std::string pool_size, listen = "127.0.0.1:10809";
  std::string cache_size, memory_limit, connection_memory;
  app.add_option("--pool", c.pool, "pool file; created sparse and formatted if missing")->required();
  app.add_option("--pool-size", pool_size, "size of a new pool, e.g. 16G (default 16G)");
  app.add_option("--backend", c.backend,
                 "pool (snapshots, checksums) or raw (serve the file's bytes as they are)")
      ->check(CLI::IsMember({"pool", "raw"}))
      ->capture_default_str();
  app.add_option("--cache-size", cache_size, "metadata cache size (default 64M)");
  app.add_option("--commit-interval", c.commit_interval_ms,
                 "milliseconds between background commits")
      ->check(CLI::Range(10u, 3600000u))
      ->capture_default_str();
  app.add_option("--nbd-socket", c.nbd_socket, "NBD Unix socket (default: <pool>.nbd.sock)");
  auto* listen_opt = app.add_option("--listen", listen, "NBD TCP address HOST:PORT")
                         ->capture_default_str();
  bool no_tcp_flag = false;
  auto* no_tcp = app.add_flag("--no-tcp", no_tcp_flag, "do not listen on TCP");
  listen_opt->excludes(no_tcp);
  app.add_option("--control-socket", c.control_socket,
                 "control socket (default: <pool>.ctl.sock)");
  app.add_option("--socket-group", c.socket_group,
                 "group that may use the sockets (mode 0660); default: owner only (0600)");
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error, critical, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  app.add_option("--threads", c.worker_threads, "threads per client connection (requests of one client that run at once)")
      ->check(CLI::Range(1u, 256u))
      ->capture_default_str();
  app.add_option("--handshake-timeout", c.handshake_timeout_seconds,
                 "seconds a client may take to negotiate")
      ->check(CLI::Range(1u, 3600u))
      ->capture_default_str();
  app.add_option("--max-connections", c.max_connections, "simultaneous NBD clients")
      ->check(CLI::Range(1u, 65536u))
      ->capture_default_str();
  app.add_option("--memory-limit", memory_limit,
                 "request payloads and read replies held at once, all clients (default 512M)");
  app.add_option("--connection-memory", connection_memory,
                 "the same for one client, at least 32M (default 64M)");
  app.add_option("--stall-timeout", c.stall_timeout_seconds,
                 "seconds a client may leave a request half-sent or a reply unread")
      ->check(CLI::Range(1u, 3600u))
      ->capture_default_str();
  app.add_flag("--read-only", c.read_only, "serve every export read-only");

  try {
    app.parse(argc, argv);
    if (c.pool.empty()) throw CLI::ValidationError("--pool", "the pool path cannot be empty");
    if (app.count("--pool-size"))
      c.pool_size = value_or_throw(parse_size(pool_size), "--pool-size");
    if (app.count("--cache-size"))
      c.cache_bytes = value_or_throw(parse_size(cache_size), "--cache-size");
    apply_memory_limits(c, app.count("--memory-limit") ? &memory_limit : nullptr,
                        app.count("--connection-memory") ? &connection_memory : nullptr);
    c.tcp = !no_tcp_flag;
    if (c.tcp) {
      HostPort hp = value_or_throw(parse_host_port(listen), "--listen");
      c.listen_host = hp.host;
      c.listen_port = hp.port;
    }
  } catch (const CLI::ParseError& e) {
    exit_code = app.exit(e) == 0 ? 0 : 2;  // prints help, version or the error
    return std::nullopt;
  }
  if (c.nbd_socket.empty()) c.nbd_socket = default_nbd_socket(c.pool);
  if (c.control_socket.empty()) c.control_socket = default_control_socket(c.pool);
  return c;
}

}  // namespace snapstore
