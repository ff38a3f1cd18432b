// Unit tests for ctl/prune_policy.h: which snapshots prune keeps, restic/borg style, on
// creation times given in UTC.
#include "ctl/prune_policy.h"

#include <gtest/gtest.h>

#include <ctime>
#include <set>

namespace snapstore::ctl {
namespace {

// Unix nanoseconds of a UTC date and time.
std::uint64_t at(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<std::uint64_t>(::timegm(&tm)) * 1000000000ull;
}

std::set<std::string> kept(const std::vector<PruneDecision>& plan) {
  std::set<std::string> out;
  for (const auto& d : plan)
    if (d.keep) out.insert(d.name);
  return out;
}

std::vector<std::string> reasons_of(const std::vector<PruneDecision>& plan,
                                    const std::string& name) {
  for (const auto& d : plan)
    if (d.name == name) return d.reasons;
  ADD_FAILURE() << name << " is not in the plan";
  return {};
}

// One snapshot every `step_minutes` from `first` on, named s000, s001, ... (oldest first).
std::vector<PruneCandidate> every(std::uint64_t first, int step_minutes, int count) {
  std::vector<PruneCandidate> out;
  for (int i = 0; i < count; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "s%03d", i);
    out.push_back({name, first + std::uint64_t(i) * step_minutes * 60 * 1000000000ull});
  }
  return out;
}

TEST(PrunePolicy, EmptyPolicyIsEmptyAndKeepsNothing) {
  RetentionPolicy none;
  EXPECT_TRUE(none.empty());
  auto plan = plan_prune(every(at(2024, 5, 1), 60, 3), none, TimeZone::utc);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_TRUE(kept(plan).empty());
  EXPECT_FALSE(RetentionPolicy{.keep_monthly = 1}.empty());
}

TEST(PrunePolicy, NoCandidatesNoDecisions) {
  EXPECT_TRUE(plan_prune({}, {.keep_last = 3}, TimeZone::utc).empty());
}

TEST(PrunePolicy, DecisionsAreNewestFirstWhateverTheInputOrder) {
  auto snaps = every(at(2024, 5, 1), 60, 4);
  std::swap(snaps[0], snaps[3]);
  std::swap(snaps[1], snaps[2]);
  auto plan = plan_prune(snaps, {.keep_last = 1}, TimeZone::utc);
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_EQ(plan[0].name, "s003");
  EXPECT_EQ(plan[3].name, "s000");
}

TEST(PrunePolicy, KeepLastKeepsTheNewestN) {
  auto plan = plan_prune(every(at(2024, 5, 1), 15, 6), {.keep_last = 2}, TimeZone::utc);
  EXPECT_EQ(kept(plan), (std::set<std::string>{"s005", "s004"}));
  EXPECT_EQ(reasons_of(plan, "s005"), std::vector<std::string>{"last 1"});
  EXPECT_EQ(reasons_of(plan, "s004"), std::vector<std::string>{"last 2"});
  EXPECT_TRUE(reasons_of(plan, "s003").empty());
}

TEST(PrunePolicy, KeepLastLargerThanTheListKeepsAll) {
  auto plan = plan_prune(every(at(2024, 5, 1), 15, 3), {.keep_last = 10}, TimeZone::utc);
  EXPECT_EQ(kept(plan).size(), 3u);
}

// Every 15 minutes from 10:00 to 15:45: the newest of each of the 3 newest hours is the
// :45 snapshot of 15h, 14h and 13h.
TEST(PrunePolicy, HourlyKeepsTheNewestOfEachOfTheNewestHours) {
  auto plan = plan_prune(every(at(2024, 5, 1, 10), 15, 24), {.keep_hourly = 3}, TimeZone::utc);
  EXPECT_EQ(kept(plan), (std::set<std::string>{"s023", "s019", "s015"}));
  EXPECT_EQ(reasons_of(plan, "s023"), std::vector<std::string>{"hourly 2024-05-01 15h"});
  EXPECT_EQ(reasons_of(plan, "s015"), std::vector<std::string>{"hourly 2024-05-01 13h"});
}

// Only periods that have snapshots count: a gap of days does not use up the rule.
TEST(PrunePolicy, DailyCountsOnlyDaysThatHaveSnapshots) {
  std::vector<PruneCandidate> snaps = {
      {"may01-a", at(2024, 5, 1, 8)},  {"may01-b", at(2024, 5, 1, 20)},
      {"may03", at(2024, 5, 3, 9)},    {"may10-a", at(2024, 5, 10, 0, 0, 1)},
      {"may10-b", at(2024, 5, 10, 23, 59, 59)},
  };
  auto plan = plan_prune(snaps, {.keep_daily = 3}, TimeZone::utc);
  EXPECT_EQ(kept(plan), (std::set<std::string>{"may10-b", "may03", "may01-b"}));
  EXPECT_EQ(reasons_of(plan, "may03"), std::vector<std::string>{"daily 2024-05-03"});
}

// ISO weeks start on Monday: Sunday 2024-05-05 and Monday 2024-05-06 are in different
// weeks, Monday 2024-04-29 and Sunday 2024-05-05 in the same one.
TEST(PrunePolicy, WeeklyUsesIsoWeeks) {
  std::vector<PruneCandidate> snaps = {
      {"mon-apr29", at(2024, 4, 29, 12)},
      {"sun-may05", at(2024, 5, 5, 12)},
      {"mon-may06", at(2024, 5, 6, 12)},
  };
  auto plan = plan_prune(snaps, {.keep_weekly = 5}, TimeZone::utc);
  EXPECT_EQ(kept(plan), (std::set<std::string>{"sun-may05", "mon-may06"}));
  EXPECT_EQ(reasons_of(plan, "sun-may05"), std::vector<std::string>{"weekly 2024-W18"});
  EXPECT_EQ(reasons_of(plan, "mon-may06"), std::vector<std::string>{"weekly 2024-W19"});
}

// The ISO year of 2024-12-30 is 2025 (week 1).
TEST(PrunePolicy, WeeklyAcrossTheYearBoundary) {
  std::vector<PruneCandidate> snaps = {{"dec30", at(2024, 12, 30)}, {"jan05", at(2025, 1, 5)},
                                       {"dec29", at(2024, 12, 29)}};
  auto plan = plan_prune(snaps, {.keep_weekly = 2}, TimeZone::utc);
  EXPECT_EQ(kept(plan), (std::set<std::string>{"jan05", "dec29"}));
  EXPECT_EQ(reasons_of(plan, "jan05"), std::vector<std::string>{"weekly 2025-W01"});
}

TEST(PrunePolicy, MonthlyKeepsTheNewestOfEachMonth) {
  std::vector<PruneCandidate> snaps = {
      {"jan", at(2024, 1, 31, 23)}, {"feb-1", at(2024, 2, 1)}, {"feb-29", at(2024, 2, 29, 12)},
      {"apr", at(2024, 4, 2)},
  };
  auto plan = plan_prune(snaps, {.keep_monthly = 2}, TimeZone::utc);
  EXPECT_EQ(kept(plan), (std::set<std::string>{"apr", "feb-29"}));
  plan = plan_prune(snaps, {.keep_monthly = 12}, TimeZone::utc);
  EXPECT_EQ(kept(plan), (std::set<std::string>{"apr", "feb-29", "jan"}));
}

// A snapshot kept by any rule is kept, with every rule that keeps it as a reason.
TEST(PrunePolicy, RulesCombineAsAUnion) {
  // Every 15 minutes over two days: 2024-05-01 00:00 .. 2024-05-02 23:45.
  auto snaps = every(at(2024, 5, 1), 15, 192);
  RetentionPolicy policy{.keep_last = 2, .keep_hourly = 3, .keep_daily = 2};
  auto plan = plan_prune(snaps, policy, TimeZone::utc);
  // last: s191 s190; hourly: s191 (23h) s187 (22h) s183 (21h); daily: s191, s095 (May 1 23:45).
  EXPECT_EQ(kept(plan), (std::set<std::string>{"s191", "s190", "s187", "s183", "s095"}));
  EXPECT_EQ(reasons_of(plan, "s191"),
            (std::vector<std::string>{"last 1", "hourly 2024-05-02 23h", "daily 2024-05-02"}));
  EXPECT_EQ(reasons_of(plan, "s095"), std::vector<std::string>{"daily 2024-05-01"});
  EXPECT_EQ(plan.size(), 192u);
}

// The design's example: a snapshot every 15 minutes, --keep-hourly 24 --keep-daily 7,
// over ten days, keeps 24 + 7 - 1 (the newest is both).
TEST(PrunePolicy, TenDaysOfQuarterHoursWithHourlyAndDaily) {
  auto snaps = every(at(2024, 5, 1), 15, 10 * 96);
  auto plan = plan_prune(snaps, {.keep_hourly = 24, .keep_daily = 7}, TimeZone::utc);
  EXPECT_EQ(kept(plan).size(), 30u);
  // Every kept snapshot is the :45 one of its hour (the newest of the hour).
  for (const auto& d : plan)
    if (d.keep) {
      EXPECT_EQ((d.created_ns / 1000000000ull / 60) % 60, 45u) << d.name;
    }
}

// Equal creation times: the greater name counts as newer, so the result is deterministic.
TEST(PrunePolicy, TiesAreBrokenByName) {
  const std::uint64_t t = at(2024, 5, 1, 12);
  auto plan = plan_prune({{"b", t}, {"c", t}, {"a", t}}, {.keep_last = 1}, TimeZone::utc);
  EXPECT_EQ(kept(plan), std::set<std::string>{"c"});
  EXPECT_EQ(plan[0].name, "c");
  EXPECT_EQ(plan[2].name, "a");
}

TEST(PrunePolicy, NamesAndTimesAreCarriedThrough) {
  auto plan = plan_prune({{"x", 42}}, {.keep_last = 1}, TimeZone::utc);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].name, "x");
  EXPECT_EQ(plan[0].created_ns, 42u);
  EXPECT_TRUE(plan[0].keep);
}

}  // namespace
}  // namespace snapstore::ctl
