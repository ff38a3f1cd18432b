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
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_binaries
need_ext4_stack
need_tools head
lib_setup ext4

# --- 1. snapstored on a private Unix socket -------------------------------------------
log "starting snapstored on a fresh $((POOL_SIZE / MiB)) MiB pool in $tmp"
start_daemon --pool-size "$POOL_SIZE" --no-tcp

# --- 2. nbdfuse: the export as a file, a loop device on it -----------------------------
attach origin
fs="${fs_dir[origin]}"

# --- 3. mkfs.ext4, mount ---------------------------------------------------------------
timeout "$T" mkfs.ext4 -q -F "${loop_dev[origin]}"
mount_fs origin

# --- 4. files of several sizes; their sha256 kept outside the filesystem ---------------
make_files "$tmp/data" "$fs"
sums "$fs" >"$tmp/sums"
[[ $(wc -l <"$tmp/sums") -eq 107 ]] || fail "expected 107 files, listed $(wc -l <"$tmp/sums")"
check_sums "$tmp/data" "$tmp/sums" "the files written against their sources"
timeout "$T" sync
timeout "$T" umount "$fs"

# --- 5. fsck must be clean; the files must read back the same after a fresh mount ------
check_fsck origin "after writing"
# Detach everything down to snapstored and attach again, so that nothing can come from
# a page cache of the first mount: every byte is read from snapstored.
detach_loop origin
unmount_fuse origin
attach origin
mount_fs origin
check_sums "$fs" "$tmp/sums" "read back after remount"
timeout "$T" umount "$fs"
check_fsck origin "after remount"
log "ext4 on nbdfuse: fsck clean, $(wc -l <"$tmp/sums") files verified after remount"

# --- 6. take it down in order ----------------------------------------------------------
detach_loop origin
unmount_fuse origin
is_mounted "${fuse_dir[origin]}" && fail "${fuse_dir[origin]} is still mounted"
stop_daemon 10
log "PASS"
