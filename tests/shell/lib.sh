# shellcheck shell=bash
# tests/shell/lib.sh: what the shell tests share. Sourced (not run) by tests/shell/*_test.sh
# after their own `set -Eeuo pipefail`; it is not a test itself (ctest runs *_test.sh).
#
#   logging     log, skip (exit 77), fail (exit 1, with the tails of $tmp/*.log)
#   machine     need_binaries, need_snapshotctl, need_tools, need_root, need_ext4_stack
#   processes   alive, wait_gone, reap
#   setup       lib_setup PREFIX: $tmp, $pool, $sock, $ctl, $daemon_log and the traps
#   daemon      start_daemon / try_start_daemon ARGS..., stop_daemon SECONDS, ctl ARGS...
#   the stack   one per export NAME, bottom to top:
#                 snapstored <- nbdfuse (${fuse_dir[NAME]}/nbd) <- losetup
#                   (${loop_dev[NAME]}) <- ext4 (${fs_dir[NAME]})
#               attach NAME [SIZE], mount_fs NAME; the orderly teardown (server alive)
#               unmount_fs, detach_loop, unmount_fuse, teardown NAME; crash_teardown NAME
#               (server dead); check_fsck, needs_recovery, replay_journal NAME
#   files       make_files SRC DST (files of several sizes), sums DIR, check_sums
#
# The EXIT trap (cleanup) takes down whatever a failure left behind: the test's own
# processes first (a function before_teardown, if the test defines one), then every stack
# (in order while snapstored answers, lazily otherwise), then snapstored; then it calls
# after_teardown, if defined (a non-zero return fails the test: say, a writer that was
# blocked on the stack and still does not die). On a failure it calls on_failure, if
# defined (to keep evidence). It keeps $tmp, and fails the test, if a mount or loop device
# of ours is still there; otherwise it removes $tmp.
#
# Variables a test may set: T (seconds any one ordinary step may take, default 60),
# TAIL_LINES (lines of each log that fail shows, default 25), POOL_SIZE (attach's default
# expected export size).

test_name="$(basename "$0" .sh)"
: "${T:=60}"
tmp=""
daemon_pid=""
declare -A fuse_dir=() fs_dir=() fuse_log=() fuse_pid=() loop_dev=()

# --- logging --------------------------------------------------------------------------
log() { echo "$test_name [${SECONDS}s]: $*" >&2; }
skip() { log "SKIP: $*"; exit 77; }
fail() {
  log "FAIL: $*"
  local f
  for f in "${tmp:-/nonexistent}"/*.log; do
    if [[ -s "$f" ]]; then
      log "--- $(basename "$f") (last ${TAIL_LINES:-25} lines) ---"
      tail -n "${TAIL_LINES:-25}" "$f" >&2 || true
    fi
  done
  exit 1
}

# --- what this machine must offer (skip) or the build must give (fail) -----------------
need_binaries() {  # SNAPSTORED from ctest; SNAPSHOTCTL defaults to the one beside it
  SNAPSTORED="${SNAPSTORED:-}"
  [[ -n "$SNAPSTORED" ]] || fail "SNAPSTORED is not set (path of the snapstored binary)"
  [[ -x "$SNAPSTORED" ]] || fail "SNAPSTORED=$SNAPSTORED is not an executable"
  SNAPSHOTCTL="${SNAPSHOTCTL:-$(dirname "$SNAPSTORED")/snapshotctl}"
}
need_snapshotctl() { [[ -x "$SNAPSHOTCTL" ]] || fail "no snapshotctl at $SNAPSHOTCTL"; }
need_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (scripts/install-deps.sh)"
  done
}
need_root() { [[ $(id -u) -eq 0 ]] || skip "needs root (losetup and mount)"; }
need_ext4_stack() {  # root, the tools of the stack, a usable /dev/fuse, a free loop device
  need_root
  need_tools nbdfuse nbdinfo fusermount3 losetup mkfs.ext4 fsck.ext4 dumpe2fs mount umount \
             mountpoint findmnt sha256sum timeout
  [[ -c /dev/fuse ]] || skip "/dev/fuse is missing (no FUSE in this kernel or container)"
  local fd
  { exec {fd}<>/dev/fuse; } 2>/dev/null || skip "/dev/fuse cannot be opened"
  exec {fd}>&-
  [[ -e /dev/loop-control ]] || skip "/dev/loop-control is missing (no loop device support)"
  local free_loop
  free_loop="$(losetup -f 2>/dev/null || true)"
  [[ -b "$free_loop" ]] || skip "no free loop device (losetup -f: '${free_loop:-}')"
}

# --- processes ------------------------------------------------------------------------
alive() {  # alive PID: running and not a zombie
  [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null || return 1
  [[ "$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" != Z ]]
}
wait_gone() {  # wait_gone PID SECONDS: 0 once PID is gone, 1 if still there
  local i
  for ((i = 0; i < $2 * 10; i++)); do alive "$1" || return 0; sleep 0.1; done
  ! alive "$1"
}
reap() { wait "$1" 2>/dev/null || true; }

# --- setup: a private directory, sockets and the traps ---------------------------------
lib_setup() {  # lib_setup PREFIX: $tmp is a new ${TMPDIR:-/tmp}/snapstore-PREFIX.XXXXXX
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/snapstore-$1.XXXXXX")"
  pool="$tmp/pool.snap"
  sock="$tmp/nbd.sock"
  ctl="$tmp/ctl.sock"
  daemon_log="$tmp/snapstored.log"
  trap cleanup EXIT
  trap "exit 130" INT
  trap "exit 143" TERM
  trap 'fail "line $LINENO: command failed: $BASH_COMMAND"' ERR
}
nbd_uri() { echo "nbd+unix:///$1?socket=$sock"; }
our_mounts() { findmnt -rn -o TARGET | grep -F "$tmp/" || true; }
our_loops() { losetup -l -n -O NAME,BACK-FILE 2>/dev/null | grep -F "$tmp/" || true; }
is_mounted() { findmnt -rn -o TARGET | grep -qxF "$1"; }  # also a FUSE mount whose server died

# --- the daemon ------------------------------------------------------------------------
# try_start_daemon ARGS...: snapstored on $pool with our sockets (ARGS added), waited for
# (bounded) until it serves origin; 1 if it exited instead.
try_start_daemon() {
  echo "=== start $(date +%T) ===" >>"$daemon_log"
  "$SNAPSTORED" --pool "$pool" --nbd-socket "$sock" --control-socket "$ctl" "$@" \
    >>"$daemon_log" 2>&1 &
  daemon_pid=$!
  local i
  for ((i = 0; i < 150; i++)); do
    if ! alive "$daemon_pid"; then
      reap "$daemon_pid"
      daemon_pid=""
      return 1
    fi
    if timeout 5 nbdinfo --size "$(nbd_uri origin)" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "snapstored did not answer on $sock within 15 s"
}
start_daemon() { try_start_daemon "$@" || fail "snapstored exited at start"; }
stop_daemon() {  # stop_daemon SECONDS: SIGTERM; it must exit 0 within SECONDS
  local seconds=$1 status=0
  kill -TERM "$daemon_pid"
  wait_gone "$daemon_pid" "$seconds" || fail "snapstored still running $seconds s after SIGTERM"
  wait "$daemon_pid" || status=$?
  daemon_pid=""
  [[ $status -eq 0 ]] || fail "snapstored exited with status $status after SIGTERM, expected 0"
}
ctl() { timeout "$T" "$SNAPSHOTCTL" --socket "$ctl" "$@"; }
check_pool() {  # check_pool WHAT: `snapstored check` on the stopped daemon's pool is clean
  local status=0
  timeout 120 "$SNAPSTORED" check "$pool" >"$tmp/check.out" 2>&1 || status=$?
  if [[ $status -ne 0 ]]; then
    head -n 100 "$tmp/check.out" >&2
    fail "snapstored check $pool: exit $status ($1)"
  fi
  log "snapstored check: clean ($1): $(grep -m1 '^generation' "$tmp/check.out" || true)"
  if grep -q '^intent log' "$tmp/check.out"; then log "  $(grep -m1 '^intent log' "$tmp/check.out")"; fi
}
# After the daemon died: besides clean, `check` may report problems that a crash in the middle
# of a commit explains (a superblock copy or an intent log record not yet written), which
# the next writable open repairs; any other problem fails.
check_pool_after_crash() {  # check_pool_after_crash WHAT
  local status=0
  timeout 120 "$SNAPSTORED" check --json "$pool" >"$tmp/check.out" 2>&1 || status=$?
  [[ $status -eq 0 || $status -eq 1 ]] || fail "snapstored check $pool: exit $status ($1)"
  local verdict
  verdict=$(/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
for p in r["problems"]: print("problem: " + p)
for p in r["crash_explainable_problems"]: print("crash: " + p)
' "$tmp/check.out") || fail "snapstored check $pool: unreadable report ($1)"
  if grep -q '^problem:' <<<"$verdict"; then
    echo "$verdict" >&2
    fail "snapstored check $pool: problems a crash does not explain ($1)"
  fi
  log "snapstored check: no damage ($1)${verdict:+; $(grep -c '^crash:' <<<"$verdict") copies a crash left behind}"
}

# --- the stack: nbdfuse, loop device, ext4 --------------------------------------------
# attach NAME [SIZE]: nbdfuse serves export NAME as the file ${fuse_dir[NAME]}/nbd (which
# must be SIZE bytes, default $POOL_SIZE), and a loop device ${loop_dev[NAME]} on that file.
attach() {
  local name=$1 size=${2:-$POOL_SIZE} dir="$tmp/$1.fuse" pid_file="$tmp/$1.nbdfuse.pid"
  fuse_dir[$name]=$dir fs_dir[$name]="$tmp/$name.fs" fuse_log[$name]="$tmp/nbdfuse-$name.log"
  mkdir -p "$dir" "${fs_dir[$name]}"
  rm -f "$pid_file"
  echo "=== start $(date +%T) ===" >>"${fuse_log[$name]}"
  nbdfuse -P "$pid_file" "$dir" "$(nbd_uri "$name")" >>"${fuse_log[$name]}" 2>&1 &
  fuse_pid[$name]=$!
  local i ready=0 actual
  for ((i = 0; i < 100; i++)); do
    if ! alive "${fuse_pid[$name]}"; then
      reap "${fuse_pid[$name]}"
      fuse_pid[$name]=""
      fail "nbdfuse ($name) exited before it was ready"
    fi
    if [[ -s "$pid_file" ]] && mountpoint -q "$dir"; then ready=1; break; fi
    sleep 0.1
  done
  ((ready)) || fail "nbdfuse did not mount $dir within 10 s"
  actual="$(stat -c %s "$dir/nbd")"
  [[ "$actual" == "$size" ]] || fail "$dir/nbd is $actual bytes, expected $size"
  loop_dev[$name]="$(timeout "$T" losetup -f --show --direct-io=off "$dir/nbd")"
  [[ -b "${loop_dev[$name]}" ]] || fail "losetup gave '${loop_dev[$name]}', not a block device"
  log "$name: nbdfuse file $dir/nbd on ${loop_dev[$name]}"
}
mount_fs() { timeout "$T" mount -t ext4 "${loop_dev[$1]}" "${fs_dir[$1]}"; }

# The orderly teardown (the server is alive): each step bounded and safe to call twice.
unmount_fs() {
  local dir=${fs_dir[$1]:-}
  [[ -n "$dir" ]] && is_mounted "$dir" || return 0
  timeout "$T" umount "$dir" && return 0
  log "umount $dir failed; detaching it lazily"
  timeout -s KILL 10 umount -l "$dir"
}
detach_loop() {
  [[ -n "${loop_dev[$1]:-}" ]] || return 0
  timeout -s KILL "$T" losetup -d "${loop_dev[$1]}"
  loop_dev[$1]=""
}
unmount_fuse() {
  local dir=${fuse_dir[$1]:-}
  if [[ -n "$dir" ]] && is_mounted "$dir"; then
    # The loop device lets go of the file asynchronously: retry a busy unmount a little.
    local tries=0
    until timeout -s KILL 10 fusermount3 -u "$dir" 2>/dev/null; do
      if ((++tries >= 50)); then
        log "fusermount3 -u $dir still busy; detaching it lazily"
        timeout -s KILL 10 fusermount3 -u -z "$dir" || true
        break
      fi
      sleep 0.1
    done
  fi
  stop_fuse_process "$1"
}
stop_fuse_process() {  # nbdfuse ends once unmounted; SIGTERM, then SIGKILL if it does not
  local pid=${fuse_pid[$1]:-}
  [[ -n "$pid" ]] || return 0
  if ! wait_gone "$pid" 5; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 5; then
      log "nbdfuse (pid $pid) ignores SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      wait_gone "$pid" 10 || log "nbdfuse (pid $pid) survives SIGKILL"
    fi
  fi
  reap "$pid"
  fuse_pid[$1]=""
}
teardown() { unmount_fs "$1"; detach_loop "$1"; unmount_fuse "$1"; }

# Teardown with a dead (or disconnecting) server: nothing below the filesystem answers
# any more, so every step is bounded and lazy. Only when nbdfuse is gone does the kernel
# fail the last requests: wait_released waits for the mounts and loop devices to go.
crash_teardown() {
  local name=$1
  if [[ -n "${fs_dir[$name]:-}" ]] && is_mounted "${fs_dir[$name]}"; then
    timeout -s KILL 10 umount -l "${fs_dir[$name]}" || log "umount -l ${fs_dir[$name]} failed"
  fi
  if [[ -n "${loop_dev[$name]:-}" ]]; then
    timeout -s KILL 10 losetup -d "${loop_dev[$name]}" ||
      log "losetup -d ${loop_dev[$name]} failed"
    loop_dev[$name]=""
  fi
  if [[ -n "${fuse_dir[$name]:-}" ]] && is_mounted "${fuse_dir[$name]}"; then
    timeout -s KILL 10 fusermount3 -u -z "${fuse_dir[$name]}" ||
      log "fusermount3 -u -z ${fuse_dir[$name]} failed"
  fi
  if [[ -n "${fuse_pid[$name]:-}" ]]; then
    kill -TERM "${fuse_pid[$name]}" 2>/dev/null || true
    stop_fuse_process "$name"
  fi
}
wait_released() {  # wait_released SECONDS: until no mount or loop device of ours is left
  local i
  for ((i = 0; i < $1 * 10; i++)); do
    [[ -z "$(our_mounts)" && -z "$(our_loops)" ]] && return 0
    sleep 0.1
  done
  return 1
}

check_fsck() {  # check_fsck NAME WHAT: fsck.ext4 -fn on NAME's loop device finds nothing
  local out status=0
  out="$(timeout "$T" fsck.ext4 -fn "${loop_dev[$1]}" 2>&1)" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "$out" >&2
    fail "fsck.ext4 -fn ${loop_dev[$1]} ($1): exit $status ($2)"
  fi
  log "fsck.ext4 -fn $1: clean ($2)"
}
needs_recovery() {
  timeout "$T" dumpe2fs -h "${loop_dev[$1]}" 2>/dev/null |
    grep -q '^Filesystem features:.*needs_recovery'
}
replay_journal() {  # replay_journal NAME: if ext4's journal needs recovery, mount + umount
  needs_recovery "$1" || return 0
  log "$1: ext4 journal needs recovery: mount + umount to replay it"
  mount_fs "$1"
  timeout "$T" umount "${fs_dir[$1]}"
}

sums() {  # sums DIR: "sha256  ./path" of every file below DIR, sorted by path
  (cd "$1" && find . -type f -print0 | sort -z | xargs -0r sha256sum)
}
check_sums() {  # check_sums DIR MANIFEST WHAT: every file MANIFEST names has its sha256
  local out status=0
  out="$(cd "$1" && timeout 120 sha256sum --quiet --strict -c "$2" 2>&1)" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "$out" | head -n 40 >&2
    fail "$(grep -c ': FAILED' <<<"$out" || true) of $(wc -l <"$2") files lost or changed ($3)"
  fi
}
# make_files SRC DST: files of several sizes (empty, one byte, either side of a 4 KiB block,
# odd, 24 MiB, nested, 100 small: 107 in all) of random bytes, made in SRC (outside the
# filesystem under test, to check against) and copied into DST.
make_files() {
  local src=$1 dst=$2 i mib=$((1024 * 1024))
  local files=(empty 0 one-byte 1 block-minus-one 4095 block-plus-one 4097 odd $((mib + 13))
               big $((24 * mib + 511)) dir/sub/nested $((3 * mib)))
  for ((i = 1; i <= 100; i++)); do files+=("dir/small-$i" $((i * 97))); done
  mkdir -p "$src/dir/sub" "$dst/dir/sub"
  for ((i = 0; i < ${#files[@]}; i += 2)); do
    head -c "${files[i + 1]}" /dev/urandom >"$src/${files[i]}"
    timeout "$T" cp "$src/${files[i]}" "$dst/${files[i]}"
  done
}

# --- the EXIT trap ---------------------------------------------------------------------
cleanup() {
  local status=$? name
  trap - ERR
  set +e
  if declare -F before_teardown >/dev/null; then before_teardown; fi
  if [[ -n "$daemon_pid" ]] && alive "$daemon_pid"; then
    # The server still answers: take each stack down in order (lazily if a step is stuck).
    for name in "${!fuse_dir[@]}"; do teardown "$name"; done
  fi
  for name in "${!fuse_dir[@]}"; do crash_teardown "$name"; done  # whatever is left
  if ((${#fuse_dir[@]})); then wait_released 30; fi
  if [[ -n "$daemon_pid" ]]; then
    kill -TERM "$daemon_pid" 2>/dev/null
    wait_gone "$daemon_pid" 20 || kill -KILL "$daemon_pid" 2>/dev/null
    wait_gone "$daemon_pid" 10
    reap "$daemon_pid"
  fi
  if declare -F after_teardown >/dev/null && ! after_teardown && [[ $status -eq 0 ]]; then
    status=1
  fi
  case $status in 0 | 77 | 130 | 143) ;; *) declare -F on_failure >/dev/null && on_failure ;; esac
  if [[ -n "$tmp" ]]; then
    local left_mounts="" left_loops=""
    if ((${#fuse_dir[@]})); then left_mounts="$(our_mounts)" left_loops="$(our_loops)"; fi
    if [[ -n "$left_mounts" || -n "$left_loops" ]]; then
      log "left behind: mounts [${left_mounts//$'\n'/ }] loops [${left_loops//$'\n'/ }];" \
          "keeping $tmp"
      [[ $status -eq 0 ]] && status=1
    else
      rm -rf "$tmp"
    fi
  fi
  exit "$status"
}
