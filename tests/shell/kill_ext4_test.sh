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
#   - `snapstored check POOL` must find no damage (only, at most, a superblock copy or log
#     record that the crash left half written, which the restart repairs);
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

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_binaries
need_ext4_stack
need_tools fstrim
[[ -x "$PY" ]] || skip "$PY is missing (the writer is a python3 script)"
lib_setup kill-ext4
writer_log="$tmp/writer.log"
manifest="$tmp/manifest.sha256"   # "sha256  path" lines, only for fsync'd files
fs=""                              # where ext4 is mounted (after attach origin)
: >"$manifest"
writer_pid=""

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
manifest_lines() { wc -l <"$manifest"; }
round_bytes() {  # round_bytes N: bytes in round N's fsync'd files (sizes are in the names)
  awk -v r="round-$1/" 'index($2, r) == 1 { n = split($2, a, "-"); s += a[n] } END { print s + 0 }' \
    "$manifest"
}
serve() { start_daemon --pool-size "$POOL_SIZE" --no-tcp --log-level warn; }
stop_writer() {  # SIGKILL; a writer blocked on I/O may only die once the stack is gone
  [[ -n "$writer_pid" ]] || return 0
  kill -KILL "$writer_pid" 2>/dev/null || true
  wait_gone "$writer_pid" "${1:-5}" || return 1
  reap "$writer_pid"
  writer_pid=""
}

# Teardown with a dead server: the stack lazily, then the writer, which only dies once
# nbdfuse is gone and the kernel fails its last requests.
crash_down() {
  stop_writer 5 || log "writer (pid $writer_pid) still blocked 5 s after SIGKILL"
  crash_teardown origin
  stop_writer 20 || log "writer (pid $writer_pid) survives SIGKILL for 20 s"
  wait_released 30 || true
}

verify_manifest() {
  check_sums "$fs" "$manifest" "fsync'd files, $1"
  log "all $(manifest_lines) fsync'd files in the manifest read back with their sha256 ($1)"
}

# --- the EXIT trap (lib.sh's cleanup) calls these ---------------------------------------
before_teardown() { stop_writer 5 || true; }
after_teardown() {  # the stack is gone: a writer blocked on it dies now
  stop_writer 20 || { log "writer (pid $writer_pid) survives SIGKILL for 20 s"; return 1; }
}
on_failure() {  # keep the pool, the logs and the manifest
  local keep
  keep="$(mktemp -d /var/tmp/kill-ext4-failure-XXXXXX)" || return 0
  cp --sparse=always "$pool" "$keep/" 2>/dev/null || true
  cp "$tmp"/*.log "$tmp/check.out" "$manifest" "$keep/" 2>/dev/null || true
  log "pool, logs and manifest kept in $keep"
}

# --- a round: write until killed, crash teardown, check, restart, fsck, verify ---------
write_and_kill() {  # the filesystem is mounted; start the writer, kill snapstored mid-write
  local round=$1 before started i n bytes fuse_lines seed=$((RANDOM * 32768 + RANDOM))
  before="$(manifest_lines)"
  started=$SECONDS
  echo "=== round $round, seed $seed, $(date +%T) ===" >>"$writer_log"
  "$PY" -c "$WRITER_PY" "$fs" "round-$round" "$manifest" "$seed" "$WRITER_CAP" \
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
  fuse_lines="$(wc -l <"${fuse_log[origin]}")"
  kill -KILL "$daemon_pid"
  n=$(($(manifest_lines) - before))
  bytes="$(round_bytes "$round")"
  log "round $round: SIGKILL snapstored after $((SECONDS - started)) s of writing;" \
      "$n fsync'd files ($((bytes / 1024)) KiB) in the manifest, writer still running"
  wait_gone "$daemon_pid" 20 || fail "snapstored survives SIGKILL for 20 s"
  reap "$daemon_pid"
  daemon_pid=""
  crash_down
  [[ -z "$(our_mounts)" ]] || fail "still mounted after the crash teardown: $(our_mounts)"
  [[ -z "$(our_loops)" ]] || fail "loop device still attached after the crash teardown: $(our_loops)"
  [[ -z "$writer_pid" ]] || fail "writer (pid $writer_pid) does not die"
  local note=""
  tail -n "+$((fuse_lines + 1))" "${fuse_log[origin]}" | grep -q "Assertion" &&
    note=" (nbdfuse aborted on an assertion after the connection was lost: see nbdfuse-origin.log)"
  log "round $round: stack taken down with the server dead$note"
}
recover_and_verify() {
  local round=$1
  check_pool_after_crash "after kill $round"
  serve
  attach origin
  replay_journal origin
  check_fsck origin "after kill $round"
  mount_fs origin
  verify_manifest "after kill $round"
}

# --- 1. first start: fresh pool, mkfs.ext4 ----------------------------------------------
log "snapstored on a fresh $((POOL_SIZE / MiB)) MiB pool in $tmp"
serve
attach origin
fs="${fs_dir[origin]}"
timeout "$T" mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "${loop_dev[origin]}"
mount_fs origin

# --- 2. kill rounds ---------------------------------------------------------------------
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round > 1 && SECONDS > ROUND_BUDGET)); then
    log "round $round skipped: ${SECONDS} s used (budget for another round: $ROUND_BUDGET s)"
    break
  fi
  if ((round > 2)); then
    # Make room (the disk is 256 MiB): drop round N-2's files, which have survived two
    # kills already, from the filesystem and from the manifest.
    rm -rf "${fs:?}/round-$((round - 2))"
    timeout "$T" sync -f "$fs"
    # and give the blocks back to the pool (a 256 MiB volume on a 256 MiB pool is thin)
    timeout "$T" fstrim "$fs" || log "fstrim $fs failed; the pool keeps the blocks"
    grep -v -F "  round-$((round - 2))/" "$manifest" >"$manifest.new" || true
    mv "$manifest.new" "$manifest"
  fi
  write_and_kill "$round"
  recover_and_verify "$round"
done

# --- 3. orderly end: umount, fsck, SIGTERM -> 0, check ----------------------------------
timeout "$T" umount "$fs"
check_fsck origin "final"
detach_loop origin
unmount_fuse origin
stop_daemon 20
check_pool "after SIGTERM"
[[ -z "$(our_mounts)" ]] || fail "still mounted at the end: $(our_mounts)"
log "PASS: $((round - 1)) kill round(s), $(manifest_lines) fsync'd files verified"
