// Broken-down time and strftime for snapshotctl, in local time or UTC.
//
// Snapshot names (auto-%Y%m%d-%H%M), the created column of the tables and the periods of
// prune's retention rules all use local time, as cron does; tests pass utc so that they do
// not depend on the machine's zone. Pure apart from reading the zone (thread-safe).
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace snapstore::ctl {

enum class TimeZone { local, utc };

std::tm broken_down(std::time_t t, TimeZone zone);

// strftime(format) at `t`; nullopt when the result is empty or longer than 1023 bytes.
std::optional<std::string> format_time(std::string_view format, std::time_t t, TimeZone zone);

// Unix nanoseconds to seconds (rounded down).
inline std::time_t unix_seconds(std::uint64_t unix_ns) {
  return static_cast<std::time_t>(unix_ns / 1000000000u);
}

}  // namespace snapstore::ctl
