// The offline tools: `snapstored format`, `snapstored check` and `snapstored dump`.
//
// Each parses its own command line (CLI11) and returns the process exit code:
//   format: 0 formatted, 1 failed, 2 bad usage or refused (an existing pool or foreign
//           data without --force);
//   check:  0 clean, 1 problems found, 2 bad usage or the pool could not be read at all;
//   dump:   0 printed, 1 the pool could not be opened, 2 bad usage.
// None of them writes to a pool except format.
#pragma once

#include <string_view>

namespace snapstore {

bool is_tool_command(std::string_view word);
int run_tool(int argc, const char* const* argv);

}  // namespace snapstore
