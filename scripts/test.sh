#!/usr/bin/env bash
# Install what is missing, build into build/, and run every test with ctest.
# Extra arguments go to ctest, e.g. scripts/test.sh -L shell   or   -R shell_ext4
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/install-deps.sh
BUILD_DIR=build scripts/build.sh
exec ctest --test-dir build --output-on-failure -j2 "$@"
