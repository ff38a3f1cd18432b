#!/usr/bin/env bash
# shell_snapshot_ext4: what a user of snapshots would try with a real filesystem. ext4 on
# the origin through the stack of shell_ext4_nbdfuse (snapstored <- nbdfuse <- loop <- ext4),
# 256 MiB pool:
#
#   1. files of several sizes in before/, synced;
#   2. a writer keeps adding files to during/ (each fsync'd, then its directory, and only
#      then its sha256 goes to a manifest) while `snapshotctl snapshot create origin snap1`
#      takes a crash-consistent point in time;
#   3. snap1 through a second nbdfuse + loop: its journal replayed (mount + umount: it is
#      writable), fsck.ext4 -fn clean, every file synced before the snapshot there with its
#      sha256, no file the writer began after the snapshot's reply; a file written into
#      snap1 does not show in the origin (mounted, nor read afresh from snapstored);
#   4. origin unmounted: `snapshot rollback origin snap1` is refused as busy (exit 1) while
#      nbdfuse is attached, the export stays usable; with --force it succeeds and
#      disconnects nbdfuse; rolled back again once nothing is attached, without --force;
#   5. origin attached afresh equals snap1 block for block (`diff` finds nothing, the
#      same sha256), fsck clean, and holds exactly snap1's files: the one written into snap1
#      included, those written after the snapshot gone;
#   6. snap1 deleted; once `status --json` shows reclaim finished the origin still reads
#      the same; SIGTERM -> exit 0; `snapstored check` clean.
#
# Needs root, /dev/fuse, loop devices and the tools below; otherwise exits 77 (skipped).
# Environment: SNAPSTORED, SNAPSHOTCTL (set by ctest).
set -Eeuo pipefail

readonly MiB=$((1024 * 1024))
readonly POOL_SIZE=$((256 * MiB))
readonly T=120              # seconds any one step may take
readonly WRITER_FILES=150   # the writer's files at most: 64 KiB .. 1 MiB each, ~80 MiB
readonly BEFORE_SNAPSHOT=5  # the writer's fsync'd files before the snapshot, at least
readonly AFTER_SNAPSHOT=4   # and after its reply, at least
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_binaries
need_snapshotctl
need_ext4_stack
need_tools nbdcopy debugfs jq dd head sort comm
lib_setup snapshot-ext4
durable="$tmp/durable.sha256"  # the writer's fsync'd files: "sha256  during/wNNNN" lines
writer_pid=""
mkdir "$tmp/during"
: >"$durable"

# --- helpers ---------------------------------------------------------------------------
names() { (cd "$1" && find . | sort); }  # every name below DIR, directories too
image_sha() { timeout "$T" nbdcopy "$(nbd_uri "$1")" - | sha256sum | cut -d' ' -f1; }
durable_lines() { wc -l <"$durable"; }
writer_file() { printf 'during/w%04d' "$1"; }
# The writer: during/wNNNN of 64 KiB .. 1 MiB of random bytes, one after another, until
# $tmp/writer.stop appears or WRITER_FILES are written. Each is copied in with fsync, its
# directory fsync'd, and only then its sha256 appended to $durable.
writer() {
  trap - ERR
  set +e
  local i name
  mkdir "$fs/during" && sync "$fs/during" "$fs" || exit 1
  for ((i = 1; i <= WRITER_FILES; i++)); do
    [[ -e "$tmp/writer.stop" ]] && exit 0
    name="$(writer_file "$i")"
    head -c $(((i % 16 + 1) * 64 * 1024 + 3 * i)) /dev/urandom >"$tmp/$name" || exit 1
    dd if="$tmp/$name" of="$fs/$name" bs=1M conv=fsync status=none || exit 1
    sync "$fs/during" || exit 1
    (cd "$tmp" && sha256sum "$name") >>"$durable" || exit 1
  done
  echo "writer: all $WRITER_FILES files written" >&2
}
wait_for_durable() {  # wait_for_durable N: until the writer has N fsync'd files
  local started=$SECONDS
  until (($(durable_lines) >= $1)); do
    alive "$writer_pid" || fail "the writer stopped after $(durable_lines) files (waiting for $1)"
    ((SECONDS - started < T)) || fail "the writer wrote only $(durable_lines) files in $T s"
    sleep 0.1
  done
}
stop_writer() {  # stop_writer SECONDS: ask the writer to stop; SIGKILL it if it does not
  [[ -n "$writer_pid" ]] || return 0
  touch "$tmp/writer.stop"
  if ! wait_gone "$writer_pid" "$1"; then
    kill -KILL "$writer_pid" 2>/dev/null || true
    wait_gone "$writer_pid" 5 || return 1
  fi
  reap "$writer_pid"
  writer_pid=""
}
before_teardown() { stop_writer 10 || true; }
after_teardown() {  # the stack is gone: a writer blocked on it goes now
  stop_writer 20 || { log "writer (pid $writer_pid) does not go"; return 1; }
}

# --- 1. snapstored, ext4 on origin, files of several sizes, synced -----------------------
log "snapstored on a fresh $((POOL_SIZE / MiB)) MiB pool in $tmp"
start_daemon --pool-size "$POOL_SIZE" --no-tcp --log-level warn
attach origin
fs="${fs_dir[origin]}"
timeout "$T" mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "${loop_dev[origin]}"
mount_fs origin
make_files "$tmp/before" "$fs/before"
timeout "$T" sync -f "$fs"
sums "$tmp/before" >"$tmp/before.sha256"
[[ $(wc -l <"$tmp/before.sha256") -eq 107 ]] || fail "expected 107 files in before/"

# --- 2. the snapshot, taken while the writer writes --------------------------------------
writer 2>>"$tmp/writer.log" &
writer_pid=$!
wait_for_durable "$BEFORE_SNAPSHOT"
synced=$(durable_lines)  # fsync'd before the request: these must be in snap1
ctl snapshot create origin snap1 >/dev/null
replied=$(durable_lines)  # files from index replied + 2 on began after the reply
log "snap1 taken with the writer at work: $synced of its files fsync'd before the request," \
    "$replied at the reply"
wait_for_durable $((replied + AFTER_SNAPSHOT))

# --- 3. snap1: journal replay, fsck, the synced files, a file of its own ----------------
# (the writer keeps writing into the origin meanwhile)
attach snap1
snap_fs="${fs_dir[snap1]}"
needs_recovery snap1 || log "snap1 does not need journal recovery (origin was mounted)"
replay_journal snap1
check_fsck snap1 "snapshot of the mounted origin, journal replayed"
mount_fs snap1
check_sums "$snap_fs/before" "$tmp/before.sha256" "snap1: files synced before it"
head -n "$synced" "$durable" >"$tmp/durable-before-snapshot.sha256"
check_sums "$snap_fs" "$tmp/durable-before-snapshot.sha256" "snap1: files fsync'd before it"
log "snap1 holds the 107 synced files and the writer's first $synced fsync'd files"

head -c $((MiB + 7)) /dev/urandom >"$tmp/written-in-snap1"
timeout "$T" cp "$tmp/written-in-snap1" "$snap_fs/written-in-snap1"
timeout "$T" sync -f "$snap_fs"
[[ ! -e "$fs/written-in-snap1" ]] || fail "a file written into snap1 shows in the mounted origin"

stop_writer 60 || fail "the writer did not stop"
if [[ -s "$tmp/writer.log" ]]; then log "$(cat "$tmp/writer.log")"; fi
written=$(durable_lines)
for ((i = replied + 2; i <= written + 1; i++)); do
  [[ ! -e "$snap_fs/$(writer_file "$i")" ]] ||
    fail "snap1 holds $(writer_file "$i"), begun after the snapshot's reply"
done
log "writer stopped after $written fsync'd files; snap1 has none begun after the reply"

sums "$snap_fs" >"$tmp/snap1.sha256"
names "$snap_fs" >"$tmp/snap1.names"
timeout "$T" umount "$snap_fs"
check_fsck snap1 "after a file was written into it"
teardown snap1

# --- 4. the origin, read afresh from snapstored, does not have snap1's file ---------------
timeout "$T" sync -f "$fs"
names "$fs" >"$tmp/origin.names"
check_sums "$fs" "$durable" "origin: the writer's files"
timeout "$T" umount "$fs"
check_fsck origin "after the writer"
timeout "$T" nbdcopy "$(nbd_uri origin)" "$tmp/origin.img"
listing="$(timeout "$T" debugfs -c -R 'ls -p /' "$tmp/origin.img" 2>/dev/null)"
grep -q '/before/' <<<"$listing" || { echo "$listing" >&2; fail "debugfs does not list before/"; }
! grep -q '/written-in-snap1/' <<<"$listing" ||
  fail "the origin read from snapstored holds the file written into snap1"
rm -f "$tmp/origin.img"
comm -23 "$tmp/origin.names" "$tmp/snap1.names" >"$tmp/after-snapshot.names"
[[ -s "$tmp/after-snapshot.names" ]] || fail "the origin has no file that snap1 lacks"
log "the origin lacks snap1's file and has $(wc -l <"$tmp/after-snapshot.names") names snap1 lacks"

# --- 5. rollback: busy while nbdfuse is attached; --force; again once detached ----------
rc=0
out="$(ctl --json snapshot rollback origin snap1)" || rc=$?
[[ $rc -eq 1 ]] || { echo "$out" >&2; fail "rollback with nbdfuse attached: exit $rc, expected 1"; }
[[ "$(jq -r .error.code <<<"$out")" == busy ]] || { echo "$out" >&2; fail "refusal is not busy"; }
# O_DIRECT on the nbdfuse file: the reads go to snapstored, not to a page cache
timeout "$T" dd if="${fuse_dir[origin]}/nbd" of=/dev/null bs=1M count=4 iflag=direct status=none ||
  fail "the origin's nbdfuse no longer reads after the refused rollback"
timeout 10 nbdinfo --size "$(nbd_uri origin)" >/dev/null ||
  fail "origin is not exported after the refused rollback"
log "rollback with nbdfuse attached: busy (exit 1); the export still serves"

out="$(ctl --json snapshot rollback --force origin snap1)" ||
  { echo "$out" >&2; fail "rollback --force failed"; }
disconnected="$(jq -r .disconnected <<<"$out")"
((disconnected >= 1)) || { echo "$out" >&2; fail "rollback --force disconnected no client"; }
teardown origin
wait_released 30 || fail "left after detaching origin: $(our_mounts) $(our_loops)"
log "rollback --force: done, $disconnected client(s) disconnected; origin detached"

out="$(ctl --json snapshot rollback origin snap1)" ||
  { echo "$out" >&2; fail "rollback with nothing attached failed"; }
[[ "$(jq -r .disconnected <<<"$out")" == 0 ]] || { echo "$out" >&2; fail "disconnected someone"; }
log "rollback with nothing attached (no --force): done"

# --- 6. origin is snap1 now: blocks, fsck, files -----------------------------------------
out="$(ctl --json diff origin snap1)" || { echo "$out" >&2; fail "diff origin snap1 failed"; }
[[ "$(jq -r '.changed_bytes, (.extents | length)' <<<"$out" | paste -sd' ')" == "0 0" ]] ||
  { echo "$out" >&2; fail "diff finds origin and snap1 different after the rollback"; }
origin_sha="$(image_sha origin)"
[[ "$origin_sha" == "$(image_sha snap1)" ]] ||
  fail "origin and snap1 read differently after the rollback"
attach origin
check_fsck origin "after the rollback"
mount_fs origin
sums "$fs" >"$tmp/origin.sha256"
names "$fs" >"$tmp/origin.names"
diff -u "$tmp/snap1.names" "$tmp/origin.names" >&2 ||
  fail "after the rollback the origin's names differ from snap1's"
diff -u "$tmp/snap1.sha256" "$tmp/origin.sha256" >&2 ||
  fail "after the rollback the origin's files differ from snap1's"
cmp "$tmp/written-in-snap1" "$fs/written-in-snap1" || fail "snap1's own file differs in origin"
while read -r name; do
  [[ ! -e "$fs/$name" ]] || fail "$name, written after the snapshot, survives the rollback"
done <"$tmp/after-snapshot.names"
log "origin = snap1: no diff, same sha256, $(wc -l <"$tmp/origin.sha256") files the same"
timeout "$T" umount "$fs"
check_fsck origin "after the rollback, mounted once"

# --- 7. delete snap1, reclaim, stop, check ---------------------------------------------
origin_sha="$(image_sha origin)"
ctl snapshot delete snap1 >/dev/null
started=$SECONDS
until ctl --json status | jq -e '.space.reclaim | .pending_volumes == 0 and .pending_blocks == 0' \
    >/dev/null; do
  ((SECONDS - started < T)) || { ctl --json status >&2; fail "reclaim not done in $T s"; }
  sleep 0.2
done
reclaim="$(ctl --json status | jq -c .space.reclaim)"
(($(jq .released_blocks <<<"$reclaim") > 0)) || fail "reclaim released nothing: $reclaim"
log "snap1 deleted; reclaim finished in $((SECONDS - started)) s: $reclaim"
[[ "$(ctl --json volume list | jq -r '[.volumes[].name] | join(" ")')" == origin ]] ||
  fail "volumes other than origin are left: $(ctl volume list)"
[[ "$(image_sha origin)" == "$origin_sha" ]] || fail "origin changed during reclaim"
teardown origin
stop_daemon 20
check_pool "after SIGTERM"
log "PASS"
