#!/usr/bin/env bash
# shell_kill_ext4: a power cut under a real filesystem. snapstored serves a 256 MiB pool;
# nbdfuse, a loop device and ext4 sit on top of it, as in shell_ext4_nbdfuse:
#
#   snapstored <- nbdfuse (MNT/nbd) <- losetup (/dev/loopN) <- ext4 (FS)
#
# Each round: a writer creates files of 4 KiB .. 4 MiB of random bytes; after each file it
# fsyncs the file, then its directory, and only then appends the file's sha256 to a
# manifest kept outside the filesystem. Once 20+ files are in the manifest (and 3 s or
# 24 MiB of them have gone by), snapstored is killed with SIGKILL while the writer is
# still going. The stack is then taken down with a
# dead server under it (the writer gets I/O errors: killed; ext4 unmounted lazily; loop
# device detached; nbdfuse unmounted lazily and killed) and nothing may stay mounted or
# attached. Then:
#   - `snapstored check POOL` must be clean;
#   - snapstored restarts on the same pool, nbdfuse + loop again; if ext4's journal needs
#     recovery, a mount + umount replays it; then `fsck.ext4 -fn` must be clean;
#   - mounted again, every file in the manifest must be there with its sha256 (files not
#     yet in the manifest may be missing or partial).
# Three rounds on the same pool (each writes more files, then kills again) while time
# allows; from the third on, the files of round N-2 are deleted and trimmed first to make
# room. At the end: clean umount, fsck clean, SIGTERM -> exit 0, snapstored check clean.
#
# On failure the pool, the logs and the manifest are kept in /var/tmp/kill-ext4-failure-*.
# Needs root, /dev/fuse, a free loop device and the tools below; otherwise exits 77.
# Environment: SNAPSTORED (the binary; set by ctest); KILL_EXT4_ROUNDS (default 3; more
# rounds run only while the first ROUND_BUDGET seconds last, see below).
set -Eeuo pipefail

readonly MiB=$((1024 * 1024))
readonly POOL_SIZE=$((256 * MiB))
readonly T=60                  # seconds any one ordinary step may take
readonly ROUNDS="${KILL_EXT4_ROUNDS:-3}"
readonly MIN_FILES=20          # fsync'd files in the manifest before a kill (per round)
readonly MIN_WRITE_SECONDS=3   # and this long of writing, or ROUND_BYTES written in files
readonly ROUND_BYTES=$((24 * MiB))  # (the disk is small and fast; rounds must fit on it)
readonly WRITER_CAP=$((64 * MiB))   # bytes of new files per round at most (see the writer)
readonly WRITE_LIMIT=45        # seconds the writer may take to reach MIN_FILES
readonly ROUND_BUDGET="${KILL_EXT4_BUDGET:-55}"  # no new round after this many seconds
readonly PY=/usr/bin/python3   # the system python (not a pyenv shim)

log() { echo "kill_ext4_test [${SECONDS}s]: $*" >&2; }
skip() { echo "kill_ext4_test: SKIP: $*" >&2; exit 77; }
fail() {
  log "FAIL: $*"
  local f
  for f in "${daemon_log:-}" "${fuse_log:-}" "${writer_log:-}"; do
    if [[ -n "$f" && -s "$f" ]]; then
      log "--- $(basename "$f") (last 25 lines) ---"
      tail -n 25 "$f" >&2 || true
    fi
  done
  exit 1
}

SNAPSTORED="${SNAPSTORED:-}"
[[ -n "$SNAPSTORED" ]] || fail "SNAPSTORED is not set (path of the snapstored binary)"
[[ -x "$SNAPSTORED" ]] || fail "SNAPSTORED=$SNAPSTORED is not an executable"

# --- what this machine must offer, or the test is skipped -----------------------------
[[ $(id -u) -eq 0 ]] || skip "needs root (losetup and mount)"
for tool in nbdfuse nbdinfo fusermount3 losetup mkfs.ext4 fsck.ext4 dumpe2fs mount umount \
            mountpoint findmnt fstrim sha256sum timeout; do
  command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed (scripts/install-deps.sh)"
done
[[ -x "$PY" ]] || skip "$PY is missing (the writer is a python3 script)"
[[ -c /dev/fuse ]] || skip "/dev/fuse is missing (no FUSE in this kernel or container)"
{ exec {fuse_fd}<>/dev/fuse; } 2>/dev/null || skip "/dev/fuse cannot be opened"
exec {fuse_fd}>&-
[[ -e /dev/loop-control ]] || skip "/dev/loop-control is missing (no loop device support)"
free_loop="$(losetup -f 2>/dev/null || true)"
[[ -b "$free_loop" ]] || skip "no free loop device (losetup -f: '${free_loop:-}')"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/snapstore-kill-ext4.XXXXXX")"
pool="$tmp/pool.snap"
sock="$tmp/nbd.sock"
ctl="$tmp/ctl.sock"
fuse_dir="$tmp/fuse"   # nbdfuse mounts here; the disk is $fuse_dir/nbd
fs_dir="$tmp/fs"       # ext4 mounts here
daemon_log="$tmp/snapstored.log"
fuse_log="$tmp/nbdfuse.log"
writer_log="$tmp/writer.log"
check_log="$tmp/check.log"
manifest="$tmp/manifest.sha256"   # "sha256  path" lines, only for fsync'd files
uri="nbd+unix:///origin?socket=$sock"
mkdir "$fuse_dir" "$fs_dir"
: >"$manifest"
daemon_pid="" fuse_pid="" loop_dev="" writer_pid=""

# The writer: new files of random size and content until it is killed (or gets an error).
# A file's line goes into the manifest only after fsync(file) and fsync(directory). Past
# CAP bytes of files it only rewrites one scratch file (not in the manifest), so that I/O
# stays in flight without filling the disk if the kill comes late.
readonly WRITER_PY='
import hashlib, math, os, random, sys
fs_dir, sub, manifest = sys.argv[1], sys.argv[2], sys.argv[3]
seed, cap = int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
def write_all(fd, data):
    view, done = memoryview(data), 0
    while done < len(data):
        done += os.write(fd, view[done:done + (1 << 20)])
d = os.path.join(fs_dir, sub)
os.mkdir(d)
fsync_dir(d)
fsync_dir(fs_dir)
out = os.open(manifest, os.O_WRONLY | os.O_APPEND)
with open("/dev/urandom", "rb", buffering=0) as urandom:
    def random_bytes(size):
        data = bytearray()
        while len(data) < size:
            data += urandom.read(size - len(data))
        return data
    i, total = 0, 0
    while total < cap:
        i += 1
        # log-uniform 4 KiB .. 4 MiB, mostly not block-aligned
        size = int(math.exp(rng.uniform(math.log(4096), math.log(4 << 20))))
        data = random_bytes(size)
        name = "f%04d-%d" % (i, size)
        fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(d)
        line = "%s  %s/%s\n" % (hashlib.sha256(data).hexdigest(), sub, name)
        os.write(out, line.encode())
        total += size
    print("%s: %d bytes in %d files; rewriting a scratch file from now on" % (sub, total, i),
          file=sys.stderr, flush=True)
    fd = os.open(os.path.join(d, "scratch"), os.O_WRONLY | os.O_CREAT, 0o644)
    while True:
        os.lseek(fd, 0, os.SEEK_SET)
        write_all(fd, random_bytes(4 << 20))
        os.fsync(fd)
'

# --- small helpers --------------------------------------------------------------------
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
our_mounts() { findmnt -rn -o TARGET | grep -F "$tmp/" || true; }
our_loops() { losetup -l -n -O NAME,BACK-FILE 2>/dev/null | grep -F "$tmp/" || true; }
manifest_lines() { wc -l <"$manifest"; }
round_bytes() {  # round_bytes N: bytes in round N's fsync'd files (sizes are in the names)
  awk -v r="round-$1/" 'index($2, r) == 1 { n = split($2, a, "-"); s += a[n] } END { print s + 0 }' \
    "$manifest"
}

# --- the stack, bottom to top ---------------------------------------------------------
start_daemon() {
  echo "=== start $(date +%T) ===" >>"$daemon_log"
  "$SNAPSTORED" --pool "$pool" --pool-size "$POOL_SIZE" --no-tcp --log-level warn \
    --nbd-socket "$sock" --control-socket "$ctl" >>"$daemon_log" 2>&1 &
  daemon_pid=$!
  local i
  for ((i = 0; i < 150; i++)); do
    alive "$daemon_pid" || { reap "$daemon_pid"; daemon_pid=""; fail "snapstored exited at start"; }
    if timeout 5 nbdinfo --size "$uri" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "snapstored did not answer on $sock within 15 s"
}
attach() {  # nbdfuse: the export as the file $fuse_dir/nbd; a loop device on that file
  rm -f "$tmp/nbdfuse.pid"
  echo "=== start $(date +%T) ===" >>"$fuse_log"
  nbdfuse -P "$tmp/nbdfuse.pid" "$fuse_dir" "$uri" >>"$fuse_log" 2>&1 &
  fuse_pid=$!
  local i ready=0 size
  for ((i = 0; i < 100; i++)); do
    alive "$fuse_pid" || { reap "$fuse_pid"; fuse_pid=""; fail "nbdfuse exited before it was ready"; }
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
mount_fs() { timeout "$T" mount -t ext4 "$loop_dev" "$fs_dir"; }

# The orderly teardown (the server is alive): each step safe to call twice.
unmount_fs() {
  mountpoint -q "$fs_dir" || return 0
  timeout "$T" umount "$fs_dir" && return 0
  log "umount $fs_dir failed; detaching it lazily"
  timeout -s KILL 10 umount -l "$fs_dir"
}
detach_loop() {
  [[ -n "$loop_dev" ]] || return 0
  timeout -s KILL "$T" losetup -d "$loop_dev"
  loop_dev=""
}
unmount_fuse() {
  if mountpoint -q "$fuse_dir"; then
    # The loop device lets go of the file asynchronously: retry a busy unmount a little.
    local tries=0
    until timeout -s KILL 10 fusermount3 -u "$fuse_dir" 2>/dev/null; do
      if ((++tries >= 50)); then
        log "fusermount3 -u $fuse_dir still busy; detaching it lazily"
        timeout -s KILL 10 fusermount3 -u -z "$fuse_dir" || true
        break
      fi
      sleep 0.1
    done
  fi
  stop_fuse_process
}
stop_fuse_process() {
  [[ -n "$fuse_pid" ]] || return 0
  if ! wait_gone "$fuse_pid" 5; then
    kill -TERM "$fuse_pid" 2>/dev/null || true
    if ! wait_gone "$fuse_pid" 5; then
      log "nbdfuse (pid $fuse_pid) ignores SIGTERM; killing it"
      kill -KILL "$fuse_pid" 2>/dev/null || true
      wait_gone "$fuse_pid" 10 || log "nbdfuse (pid $fuse_pid) survives SIGKILL"
    fi
  fi
  reap "$fuse_pid"
  fuse_pid=""
}
stop_daemon() {  # SIGTERM; must exit 0
  kill -TERM "$daemon_pid"
  wait_gone "$daemon_pid" 20 || fail "snapstored still running 20 s after SIGTERM"
  local status=0
  wait "$daemon_pid" || status=$?
  daemon_pid=""
  [[ $status -eq 0 ]] || fail "snapstored exited with status $status after SIGTERM, expected 0"
}
stop_writer() {  # SIGKILL; a writer blocked on I/O may only die once the stack is gone
  [[ -n "$writer_pid" ]] || return 0
  kill -KILL "$writer_pid" 2>/dev/null || true
  wait_gone "$writer_pid" "${1:-5}" || return 1
  reap "$writer_pid"
  writer_pid=""
}

# Teardown with a dead server: nothing below the filesystem answers any more. Every step
# is bounded and lazy; only when nbdfuse is gone does the kernel fail the last requests,
# so the writer and the loop device are waited for again at the end.
crash_teardown() {
  stop_writer 5 || log "writer (pid $writer_pid) still blocked 5 s after SIGKILL"
  if mountpoint -q "$fs_dir"; then timeout -s KILL 10 umount -l "$fs_dir" ||
    log "umount -l $fs_dir failed"; fi
  if [[ -n "$loop_dev" ]]; then
    timeout -s KILL 10 losetup -d "$loop_dev" || log "losetup -d $loop_dev failed"
    loop_dev=""
  fi
  if mountpoint -q "$fuse_dir" || findmnt -rn -o TARGET | grep -qxF "$fuse_dir"; then
    timeout -s KILL 10 fusermount3 -u -z "$fuse_dir" || log "fusermount3 -u -z $fuse_dir failed"
  fi
  if [[ -n "$fuse_pid" ]]; then
    kill -TERM "$fuse_pid" 2>/dev/null || true
    stop_fuse_process
  fi
  stop_writer 20 || log "writer (pid $writer_pid) survives SIGKILL for 20 s"
  local i
  for ((i = 0; i < 300; i++)); do
    [[ -z "$(our_mounts)" && -z "$(our_loops)" && -z "$writer_pid" ]] && break
    sleep 0.1
  done
}

# After a crash: the pool must be clean offline; restart; fsck (after journal replay).
check_pool() {
  local status=0
  timeout 120 "$SNAPSTORED" check "$pool" >"$check_log" 2>&1 || status=$?
  if [[ $status -ne 0 ]]; then
    head -n 100 "$check_log" >&2
    fail "snapstored check $pool: exit $status ($1)"
  fi
  log "snapstored check: clean ($1): $(grep -m1 '^generation' "$check_log" || true)"
}
check_fsck() {
  local out status=0
  out="$(timeout "$T" fsck.ext4 -fn "$loop_dev" 2>&1)" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "$out" >&2
    fail "fsck.ext4 -fn $loop_dev: exit $status ($1)"
  fi
  log "fsck.ext4 -fn: clean ($1)"
}
needs_recovery() {
  timeout "$T" dumpe2fs -h "$loop_dev" 2>/dev/null |
    grep -q '^Filesystem features:.*needs_recovery'
}
verify_manifest() {
  local n
  n="$(manifest_lines)"
  local out status=0
  out="$(cd "$fs_dir" && timeout 120 sha256sum --quiet --strict -c "$manifest" 2>&1)" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "$out" | head -n 40 >&2
    fail "$(echo "$out" | grep -c ': FAILED' || true) of $n fsync'd files lost or changed ($1)"
  fi
  log "all $n fsync'd files in the manifest read back with their sha256 ($1)"
}

# --- the trap: take everything down whatever state a failure left behind --------------
preserve() {
  local keep
  keep="$(mktemp -d /var/tmp/kill-ext4-failure-XXXXXX)" || return 0
  cp --sparse=always "$pool" "$keep/" 2>/dev/null || true
  cp "$daemon_log" "$fuse_log" "$writer_log" "$check_log" "$manifest" "$keep/" 2>/dev/null || true
  log "pool, logs and manifest kept in $keep"
}
cleanup() {
  local status=$?
  trap - ERR
  set +e
  if [[ -n "$writer_pid" ]]; then stop_writer 5; fi
  if [[ -n "$daemon_pid" ]] && alive "$daemon_pid"; then
    # The server still answers: take it down in order (lazily if a step is stuck).
    unmount_fs
    detach_loop
    unmount_fuse
  fi
  crash_teardown   # whatever is left, with the server dead or alive
  if [[ -n "$daemon_pid" ]]; then
    kill -TERM "$daemon_pid" 2>/dev/null
    wait_gone "$daemon_pid" 20 || kill -KILL "$daemon_pid" 2>/dev/null
    wait_gone "$daemon_pid" 10
    reap "$daemon_pid"
  fi
  case $status in 0 | 77 | 130 | 143) ;; *) preserve ;; esac
  local left_mounts left_loops
  left_mounts="$(our_mounts)" left_loops="$(our_loops)"
  if [[ -n "$left_mounts" || -n "$left_loops" || -n "$writer_pid" ]]; then
    log "left behind: mounts [${left_mounts//$'\n'/ }] loops [${left_loops//$'\n'/ }]" \
        "writer [${writer_pid}]; keeping $tmp"
    [[ $status -eq 0 ]] && status=1
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap "exit 130" INT
trap "exit 143" TERM
trap 'fail "line $LINENO: command failed: $BASH_COMMAND"' ERR

# --- a round: write until killed, crash teardown, check, restart, fsck, verify ---------
write_and_kill() {  # the filesystem is mounted; start the writer, kill snapstored mid-write
  local round=$1 before started i n bytes fuse_lines seed=$((RANDOM * 32768 + RANDOM))
  before="$(manifest_lines)"
  started=$SECONDS
  echo "=== round $round, seed $seed, $(date +%T) ===" >>"$writer_log"
  "$PY" -c "$WRITER_PY" "$fs_dir" "round-$round" "$manifest" "$seed" "$WRITER_CAP" \
    >>"$writer_log" 2>&1 &
  writer_pid=$!
  for ((i = 0; ; i++)); do
    n=$(($(manifest_lines) - before))
    bytes="$(round_bytes "$round")"
    ((n >= MIN_FILES && (SECONDS - started >= MIN_WRITE_SECONDS || bytes >= ROUND_BYTES))) && break
    alive "$writer_pid" || fail "writer stopped after $n files (round $round)"
    ((SECONDS - started < WRITE_LIMIT)) ||
      fail "writer wrote only $n fsync'd files in $WRITE_LIMIT s (round $round)"
    sleep 0.1
  done
  sleep "0.$((RANDOM % 5))$((RANDOM % 10))"  # land the kill somewhere inside a file
  alive "$writer_pid" || fail "writer stopped before the kill (round $round)"
  fuse_lines="$(wc -l <"$fuse_log")"
  kill -KILL "$daemon_pid"
  n=$(($(manifest_lines) - before))
  bytes="$(round_bytes "$round")"
  log "round $round: SIGKILL snapstored after $((SECONDS - started)) s of writing;" \
      "$n fsync'd files ($((bytes / 1024)) KiB) in the manifest, writer still running"
  wait_gone "$daemon_pid" 20 || fail "snapstored survives SIGKILL for 20 s"
  reap "$daemon_pid"
  daemon_pid=""
  crash_teardown
  [[ -z "$(our_mounts)" ]] || fail "still mounted after the crash teardown: $(our_mounts)"
  [[ -z "$(our_loops)" ]] || fail "loop device still attached after the crash teardown: $(our_loops)"
  [[ -z "$writer_pid" ]] || fail "writer (pid $writer_pid) does not die"
  local note=""
  tail -n "+$((fuse_lines + 1))" "$fuse_log" | grep -q "Assertion" &&
    note=" (nbdfuse aborted on an assertion after the connection was lost: see nbdfuse.log)"
  log "round $round: stack taken down with the server dead$note"
}
recover_and_verify() {
  local round=$1
  check_pool "after kill $round"
  start_daemon
  attach
  if needs_recovery; then
    log "ext4 journal needs recovery: mount + umount to replay it"
    mount_fs
    timeout "$T" umount "$fs_dir"
  fi
  check_fsck "after kill $round"
  mount_fs
  verify_manifest "after kill $round"
}

# --- 1. first start: fresh pool, mkfs.ext4 ----------------------------------------------
log "snapstored on a fresh $((POOL_SIZE / MiB)) MiB pool in $tmp"
start_daemon
attach
timeout "$T" mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$loop_dev"
mount_fs

# --- 2. kill rounds ---------------------------------------------------------------------
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round > 1 && SECONDS > ROUND_BUDGET)); then
    log "round $round skipped: ${SECONDS} s used (budget for another round: $ROUND_BUDGET s)"
    break
  fi
  if ((round > 2)); then
    # Make room (the disk is 256 MiB): drop round N-2's files, which have survived two
    # kills already, from the filesystem and from the manifest.
    rm -rf "${fs_dir:?}/round-$((round - 2))"
    timeout "$T" sync -f "$fs_dir"
    # and give the blocks back to the pool (a 256 MiB volume on a 256 MiB pool is thin)
    timeout "$T" fstrim "$fs_dir" || log "fstrim $fs_dir failed; the pool keeps the blocks"
    grep -v -F "  round-$((round - 2))/" "$manifest" >"$manifest.new" || true
    mv "$manifest.new" "$manifest"
  fi
  write_and_kill "$round"
  recover_and_verify "$round"
done

# --- 3. orderly end: umount, fsck, SIGTERM -> 0, check ----------------------------------
timeout "$T" umount "$fs_dir"
check_fsck "final"
detach_loop
unmount_fuse
stop_daemon
check_pool "after SIGTERM"
[[ -z "$(our_mounts)" ]] || fail "still mounted at the end: $(our_mounts)"
log "PASS: $((round - 1)) kill round(s), $(manifest_lines) fsync'd files verified"
