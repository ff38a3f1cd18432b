// The daemon's main loop: open the pool, serve it, shut down cleanly on a signal.
#include "daemon/daemon.h"

#include <grp.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "daemon/control_commands.h"
#include "daemon/size_parse.h"
#include "nbd/server.h"
#include "store/file_device.h"
#include "volume/file_volume.h"
#include "volume/pool_volume.h"

namespace snapstore {

namespace asio = boost::asio;

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

Result<VolumePtr> open_raw_origin(const DaemonConfig& config) {
  FileVolumeOptions options;
  options.read_only = config.read_only;
  options.create_size = config.pool_size;
  auto volume = FileVolume::open(config.pool, options);
  if (!volume) return volume.status();
  spdlog::info("serving {} as a raw file ({})", config.pool.string(),
               format_size((*volume)->size()));
  return VolumePtr(std::move(volume).value());
}

// Opens the pool, formatting a new one first when the file does not exist yet.
Result<std::shared_ptr<Pool>> open_pool(const DaemonConfig& config) {
  if (!std::filesystem::exists(config.pool)) {
    if (config.read_only) return not_found(config.pool.string() + " does not exist");
    auto created = FileDevice::open(config.pool, {true, pool_file_size_for(config.pool_size), false});
    if (!created) return created.status();
    FormatOptions format;
    format.origin_size = config.pool_size;
    Status st = Pool::format({*created}, format);
    if (!st) {
      std::filesystem::remove(config.pool);
      return st;
    }
    spdlog::info("formatted a new pool {} ({})", config.pool.string(), format_size(config.pool_size));
  }
  auto device = FileDevice::open(config.pool, {false, 0, config.read_only});
  if (!device) return device.status();
  PoolOptions options;
  options.cache_bytes = config.cache_bytes;
  options.commit_interval = std::chrono::milliseconds(config.commit_interval_ms);
  options.read_only = config.read_only;
  auto pool = Pool::open({*device}, options);
  if (!pool) {
    if (pool.status().code() == errc::invalid_argument)
      return invalid_argument(pool.status().message() +
                              " (serve a plain disk image with --backend raw)");
    return pool.status();
  }
  return std::shared_ptr<Pool>(std::move(pool).value());
}

Status add_exports(const DaemonConfig& config, ExportTable& exports, std::shared_ptr<Pool>& pool) {
  if (config.backend == "raw") {
    auto origin = open_raw_origin(config);
    if (!origin) return origin.status();
    return exports.add("origin", *origin);
  }
  auto opened = open_pool(config);
  if (!opened) return opened.status();
  pool = *opened;
  for (const VolumeRecord& v : pool->volumes())
    SNAPSTORE_RETURN_IF_ERROR(
        exports.add(v.name, std::make_shared<PoolVolume>(pool, v, config.pool.string())));
  PoolStats s = pool->stats();
  spdlog::info("pool {}: generation {}, {} volumes, {} of {} data blocks in use", config.pool.string(),
               s.generation, pool->volumes().size(), s.data_blocks - s.data_blocks_free, s.data_blocks);
  return Status::ok();
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
  ExportTable exports;
  std::shared_ptr<Pool> pool;
  if (Status st = add_exports(config, exports, pool); !st) {
    spdlog::error("cannot open pool: {}", st.message());
    return 1;
  }

  asio::io_context io;
  nbd::ServerOptions options;
  options.limits.handshake_timeout = std::chrono::seconds(config.handshake_timeout_seconds);
  options.max_connections = config.max_connections;
  options.limits.threads_per_connection = config.worker_threads;
  options.limits.stall_timeout = std::chrono::seconds(config.stall_timeout_seconds);
  options.limits.connection_memory = config.connection_memory;
  options.memory_limit = config.memory_limit;
  nbd::Server server(io, exports, options);
  ControlServer control(io);
  add_control_commands(control, std::make_shared<ControlContext>(ControlContext{
                                    .config = config, .exports = exports, .server = server,
                                    .pool = pool}));

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
  spdlog::info("requests may hold {} ({} per client); stalled clients are closed after {} s",
               format_size(config.memory_limit), format_size(config.connection_memory),
               config.stall_timeout_seconds);
  spdlog::info("snapstored ready");
  io.run();
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
  if (pool) {
    Status closed = pool->close();
    if (!closed) {
      spdlog::error("final commit failed: {}", closed.message());
      code = 1;
    }
  }
  spdlog::info("snapstored stopped");
  return code;
}

}  // namespace snapstore
