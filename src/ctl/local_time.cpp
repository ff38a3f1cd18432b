// strftime in local time or UTC. See local_time.h.
#include "ctl/local_time.h"

namespace snapstore::ctl {

std::tm broken_down(std::time_t t, TimeZone zone) {
  std::tm tm{};
  if (zone == TimeZone::utc)
    ::gmtime_r(&t, &tm);
  else
    ::localtime_r(&t, &tm);
  return tm;
}

std::optional<std::string> format_time(std::string_view format, std::time_t t, TimeZone zone) {
  const std::tm tm = broken_down(t, zone);
  const std::string f(format);
  char out[1024];
  const std::size_t n = std::strftime(out, sizeof out, f.c_str(), &tm);
  if (n == 0) return std::nullopt;
  return std::string(out, n);
}

}  // namespace snapstore::ctl
