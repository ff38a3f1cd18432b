// snapshotctl as a child process, and control requests. See ctl_support.h.
#include "ctl_support.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>

extern char** environ;

namespace snapstore::integration {

namespace {

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

nlohmann::json CtlRun::json() const {
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded()) ADD_FAILURE() << "snapshotctl's stdout is not JSON:\n" << describe();
  return j;
}

std::string CtlRun::describe() const {
  return "exit " + std::to_string(code) + (exited ? "" : " (killed at the timeout)") +
         "\nstdout:\n" + out + "stderr:\n" + err;
}

CtlRun snapshotctl(const std::filesystem::path& socket, const std::vector<std::string>& args,
                   std::chrono::milliseconds timeout) {
  static std::atomic<int> runs{0};
  const int run = ++runs;
  const auto dir = socket.parent_path();
  const auto out_path = dir / ("ctl-" + std::to_string(run) + ".out");
  const auto err_path = dir / ("ctl-" + std::to_string(run) + ".err");
  std::vector<std::string> all{SNAPSHOTCTL_PATH, "--socket", socket.string()};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, SNAPSHOTCTL_PATH, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  CtlRun result;
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << SNAPSHOTCTL_PATH;
    return result;
  }
  int status = 0;
  result.exited = eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!result.exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  if (WIFEXITED(status)) result.code = WEXITSTATUS(status);
  result.out = slurp(out_path);
  result.err = slurp(err_path);
  std::error_code ec;
  std::filesystem::remove(out_path, ec);
  std::filesystem::remove(err_path, ec);
  return result;
}

nlohmann::json control(const std::filesystem::path& socket, const std::string& command,
                       const nlohmann::json& args, std::chrono::milliseconds timeout) {
  const nlohmann::json request{{"version", 1}, {"command", command}, {"args", args}};
  auto line = control_request(socket, request.dump(), timeout);
  if (!line) {
    ADD_FAILURE() << "no reply to " << request.dump();
    return nlohmann::json::object();
  }
  auto reply = nlohmann::json::parse(*line, nullptr, false);
  if (!reply.is_object()) {
    ADD_FAILURE() << "reply is not a JSON object: " << *line;
    return nlohmann::json::object();
  }
  return reply;
}

std::vector<std::string> volume_names(const std::filesystem::path& socket) {
  auto reply = control(socket, "volume.list", {{"usage", false}});
  std::vector<std::string> names;
  if (!reply.is_object() || !reply.value("ok", false)) {
    ADD_FAILURE() << "volume.list failed: " << reply.dump();
    return names;
  }
  for (const auto& v : reply["result"]["volumes"]) names.push_back(v["name"].get<std::string>());
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

int collect_export(void* user_data, const char* name, const char* /*description*/) {
  static_cast<std::vector<std::string>*>(user_data)->push_back(name);
  return 0;
}

}  // namespace

std::vector<std::string> nbd_list_exports(const std::filesystem::path& nbd_socket) {
  std::vector<std::string> names;
  NbdHandle h = connect_unix(nbd_socket, {.meta_context = false, .opt_mode = true});
  if (!h) return names;
  if (nbd_opt_list(h.get(), nbd_list_callback{collect_export, &names, nullptr}) == -1)
    ADD_FAILURE() << "nbd_opt_list: " << nbd_error_text();
  nbd_opt_abort(h.get());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace snapstore::integration
