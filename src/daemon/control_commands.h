// The control socket's commands (docs/control-protocol.md): status, stats, volume.list,
// diff, snapshot.create and volume.{create,delete,rename,rollback,resize}.
//
// Handlers run one at a time on the control worker thread (control_server.h), never on
// the io thread, so they may commit and wait for NBD clients to go away.
//
// Invariants:
//  1. Every handler checks all of its arguments (ArgReader::finish) before it changes
//     anything: a request with a bad, missing or unknown argument changes nothing.
//  2. The export table follows the pool at once: a created snapshot or volume is
//     attachable (and in NBD_OPT_LIST) when the reply is sent; a deleted or renamed one
//     is gone under its old name; a resized or rolled-back one is served anew.
//  3. A command that would pull a volume from under attached clients (delete, rename,
//     rollback, shrink) first takes the volume out of the export table, so that no new
//     client can attach, then refuses with "busy" while clients are attached unless
//     "force" is given, in which case they are disconnected first (in-flight requests
//     finish). A refused or failed command puts the export back as it was.
//  4. With --backend raw only status answers; every other command is "not_supported".
#pragma once

#include <chrono>
#include <memory>

#include "daemon/config.h"
#include "daemon/control_server.h"
#include "nbd/server.h"
#include "volume/pool.h"

namespace snapstore {

struct ControlContext {
  DaemonConfig config;
  ExportTable& exports;
  nbd::Server& server;
  std::shared_ptr<Pool> pool;  // null with --backend raw
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // How long a forced command waits for attached clients to finish and disconnect.
  std::chrono::milliseconds disconnect_timeout{10000};
};

void add_control_commands(ControlServer& control, std::shared_ptr<ControlContext> context);

// --- shared by the command files -----------------------------------------------------

// Registers the commands that change volumes (volume_commands.cpp).
void add_volume_commands(ControlServer& control, std::shared_ptr<ControlContext> context);

// "not_supported" unless the daemon serves a pool.
Status require_pool(const ControlContext& c);

// One volume as volume.list and the creating commands report it. `names` maps volume id
// to name (for the parent's name). Usage (mapped/exclusive/shared bytes) only if asked.
Result<nlohmann::json> volume_json(const ControlContext& c, const VolumeRecord& v,
                                   const std::map<std::uint64_t, std::string>& names,
                                   bool with_usage);
std::map<std::uint64_t, std::string> volume_names(const Pool& pool);

// "2024-05-01T12:00:00Z" for unix nanoseconds.
std::string iso_time_utc(std::uint64_t unix_ns);

}  // namespace snapstore
