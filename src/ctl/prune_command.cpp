// snapshotctl prune: the retention policy (prune_policy.h) applied to one volume's
// snapshots. Never forces: a snapshot with attached clients is reported and skipped.
#include "ctl/commands.h"
#include "ctl/table.h"

namespace snapstore::ctl {

using json = nlohmann::json;

namespace {

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

}  // namespace

int Ctl::prune(const PruneOptions& p) {
  if (p.policy.empty()) {
    err_ << "snapshotctl: prune needs at least one --keep-* rule (without one it would delete "
            "every snapshot)\n";
    return exit_usage;
  }
  int code = exit_ok;
  auto list = call("volume.list", {{"usage", false}}, code);
  if (!list) return code;
  bool found = false;
  std::vector<PruneCandidate> candidates;
  for (const json& v : list->value("volumes", json::array())) {
    const std::string name = v.value("name", "");
    if (name == p.volume) found = true;
    const json parent = v.value("parent", json());
    if (parent.is_string() && parent.get<std::string>() == p.volume && name.starts_with(p.prefix))
      candidates.push_back({name, v.value("created_ns", std::uint64_t{0})});
  }
  if (!found) {
    err_ << "snapshotctl: prune: no volume named '" << p.volume << "'\n";
    return exit_refused;
  }
  const std::vector<PruneDecision> plan = plan_prune(std::move(candidates), p.policy, options_.zone);

  json report{{"volume", p.volume}, {"prefix", p.prefix}, {"dry_run", p.dry_run},
              {"keep", json::array()}, {"delete", json::array()}};
  for (const PruneDecision& d : plan)
    if (d.keep)
      report["keep"].push_back({{"name", d.name}, {"created_ns", d.created_ns}, {"reasons", d.reasons}});
  code = prune_delete(plan, p.dry_run, report);

  if (options_.json) {
    print_json(report);
    return code;
  }
  std::vector<Row> rows;
  std::size_t deleted = 0, skipped = 0, failed = 0;
  auto created = [&](std::uint64_t ns) {
    return format_time("%Y-%m-%d %H:%M:%S", unix_seconds(ns), options_.zone).value_or("-");
  };
  for (const PruneDecision& d : plan)
    if (d.keep) rows.push_back({"keep", d.name, created(d.created_ns), join(d.reasons)});
  for (const json& d : report["delete"]) {
    const std::string outcome = d.value("outcome", "");
    deleted += outcome == "deleted";
    skipped += outcome == "skipped";
    failed += outcome == "failed";
    std::string why = outcome;
    if (d.contains("error")) why += ": " + d["error"].value("message", "");
    rows.push_back({p.dry_run ? "would delete" : "delete", d.value("name", ""),
                    created(d.value("created_ns", std::uint64_t{0})), why});
  }
  out_ << format_table({{"ACTION"}, {"NAME"}, {"CREATED"}, {"WHY"}}, rows);
  out_ << report["keep"].size() << " kept, "
       << (p.dry_run ? std::to_string(report["delete"].size()) + " would be deleted (dry run)"
                     : std::to_string(deleted) + " deleted")
       << (skipped ? ", " + std::to_string(skipped) + " skipped (clients attached)" : "")
       << (failed ? ", " + std::to_string(failed) + " failed" : "") << '\n';
  return code;
}

// Deletes (or, dry run, lists) the snapshots the plan does not keep, recording each
// outcome in report["delete"]. Exit code: 0, or 1 if a deletion failed other than busy,
// or 3 if the daemon went away (the rest is then not attempted).
int Ctl::prune_delete(const std::vector<PruneDecision>& plan, bool dry_run, json& report) {
  int code = exit_ok;
  for (const PruneDecision& d : plan) {
    if (d.keep) continue;
    json entry{{"name", d.name}, {"created_ns", d.created_ns}};
    if (dry_run) {
      entry["outcome"] = "would delete";
    } else if (code == exit_unreachable) {
      entry["outcome"] = "not attempted";
    } else {
      auto reply = request("volume.delete", {{"name", d.name}, {"force", false}});
      if (!reply) {
        err_ << "snapshotctl: prune: " << reply.status().message() << '\n';
        entry["outcome"] = "not attempted";
        code = exit_unreachable;
      } else if (reply->ok) {
        entry["outcome"] = "deleted";
      } else {
        entry["outcome"] = reply->code == "busy" ? "skipped" : "failed";
        entry["error"] = {{"code", reply->code}, {"message", reply->message}};
        if (reply->code != "busy") code = exit_refused;
      }
    }
    report["delete"].push_back(std::move(entry));
  }
  return code;
}

}  // namespace snapstore::ctl
