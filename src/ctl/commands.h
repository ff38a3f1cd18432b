// snapshotctl's commands: each sends one or more control requests and prints the outcome,
// as a table (default) or as the daemon's result JSON (--json), and returns the exit code.
//
// Exit codes (stable; `snapshotctl --help` and docs/control-protocol.md say the same):
//   0  done
//   1  refused: the daemon answered with an error (or snapshotctl refused to act on what
//      the daemon reported, e.g. `snapshot delete` of a volume that is not a snapshot)
//   2  usage error (bad command line, a name pattern that makes no valid name)
//   3  the daemon cannot be reached, or its reply is not the protocol
#pragma once

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>

#include "ctl/control_client.h"
#include "ctl/prune_policy.h"

namespace snapstore::ctl {

inline constexpr int exit_ok = 0;
inline constexpr int exit_refused = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_unreachable = 3;

struct CtlOptions {
  std::filesystem::path socket;
  bool json = false;
  std::chrono::milliseconds timeout{120000};
  TimeZone zone = TimeZone::local;  // names, the created column, prune periods
};

struct PruneOptions {
  std::string volume;
  std::string prefix;
  RetentionPolicy policy;
  bool dry_run = false;
};

class Ctl {
 public:
  Ctl(CtlOptions options, std::ostream& out, std::ostream& err)
      : options_(std::move(options)), out_(out), err_(err) {}

  // NAME may hold strftime conversions, expanded now (name_pattern.h).
  int snapshot_create(const std::string& source, const std::string& name_pattern,
                      bool read_only);
  // Refuses a volume that has no parent: that is `volume delete`'s job.
  int snapshot_delete(const std::string& name, bool force);
  // Volumes with a parent; with `parent`, only those whose parent it is.
  int snapshot_list(const std::optional<std::string>& parent);
  int rollback(const std::string& volume, const std::string& snapshot, bool force);
  int rename(const std::string& from, const std::string& to, bool force);
  int volume_create(const std::string& name, std::uint64_t size);
  int volume_delete(const std::string& name, bool force);
  int volume_resize(const std::string& name, std::uint64_t size, bool force);
  int volume_list();
  int diff(const std::string& a, const std::string& b);
  int prune(const PruneOptions& prune);
  int status();
  int stats();

 private:
  // One request on the (lazily connected) control connection; a non-ok Result when no
  // usable reply came (the connection is then dropped).
  Result<Reply> request(const std::string& command, const nlohmann::json& args);
  // One request. On a refusal or a transport failure it prints why, sets `code` and
  // returns nullopt.
  std::optional<nlohmann::json> call(const std::string& command, const nlohmann::json& args,
                                     int& code);
  // The volume list (volume.list) or nullopt (code set).
  std::optional<nlohmann::json> list_volumes(int& code);
  void print_json(const nlohmann::json& j);
  std::string when(const nlohmann::json& volume) const;
  int prune_delete(const std::vector<PruneDecision>& plan, bool dry_run,
                   nlohmann::json& report);

  CtlOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  std::optional<ControlClient> client_;
};

}  // namespace snapstore::ctl
