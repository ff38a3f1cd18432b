#!/usr/bin/env bash
# Install what is missing, build, and serve a pool in the foreground.
#   pool:   ${SNAPSTORE_POOL:-/var/lib/snapstore/pool.snap}, created sparse at
#           ${SNAPSTORE_POOL_SIZE:-16G} on first start
#   NBD:    127.0.0.1:10809 and <pool>.nbd.sock; control socket <pool>.ctl.sock
# Extra arguments go to snapstored, e.g. scripts/run.sh --log-level debug
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pool="${SNAPSTORE_POOL:-/var/lib/snapstore/pool.snap}"
pool_size="${SNAPSTORE_POOL_SIZE:-16G}"
build_dir="${BUILD_DIR:-build}"
case "$build_dir" in
  /*) ;;
  *) build_dir="$root/$build_dir" ;;
esac

"$root/scripts/install-deps.sh"
BUILD_DIR="$build_dir" TARGETS="snapstored snapshotctl" "$root/scripts/build.sh"

mkdir -p "$(dirname "$pool")"
echo "run: serving $pool; connect with: nbdinfo nbd://127.0.0.1:10809/origin" \
     "(or nbd+unix:///origin?socket=$pool.nbd.sock)" >&2
echo "run: snapshots with: $build_dir/src/snapshotctl --socket $pool.ctl.sock snapshot create origin NAME" >&2
# TCP 127.0.0.1:10809 and the sockets beside the pool are snapstored's defaults, so
# extra arguments (--no-tcp, --listen, --nbd-socket, ...) can still change them.
exec "$build_dir/src/snapstored" --pool "$pool" --pool-size "$pool_size" "$@"
