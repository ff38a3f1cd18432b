// Retention selection for prune. See prune_policy.h.
#include "ctl/prune_policy.h"

#include <algorithm>

namespace snapstore::ctl {

namespace {

struct PeriodRule {
  const char* label;
  const char* format;  // strftime format naming the period a time falls in
  unsigned count;
};

}  // namespace

std::vector<PruneDecision> plan_prune(std::vector<PruneCandidate> candidates,
                                      const RetentionPolicy& policy, TimeZone zone) {
  std::sort(candidates.begin(), candidates.end(), [](const auto& x, const auto& y) {
    if (x.created_ns != y.created_ns) return x.created_ns > y.created_ns;
    return x.name > y.name;
  });
  std::vector<PruneDecision> out;
  out.reserve(candidates.size());
  for (auto& c : candidates) out.push_back({std::move(c.name), c.created_ns, false, {}});

  auto keep = [](PruneDecision& d, std::string reason) {
    d.keep = true;
    d.reasons.push_back(std::move(reason));
  };
  for (std::size_t i = 0; i < out.size() && i < policy.keep_last; ++i)
    keep(out[i], "last " + std::to_string(i + 1));

  const PeriodRule rules[] = {{"hourly", "%Y-%m-%d %Hh", policy.keep_hourly},
                              {"daily", "%Y-%m-%d", policy.keep_daily},
                              {"weekly", "%G-W%V", policy.keep_weekly},
                              {"monthly", "%Y-%m", policy.keep_monthly}};
  for (const PeriodRule& rule : rules) {
    // Newest first, so the first snapshot seen in a period is that period's newest.
    unsigned kept = 0;
    std::string last_period;
    for (PruneDecision& d : out) {
      if (kept == rule.count) break;
      std::string period = format_time(rule.format, unix_seconds(d.created_ns), zone).value_or("");
      if (period == last_period) continue;
      last_period = period;
      keep(d, std::string(rule.label) + " " + period);
      ++kept;
    }
  }
  return out;
}

}  // namespace snapstore::ctl
