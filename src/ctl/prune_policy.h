// Retention policy for `snapshotctl prune`: which snapshots to keep, as restic and borg
// "forget" decide it.
//
// Rules (each 0 = unused):
//   keep_last N      the N newest snapshots;
//   keep_hourly N    for each of the N newest hours that hold a snapshot, the newest
//                    snapshot of that hour; likewise keep_daily (days), keep_weekly (ISO
//                    8601 weeks, Monday first) and keep_monthly (calendar months).
// A snapshot kept by any rule is kept; every other candidate is deleted. Periods are in
// the given zone (local time for the CLI). Snapshots created at the same instant are
// ordered by name, the greater name counting as newer.
//
// Pure: no I/O, no clock; callers pass the candidates and their creation times.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ctl/local_time.h"

namespace snapstore::ctl {

struct RetentionPolicy {
  unsigned keep_last = 0;
  unsigned keep_hourly = 0;
  unsigned keep_daily = 0;
  unsigned keep_weekly = 0;
  unsigned keep_monthly = 0;

  // True when no rule is set: prune refuses to run (it would delete everything).
  bool empty() const {
    return keep_last + keep_hourly + keep_daily + keep_weekly + keep_monthly == 0;
  }
};

struct PruneCandidate {
  std::string name;
  std::uint64_t created_ns = 0;  // unix nanoseconds
};

struct PruneDecision {
  std::string name;
  std::uint64_t created_ns = 0;
  bool keep = false;
  // Why it is kept, one entry per rule: "last 1", "hourly 2024-05-01 14h",
  // "daily 2024-05-01", "weekly 2024-W18", "monthly 2024-05". Empty when deleted.
  std::vector<std::string> reasons;
};

// One decision per candidate, newest first.
std::vector<PruneDecision> plan_prune(std::vector<PruneCandidate> candidates,
                                      const RetentionPolicy& policy,
                                      TimeZone zone = TimeZone::local);

}  // namespace snapstore::ctl
