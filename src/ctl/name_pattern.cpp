// strftime expansion of snapshot names. See name_pattern.h.
#include "ctl/name_pattern.h"

#include "volume/volume_record.h"

namespace snapstore::ctl {

Result<std::string> expand_name_pattern(std::string_view pattern, std::time_t when,
                                        TimeZone zone) {
  if (pattern.empty()) return invalid_argument("the snapshot name cannot be empty");
  if (pattern.find('%') == std::string_view::npos) {
    Status valid = validate_volume_name(pattern);
    if (!valid) return valid;
    return std::string(pattern);
  }
  auto name = format_time(pattern, when, zone);
  if (!name)
    return invalid_argument("name pattern '" + std::string(pattern) +
                            "' expands to nothing or to more than 1023 bytes");
  Status valid = validate_volume_name(*name);
  if (!valid)
    return invalid_argument("name pattern '" + std::string(pattern) + "' expands to '" + *name +
                            "', which is not a valid name: " + valid.message());
  return *name;
}

}  // namespace snapstore::ctl
