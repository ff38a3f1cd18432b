// The in-process server and the snapstored child process. See test_server.h.
#include "test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <type_traits>

extern char** environ;

namespace snapstore::integration {

// --- the in-process server -----------------------------------------------------------

InProcessServer::InProcessServer(InProcessOptions options) : socket_(dir_.path() / "nbd.sock") {
  spdlog::set_level(spdlog::level::warn);
  add("origin", {.size = origin_size, .description = "writable origin, 64 MiB"});
  add("ro", {.size = small_size, .read_only = true, .description = "read-only, 1 MiB"});
  add("aligned", {.size = small_size,
                  .block_sizes = {.minimum = 512, .preferred = 4096, .maximum = max_block},
                  .description = "512-byte sectors, 1 MiB"});
  add("tiny", {.size = tiny_size, .description = "odd-sized, 5003 bytes"});

  nbd::ServerOptions server_options;
  server_options.limits.handshake_timeout = options.handshake_timeout;
  server_options.max_connections = options.max_connections;
  server_.emplace(io_, exports_, server_options);
  if (Status st = server_->listen_unix(socket_, 0600); !st)
    throw std::runtime_error("listen_unix: " + st.to_string());
  std::promise<void> done;
  io_done_ = done.get_future();
  io_thread_ = std::thread([this, done = std::move(done)]() mutable {
    io_.run();
    done.set_value();
  });
}

InProcessServer::~InProcessServer() {
  if (!stopped_ && !stop())
    ADD_FAILURE() << "the in-process server did not stop within 10 s; " << connection_count()
                  << " connection(s) still registered";
  if (io_done_.wait_for(0s) != std::future_status::ready) io_.stop();  // give up on them
  io_thread_.join();
  server_.reset();
}

bool InProcessServer::stop(std::chrono::milliseconds timeout) {
  stopped_ = true;
  server_->stop();
  return io_done_.wait_for(timeout) == std::future_status::ready;
}

void InProcessServer::add(const std::string& name, MemoryVolumeOptions options) {
  descriptions_[name] = options.description;
  auto volume = std::make_shared<MemoryVolume>(std::move(options));
  volumes_[name] = volume;
  if (Status st = exports_.add(name, volume); !st)
    throw std::runtime_error("exports.add: " + st.to_string());
}

// --- child processes -----------------------------------------------------------------

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Starts SNAPSTORED_PATH with `args` (argv[0] excluded), stdin from /dev/null and both
// stdout and stderr appended to `output`. Returns -1 on failure.
pid_t spawn_snapstored(const std::vector<std::string>& args, const std::filesystem::path& output) {
  std::vector<std::string> all{SNAPSTORED_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGTERM, SIGINT, SIGPIPE}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, SNAPSTORED_PATH, &actions, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

// Polls for the child's exit for up to `timeout`; its wait status, or nullopt.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  std::optional<int> status;
  eventually(
      [&] {
        int s = 0;
        pid_t r = ::waitpid(pid, &s, WNOHANG);
        if (r == pid) status = s;
        return r != 0;  // exited, or no such child
      },
      timeout);
  return status;
}

bool can_connect(const std::filesystem::path& socket) {
  return RawSocket::connect_unix(socket).is_open();
}

}  // namespace

std::uint16_t free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  std::uint16_t port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0)
    port = ntohs(addr.sin_port);
  if (fd >= 0) ::close(fd);
  return port;
}

DaemonProcess::DaemonProcess(const std::filesystem::path& dir, DaemonOptions options)
    : dir_(dir),
      pool_(options.pool.empty() ? dir / "pool" : options.pool),
      nbd_socket_(dir / "nbd.sock"),
      control_socket_(dir / "ctl.sock"),
      log_(dir / "snapstored.log") {
  std::vector<std::string> args{"--pool",           pool_.string(),          "--pool-size",
                                options.pool_size,  "--nbd-socket",          nbd_socket_.string(),
                                "--control-socket", control_socket_.string()};
  if (options.tcp) {
    port_ = free_tcp_port();
    args.insert(args.end(), {"--listen", "127.0.0.1:" + std::to_string(port_)});
  } else {
    args.emplace_back("--no-tcp");
  }
  if (!options.backend.empty()) args.insert(args.end(), {"--backend", options.backend});
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
  pid_ = spawn_snapstored(args, log_);
  if (pid_ < 0) {
    ADD_FAILURE() << "cannot start " << SNAPSTORED_PATH;
    return;
  }
  // The control socket is bound last, after TCP and the NBD socket.
  ready_ = eventually([&] {
             return exit_status().has_value() ||
                    (can_connect(control_socket_) && can_connect(nbd_socket_));
           }) &&
           !status_;
  if (!ready_) ADD_FAILURE() << "snapstored did not become ready within 10 s; log:\n" << log();
}

DaemonProcess::~DaemonProcess() {
  if (pid_ < 0 || status_) return;
  if (!terminate()) ADD_FAILURE() << "snapstored ignored SIGTERM for 10 s and was killed";
}

std::optional<int> DaemonProcess::exit_status() {
  if (!status_ && pid_ > 0) {
    int s = 0;
    if (::waitpid(pid_, &s, WNOHANG) == pid_) status_ = s;
  }
  return status_;
}

std::optional<int> DaemonProcess::terminate(std::chrono::milliseconds timeout, int signal) {
  if (pid_ < 0) return std::nullopt;
  if (status_) return status_;
  ::kill(pid_, signal);
  if (auto s = wait_exit(pid_, timeout)) return status_ = s;
  ::kill(pid_, SIGKILL);
  int s = 0;
  if (::waitpid(pid_, &s, 0) == pid_) status_ = s;
  return std::nullopt;
}

void DaemonProcess::kill() {
  if (pid_ < 0 || status_) return;
  ::kill(pid_, SIGKILL);
  int s = 0;
  if (::waitpid(pid_, &s, 0) == pid_) status_ = s;
}

std::string DaemonProcess::log() const {
  return read_file(log_);
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

bool exited_with(int status, int code) {
  return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

RunResult run_snapstored(const std::vector<std::string>& args, const std::filesystem::path& dir,
                         std::chrono::milliseconds timeout) {
  static int runs = 0;
  const auto output = dir / ("run-" + std::to_string(++runs) + ".log");
  RunResult result;
  pid_t pid = spawn_snapstored(args, output);
  if (pid < 0) {
    ADD_FAILURE() << "cannot start " << SNAPSTORED_PATH;
    return result;
  }
  if (auto s = wait_exit(pid, timeout)) {
    result.exited = true;
    result.status = *s;
  } else {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &result.status, 0);
  }
  result.output = read_file(output);
  return result;
}

std::optional<std::string> control_request(const std::filesystem::path& socket,
                                           const std::string& line,
                                           std::chrono::milliseconds timeout) {
  RawSocket s = RawSocket::connect_unix(socket);
  if (!s.is_open() || !s.send_all(line.data(), line.size()) || !s.send_all("\n", 1))
    return std::nullopt;
  return s.read_line(timeout);
}

std::vector<std::string> damage_after_crash(const std::filesystem::path& dir,
                                            const std::filesystem::path& pool) {
  RunResult r = run_snapstored({"check", "--json", pool.string()}, dir, std::chrono::seconds(60));
  if (!r.exited) return {"snapstored check still running after 60 s"};
  const auto start = r.output.find('{');
  auto report = nlohmann::json::parse(start == std::string::npos ? "" : r.output.substr(start), nullptr, false);
  if (report.is_discarded() || !report.contains("problems")) return {"unreadable check report: " + r.output};
  return report["problems"].get<std::vector<std::string>>();
}

}  // namespace snapstore::integration
