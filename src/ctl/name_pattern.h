// Snapshot names with strftime patterns: "auto-%Y%m%d-%H%M" becomes "auto-20240501-1215".
//
// Expanded by snapshotctl (client side) at the time it runs, in local time, and checked
// against the daemon's name rules (validate_volume_name) so that a pattern that can never
// make a valid name is refused with a message that shows what it expanded to.
#pragma once

#include <ctime>
#include <string>
#include <string_view>

#include "ctl/local_time.h"
#include "snapstore/status.h"

namespace snapstore::ctl {

Result<std::string> expand_name_pattern(std::string_view pattern, std::time_t when,
                                        TimeZone zone = TimeZone::local);

}  // namespace snapstore::ctl
