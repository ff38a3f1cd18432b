// snapstored's entry point: an offline tool (format, check, dump) or the daemon.
// Daemon exit codes: 0 clean shutdown, 1 runtime failure, 2 bad command line or config.
#include "daemon/daemon.h"
#include "daemon/tools.h"

int main(int argc, char** argv) {
  if (argc > 1 && snapstore::is_tool_command(argv[1])) return snapstore::run_tool(argc, argv);
  int exit_code = 0;
  auto config = snapstore::parse_daemon_config(argc, argv, exit_code);
  if (!config) return exit_code;
  return snapstore::run_daemon(*config);
}
