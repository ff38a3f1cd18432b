// snapshotctl's command line. See cli.h; the commands themselves are in commands.cpp.
#include "ctl/cli.h"

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <functional>

#include "ctl/commands.h"
#include "daemon/config.h"
#include "daemon/size_parse.h"

namespace snapstore::ctl {

namespace {

constexpr const char* footer =
    "Exit codes:\n"
    "  0  done\n"
    "  1  refused: the daemon answered with an error (its code and message are printed)\n"
    "  2  usage error (bad command line, a name pattern that makes no valid name)\n"
    "  3  the daemon cannot be reached, or it did not answer in the control protocol\n"
    "\n"
    "--json prints the daemon's result (or {\"error\": {...}}) as JSON on stdout.\n"
    "The protocol is described in docs/control-protocol.md.";

// What the command line asked for; filled by CLI11, read by the chosen command.
struct Args {
  std::string source, name, name_option, volume, snapshot, from, to, a, b, size;
  bool read_only = false, force = false;
  PruneOptions prune;
};

std::string check_size(const std::string& text) {
  auto size = parse_size(text);
  return size ? std::string() : size.status().message();
}

std::uint64_t size_of(const std::string& text) {
  return parse_size(text).value();  // checked by check_size during parsing
}

void add_snapshot_commands(CLI::App& app, Args& a, std::function<int(Ctl&)>& action) {
  auto* snapshot = app.add_subcommand("snapshot", "create, delete, list, roll back, rename");
  snapshot->require_subcommand(1);

  auto* create = snapshot->add_subcommand(
      "create", "snapshot SOURCE as NAME; NAME may hold strftime conversions such as "
                "auto-%Y%m%d-%H%M, expanded now in local time");
  create->add_option("SOURCE", a.source, "volume to snapshot")->required();
  auto* positional = create->add_option("NAME", a.name, "name of the new snapshot");
  create->add_option("--name", a.name_option, "the same as NAME")->excludes(positional);
  create->add_flag("--readonly,--read-only", a.read_only, "clients may only read the snapshot");
  create->callback([&] {
    if (a.name.empty() && a.name_option.empty())
      throw CLI::RequiredError("NAME (or --name)");
    const std::string name = a.name.empty() ? a.name_option : a.name;
    action = [&a, name](Ctl& c) { return c.snapshot_create(a.source, name, a.read_only); };
  });

  auto* del = snapshot->add_subcommand("delete", "delete a snapshot");
  del->add_option("NAME", a.name)->required();
  del->add_flag("--force", a.force, "disconnect attached clients first");
  del->callback([&] { action = [&a](Ctl& c) { return c.snapshot_delete(a.name, a.force); }; });

  auto* list = snapshot->add_subcommand("list", "list snapshots (of VOLUME: whose parent it is)");
  auto* of = list->add_option("VOLUME", a.volume);
  list->callback([&a, &action, of] {
    std::optional<std::string> parent;
    if (of->count()) parent = a.volume;
    action = [parent](Ctl& c) { return c.snapshot_list(parent); };
  });

  auto* rollback = snapshot->add_subcommand(
      "rollback", "make VOLUME's content SNAPSHOT's again (VOLUME's later writes are lost)");
  rollback->add_option("VOLUME", a.volume)->required();
  rollback->add_option("SNAPSHOT", a.snapshot)->required();
  rollback->add_flag("--force", a.force, "disconnect clients attached to VOLUME first");
  rollback->callback(
      [&] { action = [&a](Ctl& c) { return c.rollback(a.volume, a.snapshot, a.force); }; });

  auto* rename = snapshot->add_subcommand("rename", "rename a snapshot");
  rename->add_option("OLD", a.from)->required();
  rename->add_option("NEW", a.to)->required();
  rename->add_flag("--force", a.force, "disconnect attached clients first");
  rename->callback([&] { action = [&a](Ctl& c) { return c.rename(a.from, a.to, a.force); }; });
}

void add_volume_commands(CLI::App& app, Args& a, std::function<int(Ctl&)>& action) {
  auto* volume = app.add_subcommand("volume", "create, delete, resize, rename, list volumes");
  volume->require_subcommand(1);

  auto* create = volume->add_subcommand("create", "create an empty volume");
  create->add_option("NAME", a.name)->required();
  create->add_option("SIZE", a.size, "size such as 10G or 512M")->required()->check(check_size);
  create->callback(
      [&] { action = [&a](Ctl& c) { return c.volume_create(a.name, size_of(a.size)); }; });

  auto* del = volume->add_subcommand("delete", "delete a volume (its snapshots live on)");
  del->add_option("NAME", a.name)->required();
  del->add_flag("--force", a.force, "disconnect attached clients first");
  del->callback([&] { action = [&a](Ctl& c) { return c.volume_delete(a.name, a.force); }; });

  auto* resize = volume->add_subcommand("resize", "grow or shrink a volume");
  resize->add_option("NAME", a.name)->required();
  resize->add_option("SIZE", a.size, "new size such as 20G")->required()->check(check_size);
  resize->add_flag("--force", a.force, "shrinking: disconnect attached clients first");
  resize->callback([&] {
    action = [&a](Ctl& c) { return c.volume_resize(a.name, size_of(a.size), a.force); };
  });

  auto* rename = volume->add_subcommand("rename", "rename a volume");
  rename->add_option("OLD", a.from)->required();
  rename->add_option("NEW", a.to)->required();
  rename->add_flag("--force", a.force, "disconnect attached clients first");
  rename->callback([&] { action = [&a](Ctl& c) { return c.rename(a.from, a.to, a.force); }; });

  auto* list = volume->add_subcommand("list", "list every volume with its space and clients");
  list->callback([&] { action = [](Ctl& c) { return c.volume_list(); }; });
}

void add_other_commands(CLI::App& app, Args& a, std::function<int(Ctl&)>& action) {
  auto* diff = app.add_subcommand("diff", "byte ranges in which volumes A and B differ");
  diff->add_option("A", a.a)->required();
  diff->add_option("B", a.b)->required();
  diff->callback([&] { action = [&a](Ctl& c) { return c.diff(a.a, a.b); }; });

  auto* prune = app.add_subcommand(
      "prune",
      "delete VOLUME's snapshots named PREFIX... that no --keep-* rule keeps (as restic/borg "
      "forget: the newest N; the newest of each of the newest N hours, days, ISO weeks, "
      "months that have snapshots; local time). Snapshots with attached clients are skipped.");
  PruneOptions& p = a.prune;
  prune->add_option("VOLUME", p.volume, "the snapshots' parent")->required();
  prune->add_option("--prefix", p.prefix, "only snapshots whose name starts with this")
      ->required();
  prune->add_option("--keep-last", p.policy.keep_last, "keep the N newest");
  prune->add_option("--keep-hourly", p.policy.keep_hourly, "keep one for each of N hours");
  prune->add_option("--keep-daily", p.policy.keep_daily, "keep one for each of N days");
  prune->add_option("--keep-weekly", p.policy.keep_weekly, "keep one for each of N weeks");
  prune->add_option("--keep-monthly", p.policy.keep_monthly, "keep one for each of N months");
  prune->add_flag("--dry-run,-n", p.dry_run, "print what would be deleted, delete nothing");
  prune->callback([&] {
    if (a.prune.policy.empty())
      throw CLI::ValidationError("prune", "needs at least one --keep-* rule above 0 (without "
                                          "one it would delete every snapshot)");
    action = [&a](Ctl& c) { return c.prune(a.prune); };
  });

  app.add_subcommand("status", "pool space, cache, commits, reclaim, failures, exports")
      ->callback([&] { action = [](Ctl& c) { return c.status(); }; });
  app.add_subcommand("stats", "I/O counters of every volume since the daemon started")
      ->callback([&] { action = [](Ctl& c) { return c.stats(); }; });
}

}  // namespace

std::filesystem::path default_socket_path() {
  const char* pool = std::getenv("SNAPSTORE_POOL");
  return default_control_socket(pool && *pool ? pool : default_pool_path);
}

int run_snapshotctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"snapshotctl: snapshots and volumes of a running snapstored, over its control "
               "socket",
               "snapshotctl"};
  app.footer(footer);
  app.fallthrough();  // --json, --socket and --timeout also after the command
  app.require_subcommand(1);
  CtlOptions options;
  options.socket = default_socket_path();
  unsigned timeout_seconds = 120;
  app.add_option("--socket", options.socket,
                 "the daemon's control socket (default: $SNAPSTORE_POOL.ctl.sock, or "
                 "/var/lib/snapstore/pool.snap.ctl.sock)")
      ->capture_default_str();
  app.add_flag("--json", options.json, "print the daemon's result JSON instead of a table");
  app.add_option("--timeout", timeout_seconds, "seconds to wait for each reply")
      ->check(CLI::Range(1u, 86400u))
      ->capture_default_str();

  Args args;
  std::function<int(Ctl&)> action;
  add_snapshot_commands(app, args, action);
  add_volume_commands(app, args, action);
  add_other_commands(app, args, action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err) == 0 ? exit_ok : exit_usage;
  }
  if (!action) return exit_usage;  // unreachable: a subcommand is required
  options.timeout = std::chrono::seconds(timeout_seconds);
  Ctl ctl(options, out, err);
  return action(ctl);
}

}  // namespace snapstore::ctl
