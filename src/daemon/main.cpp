// snapstored's entry point: parse the configuration, then run the daemon.
// Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad command line or config.
#include "daemon/daemon.h"

int main(int argc, char** argv) {
  int exit_code = 0;
  auto config = snapstore::parse_daemon_config(argc, argv, exit_code);
  if (!config) return exit_code;
  return snapstore::run_daemon(*config);
}
