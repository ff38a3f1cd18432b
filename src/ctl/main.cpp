// snapshotctl's entry point. Exit codes: 0 ok, 1 refused, 2 usage, 3 daemon unreachable.
#include <iostream>

#include "ctl/cli.h"

int main(int argc, char** argv) {
  return snapstore::ctl::run_snapshotctl(argc, argv, std::cout, std::cerr);
}
