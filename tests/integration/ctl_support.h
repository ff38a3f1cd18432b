// Support for the snapshot and control-socket integration tests: snapshotctl run as a
// child process against a DaemonProcess, and single control requests as JSON.
//
// Every wait is bounded.
#pragma once

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_server.h"

namespace snapstore::integration {

struct CtlRun {
  bool exited = false;  // false: still running at the timeout (then killed)
  int code = -1;        // exit code (-1 if it did not exit normally)
  std::string out, err;
  // stdout parsed as JSON; a test failure (and a discarded value) if it is not JSON.
  nlohmann::json json() const;
  std::string describe() const;  // for failure messages
};

// Runs snapshotctl --socket SOCKET ARGS...; output files go into the socket's directory.
CtlRun snapshotctl(const std::filesystem::path& socket, const std::vector<std::string>& args,
                   std::chrono::milliseconds timeout = 60s);
inline CtlRun snapshotctl(const DaemonProcess& d, const std::vector<std::string>& args,
                          std::chrono::milliseconds timeout = 60s) {
  return snapshotctl(d.control_socket(), args, timeout);
}

// One request {"version":1,"command":command,"args":args}; the parsed reply, or an empty
// object (and a test failure) when no JSON object line came back.
nlohmann::json control(const std::filesystem::path& socket, const std::string& command,
                       const nlohmann::json& args = nlohmann::json::object(),
                       std::chrono::milliseconds timeout = 30s);

// The names of volume.list, sorted.
std::vector<std::string> volume_names(const std::filesystem::path& socket);

// The names NBD_OPT_LIST returns.
std::vector<std::string> nbd_list_exports(const std::filesystem::path& nbd_socket);

}  // namespace snapstore::integration
