#!/usr/bin/env bash
# shell_clients: drive a real snapstored with the command-line NBD clients a user would
# reach for (qemu-io, nbdinfo, nbdcopy), over the Unix socket and over TCP.
#
# Checks: pattern writes and reads (aligned and not), zeroes where nothing was written,
# discard and write-zeroes with holes in nbdinfo --map, the export list and description,
# refusal of an unknown export, a whole-disk nbdcopy round trip, clean SIGTERM shutdown
# (exit 0, sockets removed) and that the data survives a restart on the same pool.
#
# Environment: SNAPSTORED (the binary; set by ctest), SNAPSTORE_SOURCE_DIR (unused here).
# Exit 0 pass, 1 fail, 77 skip (a required tool is missing).
set -Eeuo pipefail

readonly MiB=$((1024 * 1024))
readonly POOL_SIZE=$((64 * MiB))
readonly CLIENT_TIMEOUT=60  # seconds any one client command may take

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_binaries
need_tools qemu-io nbdinfo nbdcopy python3 timeout cmp dd head
lib_setup clients
uri="$(nbd_uri origin)"

# stop_sockets_gone: SIGTERM; snapstored must exit 0 within 10 s and remove its sockets.
stop_sockets_gone() {
  stop_daemon 10
  [[ ! -e "$sock" ]] || fail "NBD socket $sock left behind after shutdown"
  [[ ! -e "$ctl" ]] || fail "control socket $ctl left behind after shutdown"
}

# qio [-u URI] CMD...: run qemu-io commands (-c each) in one connection; every command
# must succeed and every read -P must match.
qio() {
  local target=$uri
  if [[ "$1" == -u ]]; then target=$2; shift 2; fi
  local args=() c out rc=0
  for c in "$@"; do args+=(-c "$c"); done
  out="$(timeout "$CLIENT_TIMEOUT" qemu-io -f raw "${args[@]}" "$target" 2>&1)" || rc=$?
  if [[ $rc -ne 0 ]] || grep -qiE 'fail|error|mismatch' <<<"$out"; then
    printf '%s\n' "$out" >&2
    fail "qemu-io (exit $rc) on $target: $*"
  fi
}

# map_check URI START LENGTH hole|data: every extent of nbdinfo --map that overlaps
# [START, START+LENGTH) must be a hole (type bit 0 set) or data (bit 0 clear).
map_check() {
  local target=$1 start=$2 length=$3 want=$4 map
  map="$(timeout "$CLIENT_TIMEOUT" nbdinfo --map "$target")" || fail "nbdinfo --map $target"
  if ! awk -v s="$start" -v e="$((start + length))" -v want="$want" '
      { off = $1; len = $2; type = $3
        if (off + len <= s || off >= e) next
        covered += (off + len < e ? off + len : e) - (off > s ? off : s)
        is_hole = (type % 2 == 1)
        if ((want == "hole") != is_hole) bad = 1 }
      END { exit (bad || covered != e - s) }' <<<"$map"; then
    printf '%s\n' "$map" >&2
    fail "nbdinfo --map: [$start, +$length) is not all $want"
  fi
}

# pattern FILE OFFSET LENGTH BYTE: write BYTE repeated over [OFFSET, +LENGTH) of FILE,
# the local model of what qemu-io write -P does to the export.
pattern() {
  local file=$1 offset=$2 length=$3 byte=$4
  head -c "$length" /dev/zero | tr '\0' "\\$(printf '%03o' "$byte")" |
    dd of="$file" bs=1M seek="$offset" oflag=seek_bytes conv=notrunc status=none
}

# --- 1. first start: Unix socket only ------------------------------------------------
log "starting snapstored on a fresh $((POOL_SIZE / MiB)) MiB pool in $tmp"
start_daemon --pool-size "$POOL_SIZE" --no-tcp
grep -q "snapstored ready" "$daemon_log" || fail "no 'snapstored ready' in the log"
size="$(timeout "$CLIENT_TIMEOUT" nbdinfo --size "$uri")"
[[ "$size" == "$POOL_SIZE" ]] || fail "export size $size, expected $POOL_SIZE"

# --- 2. export list, description, unknown export --------------------------------------
list="$(timeout "$CLIENT_TIMEOUT" nbdinfo --list "$uri")"
grep -q '^export="origin":' <<<"$list" || { echo "$list" >&2; fail "--list lacks origin"; }
grep -qE '^[[:space:]]+description: [^[:space:]]' <<<"$list" ||
  { echo "$list" >&2; fail "--list shows no description for origin"; }
info="$(timeout "$CLIENT_TIMEOUT" nbdinfo "$uri")"
grep -qE '^[[:space:]]+is_read_only: false' <<<"$info" ||
  { echo "$info" >&2; fail "origin is not writable"; }
if out="$(timeout "$CLIENT_TIMEOUT" nbdinfo "nbd+unix:///no-such-export?socket=$sock" 2>&1)"; then
  echo "$out" >&2
  fail "nbdinfo on an unknown export name succeeded"
fi
grep -q 'no-such-export' <<<"$out" || { echo "$out" >&2; fail "unexpected error text"; }
log "list, description and unknown-export refusal: ok"

# --- 3. pattern writes and reads, aligned and unaligned --------------------------------
qio 'write -P 0xa1 0 64k' \
    'write -P 0xb2 1M 4k' \
    'write -P 0xc3 17825792 3000' \
    'write -P 0xd4 66056192 1044480' \
    'write -P 0xe5 67108863 1' \
    'write -P 0xf6 12345678 777' \
    'write -P 0x77 1052576 200'
# read back on a new connection
qio 'read -P 0xa1 0 64k' \
    'read -P 0 64k 960k' \
    'read -P 0xb2 1M 4000' \
    'read -P 0x77 1052576 200' \
    'read -P 0 1052776 1M' \
    'read -P 0 12345000 678' \
    'read -P 0xf6 12345678 777' \
    'read -P 0 12346455 1000' \
    'read -P 0xc3 17825792 3000' \
    'read -P 0 17828792 100k' \
    'read -P 0 32M 16M' \
    'read -P 0xd4 66056192 1044480' \
    'read -P 0xe5 67108863 1' \
    'read -P 0 67100672 8191'
# the checker itself: a read -P that does not match must be noticed
out="$(timeout "$CLIENT_TIMEOUT" qemu-io -f raw -c 'read -P 0xd4 67100672 8192' "$uri" 2>&1)" || true
grep -qi 'verification failed' <<<"$out" || { echo "$out" >&2; fail "qemu-io missed a bad pattern"; }
log "pattern writes and reads: ok"

# --- 4. discard and write-zeroes; holes in nbdinfo --map -------------------------------
qio "write -P 0x55 $((32 * MiB)) $((2 * MiB))" \
    "discard $((32 * MiB)) $MiB" \
    "write -z $((33 * MiB)) $((MiB / 2))" \
    "write -P 0x66 $((40 * MiB)) $MiB" \
    "write -z -u $((40 * MiB)) $MiB"
qio "read -P 0 $((32 * MiB)) $((3 * MiB / 2))" \
    "read -P 0x55 $((33 * MiB + MiB / 2)) $((MiB / 2))" \
    "read -P 0 $((40 * MiB)) $MiB"
map_check "$uri" $((32 * MiB)) "$MiB" hole                   # discarded
map_check "$uri" $((33 * MiB + MiB / 2)) $((MiB / 2)) data   # still written
map_check "$uri" 0 $((64 * 1024)) data
map_check "$uri" $((48 * MiB)) $((8 * MiB)) hole             # never written
log "discard, write-zeroes and the allocation map: ok"

# --- 5. nbdcopy a whole disk in and out ------------------------------------------------
head -c "$POOL_SIZE" /dev/urandom >"$tmp/random.bin"
timeout "$CLIENT_TIMEOUT" nbdcopy "$tmp/random.bin" "$uri"
timeout "$CLIENT_TIMEOUT" nbdcopy "$uri" "$tmp/out.bin"
cmp "$tmp/random.bin" "$tmp/out.bin" || fail "nbdcopy round trip differs"
map_check "$uri" 0 "$POOL_SIZE" data
log "nbdcopy round trip: ok"

# Changes on top of the copied disk, mirrored in a local model of the disk.
cp "$tmp/random.bin" "$tmp/model.bin"
qio "write -P 0x3c 4095 2" \
    "write -P 0x5a $((20 * MiB)) $MiB" \
    "write -P 0x4b $((30 * MiB - 100)) 300" \
    "discard $((48 * MiB)) $MiB" \
    "write -z $((50 * MiB)) 4096"
pattern "$tmp/model.bin" 4095 2 0x3c
pattern "$tmp/model.bin" $((20 * MiB)) "$MiB" 0x5a
pattern "$tmp/model.bin" $((30 * MiB - 100)) 300 0x4b
pattern "$tmp/model.bin" $((48 * MiB)) "$MiB" 0
pattern "$tmp/model.bin" $((50 * MiB)) 4096 0
timeout "$CLIENT_TIMEOUT" nbdcopy "$uri" "$tmp/out.bin"
cmp "$tmp/model.bin" "$tmp/out.bin" || fail "export differs from the model after small writes"

# --- 6. SIGTERM: exit 0, sockets removed ----------------------------------------------
stop_sockets_gone
grep -q "snapstored stopped" "$daemon_log" || fail "no 'snapstored stopped' in the log"
log "SIGTERM shutdown: ok"

# --- 7. restart on the same pool, with TCP as well: the data is still there ------------
# The default --pool-size (16G) must not resize an existing pool. A free port from the
# kernel can be taken by someone else before snapstored binds it: retry a few times.
port=""
for attempt in 1 2 3 4 5; do
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  if try_start_daemon --listen "127.0.0.1:$port"; then break; fi
  log "snapstored did not start on port $port (attempt $attempt)"
  port=""
done
[[ -n "$port" ]] || fail "snapstored did not restart on the existing pool"
tcp_uri="nbd://127.0.0.1:$port/origin"
size="$(timeout "$CLIENT_TIMEOUT" nbdinfo --size "$tcp_uri")"
[[ "$size" == "$POOL_SIZE" ]] || fail "after restart the export size is $size, expected $POOL_SIZE"
timeout "$CLIENT_TIMEOUT" nbdcopy "$tcp_uri" "$tmp/out.bin"
cmp "$tmp/model.bin" "$tmp/out.bin" || fail "data over TCP after restart differs from the model"
timeout "$CLIENT_TIMEOUT" nbdcopy "$uri" "$tmp/out.bin"
cmp "$tmp/model.bin" "$tmp/out.bin" || fail "data over Unix after restart differs from the model"
qio -u "$tcp_uri" "read -P 0x5a $((20 * MiB)) $MiB" "write -P 0x99 $((60 * MiB)) 4096"
qio "read -P 0x99 $((60 * MiB)) 4096"   # a TCP write seen over the Unix socket
if timeout "$CLIENT_TIMEOUT" nbdinfo "nbd://127.0.0.1:$port/no-such-export" >/dev/null 2>&1; then
  fail "nbdinfo on an unknown export name succeeded over TCP"
fi
stop_sockets_gone
log "restart on the same pool, TCP and Unix: ok"
log "PASS"
