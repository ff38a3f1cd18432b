#!/usr/bin/env bash
# shell_incremental_backup: an incremental backup through the x-snapstore:changed meta
# context, with real clients, across a daemon restart.
#
#   origin <- 64 MiB of random data (nbdcopy); snapshot s1; full backup of s1 to a file
#   origin <- a few scattered writes and a discard (qemu-io); snapshot s2
#   snapstored restarted (changed extents come from the trees, not from a bitmap in memory)
#   scripts/incremental-backup.py copies only what differs between s2 and s1 into the file
#
# The copy must be exactly the changed bytes, and the backup file must equal s2 byte for
# byte. An unknown base snapshot must be refused with a clear message.
# Needs /usr/bin/python3 with the nbd module, nbdcopy and qemu-io; otherwise exits 77.
# Environment: SNAPSTORED, SNAPSHOTCTL (set by ctest), SNAPSTORE_SOURCE_DIR.
set -Eeuo pipefail

readonly MiB=$((1024 * 1024))
readonly PY=/usr/bin/python3

log() { echo "incremental_backup_test: $*" >&2; }
skip() { log "SKIP: $*"; exit 77; }
fail() {
  log "FAIL: $*"
  [[ -s "${daemon_log:-}" ]] && tail -n 20 "$daemon_log" >&2
  exit 1
}

SNAPSTORED="${SNAPSTORED:?SNAPSTORED is not set}"
SNAPSHOTCTL="${SNAPSHOTCTL:-$(dirname "$SNAPSTORED")/snapshotctl}"
SOURCE_DIR="${SNAPSTORE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
BACKUP="$SOURCE_DIR/scripts/incremental-backup.py"
[[ -x "$SNAPSHOTCTL" ]] || fail "no snapshotctl at $SNAPSHOTCTL"
"$PY" -c 'import nbd' 2>/dev/null || skip "$PY has no nbd module (apt-get install python3-libnbd)"
for tool in nbdcopy qemu-io cmp timeout; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/install-deps.sh)"
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/snapstore-backup.XXXXXX")"
sock="$tmp/nbd.sock" ctl="$tmp/ctl.sock" pool="$tmp/pool.snap"
daemon_log="$tmp/snapstored.log" daemon_pid=""

stop_daemon() {
  [[ -n "$daemon_pid" ]] || return 0
  kill -TERM "$daemon_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$daemon_pid" 2>/dev/null || true
  local status=0
  wait "$daemon_pid" || status=$?
  daemon_pid=""
  return "$status"
}
cleanup() {
  local status=$?
  trap - ERR
  stop_daemon || true
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'fail "line $LINENO: command failed: $BASH_COMMAND"' ERR

start_daemon() {
  "$SNAPSTORED" --pool "$pool" --pool-size $((64 * MiB)) --no-tcp --nbd-socket "$sock" \
    --control-socket "$ctl" --log-level warn >>"$daemon_log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 100); do
    [[ -S "$sock" && -S "$ctl" ]] && "$SNAPSHOTCTL" --socket "$ctl" status >/dev/null 2>&1 && return 0
    kill -0 "$daemon_pid" 2>/dev/null || fail "snapstored exited at start"
    sleep 0.1
  done
  fail "snapstored did not come up"
}
uri() { echo "nbd+unix:///$1?socket=$sock"; }
ctl() { timeout 60 "$SNAPSHOTCTL" --socket "$ctl" "$@"; }

start_daemon
head -c $((64 * MiB)) /dev/urandom >"$tmp/data"
timeout 120 nbdcopy --flush "$tmp/data" "$(uri origin)"
ctl snapshot create origin s1 >/dev/null
timeout 120 "$PY" "$BACKUP" --socket "$sock" --volume s1 --target "$tmp/backup.img" --full

# Changes after s1: 4 KiB + 64 KiB + 12 KiB of writes and a 1 MiB discard, all aligned to
# the 4 KiB data block, so exactly these bytes differ.
timeout 60 qemu-io -f raw "$(uri origin)" \
  -c "write -P 0x55 1M 4k" -c "write -P 0x66 10M 64k" -c "discard 20M 1M" \
  -c "write -P 0x77 63M 12k" -c "flush" >/dev/null
readonly changed=$((4096 + 65536 + MiB + 12288))
ctl snapshot create origin s2 >/dev/null

log "restarting snapstored: the changed extents must survive it"
stop_daemon || fail "snapstored did not exit cleanly on SIGTERM"
start_daemon

out="$(timeout 120 "$PY" "$BACKUP" --socket "$sock" --volume s2 --base s1 --target "$tmp/backup.img")"
log "$out"
[[ "$out" == *" $changed bytes copied"* ]] || fail "expected exactly $changed bytes copied: $out"
timeout 120 nbdcopy "$(uri s2)" "$tmp/s2.img"
cmp "$tmp/backup.img" "$tmp/s2.img" || fail "the incremental backup differs from s2"
cmp -s "$tmp/backup.img" "$tmp/data" && fail "the backup still equals the old data"

# Nothing changed between a snapshot and itself; an unknown base is refused clearly.
out="$(timeout 60 "$PY" "$BACKUP" --socket "$sock" --volume s2 --base s2 --target "$tmp/backup.img")"
[[ "$out" == *" 0 bytes copied"* ]] || fail "s2 against itself copied something: $out"
if err="$(timeout 60 "$PY" "$BACKUP" --socket "$sock" --volume s2 --base nope --target "$tmp/x" 2>&1)"; then
  fail "an unknown base snapshot was accepted"
fi
[[ "$err" == *"x-snapstore:changed:nope"* ]] || fail "unclear refusal of an unknown base: $err"

stop_daemon || fail "snapstored did not exit cleanly on SIGTERM"
timeout 120 "$SNAPSTORED" check "$pool" >/dev/null || fail "snapstored check found problems"
log "PASS: incremental backup copied $changed of $((64 * MiB)) bytes and equals s2"
