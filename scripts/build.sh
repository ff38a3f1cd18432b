#!/usr/bin/env bash
# Configure and build snapstore with Ninja into ${BUILD_DIR:-build} (RelWithDebInfo;
# a relative BUILD_DIR is taken from the repository root).
# TARGETS (space-separated ninja targets, default: everything) limits what is built.
# Extra arguments go to cmake's configure step, e.g.:
#   scripts/build.sh -DSNAPSTORE_SANITIZE=ON
#   BUILD_DIR=build-asan scripts/build.sh -DSNAPSTORE_SANITIZE=ON
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-build}"
case "$build_dir" in
  /*) ;;
  *) build_dir="$root/$build_dir" ;;
esac

# ccache, when this machine has it, makes rebuilds in several checkouts cheap; CI has none.
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi

cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" "$@"
# shellcheck disable=SC2086  # TARGETS is a list of words
ninja -C "$build_dir" ${TARGETS:-}
