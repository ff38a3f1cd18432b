// Fixtures for the integration tests: a server in this process and snapstored as a child
// process (test_support.h has the clients).
//
// InProcessServer: an io_context, a worker pool, an ExportTable of MemoryVolumes and an
// nbd::Server on a private Unix socket, run on a background thread. Tests may reach the
// volumes directly (inject faults, count flushes, read what landed). Exports:
//   origin   64 MiB, writable, minimum block size 1
//   ro       1 MiB, read-only
//   aligned  1 MiB, writable, minimum block size 512
//   tiny     5003 bytes (one page and a short one), writable
//
// DaemonProcess: snapstored started with posix_spawn on <dir>/pool (a new pool is formatted;
// DaemonOptions.backend picks "pool" or "raw", DaemonOptions.pool another file), with its
// own sockets in <dir>; the constructor waits (bounded) until both sockets accept. Its
// output goes to <dir>/snapstored.log.
//
// Every wait in here is bounded, and each fixture cleans up after itself even when the
// test fails half-way.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "nbd/server.h"
#include "test_support.h"
#include "volume/export_table.h"
#include "volume/memory_volume.h"

namespace snapstore::integration {

// --- the in-process server -----------------------------------------------------------

struct InProcessOptions {
  std::chrono::milliseconds handshake_timeout = 30s;
  std::size_t max_connections = 512;
};

class InProcessServer {
 public:
  static constexpr std::uint64_t origin_size = 64ull << 20;
  static constexpr std::uint64_t small_size = 1ull << 20;  // ro and aligned
  static constexpr std::uint64_t tiny_size = 5003;
  static constexpr std::uint32_t max_block = 32u << 20;

  explicit InProcessServer(InProcessOptions options = {});
  ~InProcessServer();  // stop(), recording a failure if the server does not stop in time

  // Stops the server gracefully and waits up to `timeout` for its io_context to run out of
  // work, which happens only once every connection has finished. False on timeout.
  bool stop(std::chrono::milliseconds timeout = 10s);

  const std::filesystem::path& socket_path() const { return socket_; }
  MemoryVolume& volume(const std::string& name) { return *volumes_.at(name); }
  const std::map<std::string, std::string>& descriptions() const { return descriptions_; }
  std::size_t connection_count() { return server_->connections().count(); }
  // The live export table (tests add and remove exports while the server runs), the
  // server itself (disconnect_export, the connection registry) and its io_context.
  ExportTable& exports() { return exports_; }
  nbd::Server& server() { return *server_; }
  boost::asio::io_context& io() { return io_; }
  NbdHandle connect(const ConnectOptions& options = {}) { return connect_unix(socket_, options); }
  NbdHandle connect(const std::string& export_name) {
    ConnectOptions o;
    o.export_name = export_name;
    return connect(o);
  }
  RawSocket raw() { return RawSocket::connect_unix(socket_); }

 private:
  void add(const std::string& name, MemoryVolumeOptions options);

  TempDir dir_;
  std::filesystem::path socket_;
  ExportTable exports_;
  std::map<std::string, std::shared_ptr<MemoryVolume>> volumes_;
  std::map<std::string, std::string> descriptions_;
  boost::asio::io_context io_;
  std::optional<nbd::Server> server_;
  std::future<void> io_done_;
  std::thread io_thread_;
  bool stopped_ = false;
};

// --- snapstored ----------------------------------------------------------------------

// Asks the kernel for a free TCP port on 127.0.0.1 (bind to port 0, read it, close).
std::uint16_t free_tcp_port();

struct DaemonOptions {
  bool tcp = false;  // --listen 127.0.0.1:<free port> instead of --no-tcp
  std::string pool_size = "64M";
  std::string backend = "";  // --backend, unless empty (the daemon's default)
  std::filesystem::path pool = {};  // the pool file, unless empty (<dir>/pool)
  std::vector<std::string> extra_args = {};
};

class DaemonProcess {
 public:
  // Starts snapstored on <dir>/pool and waits up to 10 s for both sockets to accept.
  explicit DaemonProcess(const std::filesystem::path& dir, DaemonOptions options = {});
  ~DaemonProcess();  // SIGTERM, a bounded wait, then SIGKILL
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  bool ready() const { return ready_; }
  pid_t pid() const { return pid_; }
  const std::filesystem::path& pool() const { return pool_; }
  const std::filesystem::path& nbd_socket() const { return nbd_socket_; }
  const std::filesystem::path& control_socket() const { return control_socket_; }
  std::uint16_t tcp_port() const { return port_; }
  std::string log() const;

  // Sends `signal` (SIGTERM unless told) and waits up to `timeout`; returns the wait status,
  // or nullopt if it had to be killed. Later calls return the same status.
  std::optional<int> terminate(std::chrono::milliseconds timeout = 10s, int signal = 15);
  // SIGKILL, then wait: a crash that leaves everything behind.
  void kill();
  // The wait status once the process has exited (polls, does not block).
  std::optional<int> exit_status();

  NbdHandle connect(const ConnectOptions& options = {}) const {
    return connect_unix(nbd_socket_, options);
  }

 private:
  std::filesystem::path dir_, pool_, nbd_socket_, control_socket_, log_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::optional<int> status_;
  bool ready_ = false;
};

// "exit 2", "signal 9": a wait status for failure messages.
std::string describe_wait_status(int status);
bool exited_with(int status, int code);

// Runs snapstored with `args` to completion (bounded); output is stdout and stderr.
struct RunResult {
  bool exited = false;  // false: still running at the timeout (then killed)
  int status = 0;       // wait status
  std::string output;
};
RunResult run_snapstored(const std::vector<std::string>& args, const std::filesystem::path& dir,
                         std::chrono::milliseconds timeout = 10s);

// `snapstored check --json` on a pool whose daemon died: the problems it reports that no
// crash explains (a superblock copy or log record half written is what a crash leaves, and
// the next writable open repairs it). Empty when the pool holds no damage; a failure to run
// check or to read its report is reported as a problem too.
std::vector<std::string> damage_after_crash(const std::filesystem::path& dir,
                                            const std::filesystem::path& pool);

// One line of JSON over the control socket; nullopt if no full line came back in time.
std::optional<std::string> control_request(const std::filesystem::path& socket,
                                           const std::string& line,
                                           std::chrono::milliseconds timeout = 5s);

}  // namespace snapstore::integration
