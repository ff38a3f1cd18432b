#!/usr/bin/env bash
# shell_ext4_nbdfuse: a real filesystem on a served disk. snapstored serves a 256 MiB pool
# on a private Unix socket; nbdfuse turns the export into a file, a loop device turns the
# file into a block device, and ext4 lives on that:
#
#   snapstored <- nbdfuse (MNT/nbd) <- losetup (/dev/loopN) <- mkfs.ext4, mount (FS)
#
# Writes files of several sizes, unmounts, runs fsck.ext4 -fn (must be clean), mounts again
# and checks every file's sha256, then takes it all down in order and checks that
# snapstored exits 0 on SIGTERM.
#
# Needs root, /dev/fuse and a free loop device; otherwise exits 77 (skipped).
# Environment: SNAPSTORED (the binary; set by ctest).
set -Eeuo pipefail

readonly MiB=$((1024 * 1024))
readonly POOL_SIZE=$((256 * MiB))
readonly T=120  # seconds any one step may take

log() { echo "ext4_nbdfuse_test: $*" >&2; }
skip() { log "SKIP: $*"; exit 77; }
fail() {
  log "FAIL: $*"
  local f
  for f in "${daemon_log:-}" "${fuse_log:-}"; do
    if [[ -n "$f" && -s "$f" ]]; then
      log "--- $(basename "$f") (last 20 lines) ---"
      tail -n 20 "$f" >&2 || true
    fi
  done
  exit 1
}

SNAPSTORED="${SNAPSTORED:-}"
[[ -n "$SNAPSTORED" ]] || fail "SNAPSTORED is not set (path of the snapstored binary)"
[[ -x "$SNAPSTORED" ]] || fail "SNAPSTORED=$SNAPSTORED is not an executable"

# --- what this machine must offer, or the test is skipped -----------------------------
[[ $(id -u) -eq 0 ]] || skip "needs root (losetup and mount)"
for tool in nbdfuse nbdinfo fusermount3 losetup mkfs.ext4 fsck.ext4 mount umount \
            mountpoint sha256sum timeout head; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (scripts/install-deps.sh)"
done
[[ -c /dev/fuse ]] || skip "/dev/fuse is missing (no FUSE in this kernel or container)"
{ exec {fuse_fd}<>/dev/fuse; } 2>/dev/null || skip "/dev/fuse cannot be opened"
exec {fuse_fd}>&-
[[ -e /dev/loop-control ]] || skip "/dev/loop-control is missing (no loop device support)"
free_loop="$(losetup -f 2>/dev/null || true)"
[[ -b "$free_loop" ]] || skip "no free loop device (losetup -f: '${free_loop:-}')"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/snapstore-ext4.XXXXXX")"
pool="$tmp/pool.snap"
sock="$tmp/nbd.sock"
ctl="$tmp/ctl.sock"
fuse_dir="$tmp/fuse"   # nbdfuse mounts here; the disk is $fuse_dir/nbd
fs_dir="$tmp/fs"       # ext4 mounts here
daemon_log="$tmp/snapstored.log"
fuse_log="$tmp/nbdfuse.log"
uri="nbd+unix:///origin?socket=$sock"
mkdir "$fuse_dir" "$fs_dir" "$tmp/data"
daemon_pid="" fuse_pid="" loop_dev=""

# The teardown steps, each safe to call twice; cleanup() runs them in order (filesystem,
# loop device, FUSE mount, daemon) whatever state a failure left behind.
unmount_fs() {
  mountpoint -q "$fs_dir" || return 0
  timeout "$T" umount "$fs_dir" && return 0
  log "umount $fs_dir failed; detaching it lazily"
  umount -l "$fs_dir"
}
detach_loop() {
  [[ -n "$loop_dev" ]] || return 0
  timeout "$T" losetup -d "$loop_dev"
  loop_dev=""
}
unmount_fuse() {
  if mountpoint -q "$fuse_dir"; then
    # The loop device lets go of the file asynchronously: retry a busy unmount a little.
    local tries=0
    until fusermount3 -u "$fuse_dir" 2>/dev/null; do
      if ((++tries >= 50)); then
        log "fusermount3 -u $fuse_dir still busy; detaching it lazily"
        fusermount3 -uz "$fuse_dir"
        break
      fi
      sleep 0.1
    done
  fi
  if [[ -n "$fuse_pid" ]]; then
    for _ in $(seq 100); do kill -0 "$fuse_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$fuse_pid" 2>/dev/null; then
      log "nbdfuse (pid $fuse_pid) still running after unmount; killing it"
      kill -KILL "$fuse_pid" 2>/dev/null || true
    fi
    wait "$fuse_pid" 2>/dev/null || true
    fuse_pid=""
  fi
}

cleanup() {
  local status=$?
  trap - ERR
  set +e
  unmount_fs
  detach_loop
  unmount_fuse
  if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"
    for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
  fi
  if mountpoint -q "$fs_dir" || mountpoint -q "$fuse_dir"; then
    log "something is still mounted under $tmp; leaving it in place"
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap "exit 130" INT
trap "exit 143" TERM
trap 'fail "line $LINENO: command failed: $BASH_COMMAND"' ERR

# --- 1. snapstored on a private Unix socket -------------------------------------------
log "starting snapstored on a fresh $((POOL_SIZE / MiB)) MiB pool in $tmp"
"$SNAPSTORED" --pool "$pool" --pool-size "$POOL_SIZE" --no-tcp \
  --nbd-socket "$sock" --control-socket "$ctl" >"$daemon_log" 2>&1 &
daemon_pid=$!
ready=0
for _ in $(seq 100); do
  kill -0 "$daemon_pid" 2>/dev/null || fail "snapstored exited at start"
  if timeout 5 nbdinfo --size "$uri" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
((ready)) || fail "snapstored did not answer on $sock within 10 s"

# --- 2. nbdfuse: the export as the file $fuse_dir/nbd ----------------------------------
attach_fuse() {
  rm -f "$tmp/nbdfuse.pid"
  nbdfuse -P "$tmp/nbdfuse.pid" "$fuse_dir" "$uri" >>"$fuse_log" 2>&1 &
  fuse_pid=$!
  local ready=0 size
  for _ in $(seq 100); do
    kill -0 "$fuse_pid" 2>/dev/null || { fuse_pid=""; fail "nbdfuse exited before it was ready"; }
    if [[ -s "$tmp/nbdfuse.pid" ]] && mountpoint -q "$fuse_dir"; then ready=1; break; fi
    sleep 0.1
  done
  ((ready)) || fail "nbdfuse did not mount $fuse_dir within 10 s"
  size="$(stat -c %s "$fuse_dir/nbd")"
  [[ "$size" == "$POOL_SIZE" ]] || fail "$fuse_dir/nbd is $size bytes, expected $POOL_SIZE"
  loop_dev="$(timeout "$T" losetup -f --show --direct-io=off "$fuse_dir/nbd")"
  [[ -b "$loop_dev" ]] || fail "losetup gave '$loop_dev', not a block device"
  log "nbdfuse file $fuse_dir/nbd on $loop_dev"
}
check_fsck() {
  local out
  out="$(timeout "$T" fsck.ext4 -fn "$loop_dev" 2>&1)" ||
    { echo "$out" >&2; fail "fsck.ext4 -fn $loop_dev reported problems"; }
}
attach_fuse

# --- 3. mkfs.ext4, mount ---------------------------------------------------------------
timeout "$T" mkfs.ext4 -q -F "$loop_dev"
timeout "$T" mount -t ext4 "$loop_dev" "$fs_dir"

# --- 4. files of several sizes; their sha256 kept outside the filesystem ---------------
make_file() {  # make_file NAME BYTES: random content, first in $tmp/data, then copied in
  head -c "$2" /dev/urandom >"$tmp/data/$1"
  timeout "$T" cp "$tmp/data/$1" "$fs_dir/$1"
}
mkdir -p "$fs_dir/dir/sub" "$tmp/data/dir/sub"
make_file empty 0
make_file one-byte 1
make_file block-minus-one 4095
make_file block-plus-one 4097
make_file odd $((MiB + 13))
make_file big $((24 * MiB + 511))
make_file dir/sub/nested $((3 * MiB))
for i in $(seq 1 100); do make_file "dir/small-$i" $((i * 97)); done
(cd "$fs_dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$tmp/sums"
[[ $(wc -l <"$tmp/sums") -eq 107 ]] || fail "expected 107 files, listed $(wc -l <"$tmp/sums")"
(cd "$tmp/data" && sha256sum --quiet -c "$tmp/sums") || fail "files differ from their sources"
timeout "$T" sync
timeout "$T" umount "$fs_dir"

# --- 5. fsck must be clean; the files must read back the same after a fresh mount ------
check_fsck
# Detach everything down to snapstored and attach again, so that nothing can come from
# a page cache of the first mount: every byte is read from snapstored.
detach_loop
unmount_fuse
attach_fuse
timeout "$T" mount -t ext4 "$loop_dev" "$fs_dir"
(cd "$fs_dir" && timeout "$T" sha256sum --quiet -c "$tmp/sums") ||
  fail "files read back after remount differ"
timeout "$T" umount "$fs_dir"
check_fsck
log "ext4 on nbdfuse: fsck clean, $(wc -l <"$tmp/sums") files verified after remount"

# --- 6. take it down in order ----------------------------------------------------------
detach_loop
unmount_fuse
mountpoint -q "$fuse_dir" && fail "$fuse_dir is still mounted"
kill -TERM "$daemon_pid"
for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$daemon_pid" 2>/dev/null && fail "snapstored still running 10 s after SIGTERM"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=""
[[ $status -eq 0 ]] || fail "snapstored exited with status $status after SIGTERM, expected 0"
log "PASS"
