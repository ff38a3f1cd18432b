// The daemon's main loop: open the pool, serve it, shut down cleanly on a signal.
#include "daemon/daemon.h"

#include <grp.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "daemon/control_server.h"
#include "daemon/size_parse.h"
#include "nbd/server.h"
#include "volume/file_volume.h"

namespace snapstore {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

// Socket permissions: owner only, or owner and the configured group.
struct SocketAccess {
  unsigned mode = 0600;
  int gid = -1;
};

Result<SocketAccess> socket_access(const std::string& group) {
  if (group.empty()) return SocketAccess{};
  struct group* g = ::getgrnam(group.c_str());
  if (!g) return invalid_argument("no such group '" + group + "' (--socket-group)");
  return SocketAccess{0660, static_cast<int>(g->gr_gid)};
}

Result<VolumePtr> open_origin(const DaemonConfig& config) {
  FileVolumeOptions options;
  options.read_only = config.read_only;
  options.create_size = config.pool_size;
  auto volume = FileVolume::open(config.pool, options);
  if (!volume) return volume.status();
  spdlog::info("pool {} ({} backend, {})", config.pool.string(), config.backend,
               format_size((*volume)->size()));
  return VolumePtr(std::move(volume).value());
}

void add_control_commands(ControlServer& control, const ExportTable& exports,
                          nbd::Server& server, const DaemonConfig& config) {
  const auto started = std::chrono::steady_clock::now();
  control.add_command("status", [&, started](const json&) -> Result<json> {
    json volumes = json::array();
    for (const ExportEntry& e : exports.list()) {
      VolumePtr v = exports.find(e.name);
      if (!v) continue;
      volumes.push_back({{"name", e.name},
                         {"description", e.description},
                         {"size", v->size()},
                         {"read_only", v->read_only()},
                         {"connections", server.connections().count_attached(e.name)}});
    }
    auto uptime = std::chrono::steady_clock::now() - started;
    return json{{"pool", config.pool.string()},
                {"backend", config.backend},
                {"uptime_seconds", std::chrono::duration_cast<std::chrono::seconds>(uptime).count()},
                {"connections", server.connections().count()},
                {"volumes", volumes}};
  });
}

}  // namespace

int run_daemon(const DaemonConfig& config) {
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  ::signal(SIGPIPE, SIG_IGN);
  auto access = socket_access(config.socket_group);
  if (!access) {
    spdlog::error("{}", access.status().message());
    return 1;
  }
  auto origin = open_origin(config);
  if (!origin) {
    spdlog::error("cannot open pool: {}", origin.status().message());
    return 1;
  }
  ExportTable exports;
  (void)exports.add("origin", *origin);

  asio::io_context io;
  asio::thread_pool workers(config.worker_threads);
  nbd::ServerOptions options;
  options.limits.handshake_timeout = std::chrono::seconds(config.handshake_timeout_seconds);
  options.max_connections = config.max_connections;
  nbd::Server server(io, exports, workers, options);
  ControlServer control(io);
  add_control_commands(control, exports, server, config);

  Status st = Status::ok();
  if (config.tcp) st = server.listen_tcp(config.listen_host, config.listen_port);
  if (st) st = server.listen_unix(config.nbd_socket, access->mode, access->gid);
  if (st) st = control.listen(config.control_socket, access->mode, access->gid);
  if (!st) {
    spdlog::error("{}", st.message());
    return 1;
  }

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: finishing in-flight requests and shutting down", signo);
    server.stop();
    control.stop();
  });
  spdlog::info("snapstored ready");
  io.run();
  workers.join();
  int code = 0;
  for (const ExportEntry& e : exports.list()) {
    VolumePtr v = exports.find(e.name);
    if (v && !v->read_only()) {
      Status flushed = v->flush();
      if (!flushed) {
        spdlog::error("flush of {} failed at shutdown: {}", e.name, flushed.message());
        code = 1;
      }
    }
  }
  spdlog::info("snapstored stopped");
  return code;
}

}  // namespace snapstore
