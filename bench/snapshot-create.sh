#!/usr/bin/env bash
# snapshot-create.sh: how long creating the Nth snapshot takes, and how fast a deleted
# snapshot's space comes back (issue 4, item 9). Every figure has a peer measured in the
# same run, at the same moment, on the same file system (/var/tmp by default, not tmpfs).
#
# Parts, run in this order in every round:
#   server   snapshot_bench create DIR --count BENCH_COUNT: the Pool API in one process, a
#            fully written 1 GiB origin, one random 4k write to origin before each
#            snapshot. Around N = 1, 100, 1,000, 10,000, 100,000: create median/p90/max
#            (each includes its commit: two fdatasyncs), the commit alone, the rest, and
#            the peer: a bare 4 KiB pwrite + fdatasync right after each measured create.
#            Also the create with fdatasync turned off (what it costs besides the syncs).
#   qemu     qemu-img snapshot -c on a qcow2 image of BENCH_QCOW2_SIZE (fully written by
#            qemu-img convert from random data), one random 4k write (qemu-io) before
#            each snapshot, up to BENCH_QCOW2_COUNT snapshots; times at the 1st, the 91st
#            to 100th and the 491st to 500th. Peers right after each measured create:
#            `qemu-img info` on the image (process start and image open, no change) and
#            the bare 4 KiB pwrite + fdatasync.
#   e2e      only if a snapshotctl binary is found: snapstored serving a pool (1 GiB
#            origin, fully written) over a private control socket; at N = 1, 100, 1,000,
#            10,000, 100,000 (up to BENCH_COUNT) the snapshots before the window are added
#            offline (snapshot_bench add, one random 4k write before each), the daemon is
#            started, and each create of the window (the 1st; the 10 up to N otherwise)
#            follows one 4k write + flush through NBD and is timed as a process:
#              snapshotctl --socket CTL snapshot create origin sN
#            Peers right after each: `snapshotctl --socket CTL status` (process start,
#            connect and a request that commits nothing) and the bare pwrite + fdatasync.
#   reclaim  snapshot_bench reclaim DIR --size BENCH_RECLAIM_SIZE: a snapshot that owns
#            that much alone is deleted; reclaim time and MiB/s, and 4k reads of origin
#            (one per 500 µs) before the delete, during reclaim and after it.
#
# Environment (all optional):
#   BENCH_PARTS=server,qemu,e2e,reclaim   parts to run
#   BENCH_ROUNDS=1                        rounds (each runs every part)
#   BENCH_COUNT=100000                    snapshots for the server and e2e parts
#   BENCH_QCOW2_COUNT=500                 snapshots for the qemu part
#   BENCH_QCOW2_SIZE=1G                   qcow2 image size
#   BENCH_RECLAIM_SIZE=1G                 what the deleted snapshot owns alone
#   BENCH_SNAPSTORED=PATH                 snapstored (default: build-bench, build, PATH)
#   BENCH_SNAPSHOT_BENCH=PATH             snapshot_bench (same search)
#   BENCH_SNAPSHOTCTL=PATH                snapshotctl (same search; none: e2e is skipped)
#   BENCH_TMPDIR=/var/tmp                 where pools and images go (refused if tmpfs)
#   BENCH_OUTDIR=DIR                      keep the raw outputs (per part and round)
#
# Usage: bench/snapshot-create.sh [--help]
# Output: markdown tables on stdout (per part and round); progress on stderr.
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

REPO=$(cd "$(dirname "$0")/.." && pwd)
LOG_TAG=snapshot-create
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

read -r -a PARTS <<<"$(tr ',' ' ' <<<"${BENCH_PARTS:-server qemu e2e reclaim}")"
ROUNDS=${BENCH_ROUNDS:-1}
COUNT=${BENCH_COUNT:-100000}
QCOUNT=${BENCH_QCOW2_COUNT:-500}
QSIZE=${BENCH_QCOW2_SIZE:-1G}
RSIZE=${BENCH_RECLAIM_SIZE:-1G}
TMPBASE=${BENCH_TMPDIR:-/var/tmp}
OUTDIR=${BENCH_OUTDIR:-}
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $COUNT =~ ^[1-9][0-9]*$ && $QCOUNT =~ ^[1-9][0-9]*$ ]] ||
  die "BENCH_ROUNDS, BENCH_COUNT and BENCH_QCOW2_COUNT must be positive integers"
for p in "${PARTS[@]}"; do
  [[ $p =~ ^(server|qemu|e2e|reclaim)$ ]] || die "unknown part '$p'"
done

SBENCH=$(find_binary "${BENCH_SNAPSHOT_BENCH:-}" snapshot_bench bench)
SNAPSTORED="" SNAPSHOTCTL=""
if [[ " ${PARTS[*]} " == *" e2e "* ]]; then
  SNAPSTORED=$(find_binary "${BENCH_SNAPSTORED:-}" snapstored)
  SNAPSHOTCTL=$(find_binary "${BENCH_SNAPSHOTCTL:-}" snapshotctl 2>/dev/null) || SNAPSHOTCTL=""
  [[ -n $SNAPSHOTCTL ]] || log "no snapshotctl binary: the e2e part is skipped (not measured)"
  need nbdinfo "apt-get install libnbd-bin"
  "$PY" -c 'import nbd' 2>/dev/null || die "$PY has no libnbd module (apt-get install python3-libnbd)"
fi
if [[ " ${PARTS[*]} " == *" qemu "* ]]; then
  need qemu-img "apt-get install qemu-utils"
  need qemu-io "apt-get install qemu-utils"
fi

WORK=$(make_workdir "$TMPBASE")
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_all
  if [[ -n $OUTDIR && -d $WORK ]]; then
    mkdir -p "$OUTDIR"
    cp "$WORK"/*.md "$WORK"/*.log "$WORK"/*.tsv "$OUTDIR"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

# ---- part: server ----
part_server() {  # round
  log "round $1 server: snapshot_bench create, $COUNT snapshots (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "$SBENCH" create "$WORK" --count "$COUNT" >"$WORK/server-r$1.md" 2>"$WORK/server-r$1.log" ||
    { tail "$WORK/server-r$1.log" >&2; die "snapshot_bench create failed"; }
  { echo "### Server side, round $1 (snapshot_bench create; load at the end $(cut -d' ' -f1-3 /proc/loadavg))"
    echo; cat "$WORK/server-r$1.md"; echo; } >>"$WORK/tables.md"
}

# ---- the timing driver shared by the qemu and e2e parts ----
# Runs one window: for n in FIRST..LAST, the "before" command (not timed), the create
# command (timed), then the peers (timed). Commands are Python format strings of {n}, and
# for "before" also {off} (a random 4k block of the volume) and {pat} (a byte).
# Appends "n<TAB>create_ms<TAB>peer_ms<TAB>fdatasync_ms" lines to OUT.
time_window() {  # out first last volume-blocks before create peer
  "$PY" - "$@" "$WORK/fdatasync-probe" <<'EOF'
import os, random, shlex, subprocess, sys, time
out, first, last, blocks, before, create, peer, probe = sys.argv[1:9]
rng = random.Random(int(first))
fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
def timed(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(shlex.split(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1000
    if r.returncode:
        sys.exit("failed (%d): %s\n%s" % (r.returncode, cmd, r.stderr.decode()[-2000:]))
    return dt
with open(out, "a") as f:
    for n in range(int(first), int(last) + 1):
        if before:
            timed(before.format(n=n, off=rng.randrange(int(blocks)) * 4096, pat=n % 256))
        c = timed(create.format(n=n))
        p = timed(peer.format(n=n))
        # An untimed sync first: this disk completes flushes on a ~4 ms beat, and a sync
        # right after a process exits lands at a random phase of it; the timed one then
        # starts, like the peer in snapshot_bench and like a commit's second sync, just
        # after a flush completed.
        os.pwrite(fd, os.urandom(4096), (n % 4096) * 4096)
        os.fdatasync(fd)
        t0 = time.perf_counter()
        os.pwrite(fd, os.urandom(4096), (n % 4096) * 4096 + 4096 * 4096)
        os.fdatasync(fd)
        s = (time.perf_counter() - t0) * 1000
        f.write("%d\t%.3f\t%.3f\t%.3f\n" % (n, c, p, s))
EOF
}

# Median table of one part's samples: windows ending at each checkpoint.
window_table() {  # tsv title create-label peer-label checkpoints...
  "$PY" - "$@" <<'EOF'
import statistics, sys
path, title, clabel, plabel = sys.argv[1:5]
checkpoints = sorted({int(x) for x in sys.argv[5:]})
rows = [l.split("\t") for l in open(path).read().split("\n") if l]
data = {int(r[0]): [float(x) for x in r[1:]] for r in rows}
print("### %s\n" % title)
print("| N | %s median ms | min–max ms | peer: %s median ms | peer: 4 KiB write+fdatasync median ms | create / fdatasync | calls |" % (clabel, plabel))
print("|--:|--:|--:|--:|--:|--:|--:|")
for n in checkpoints:
    w = [data[k] for k in range(max(1, n - 9), n + 1) if k in data]
    if not w:
        continue
    med = lambda i: statistics.median(x[i] for x in w)
    print("| %d | %.1f | %.1f–%.1f | %.1f | %.1f | %.2f | %d |" % (
        n, med(0), min(x[0] for x in w), max(x[0] for x in w), med(1), med(2),
        med(0) / med(2) if med(2) else 0, len(w)))
print()
EOF
}

# ---- part: qemu ----
part_qemu() {  # round
  local img=$WORK/qemu.qcow2 tsv=$WORK/qemu-r$1.tsv n=1 w
  log "round $1 qemu: $QSIZE qcow2, $QCOUNT snapshots (load $(cut -d' ' -f1-3 /proc/loadavg))"
  head -c "$(numfmt --from=iec "$QSIZE")" /dev/urandom >"$WORK/base.img"
  qemu-img convert -f raw -O qcow2 "$WORK/base.img" "$img"
  rm -f "$WORK/base.img" "$tsv"
  sync
  # windows: the 1st, then the 10 calls up to each of 100 and 500 (and QCOUNT)
  for w in 1 100 500 "$QCOUNT"; do
    (( w <= QCOUNT && w >= n )) || continue
    local first=$(( w - 9 > n ? w - 9 : n ))
    while (( n < first )); do  # unmeasured: a write and a snapshot
      qemu-io -f qcow2 -c "write -P $(( n % 256 )) $(( (RANDOM * 32768 + RANDOM) % ($(numfmt --from=iec "$QSIZE") / 4096) * 4096 )) 4k" "$img" >/dev/null
      qemu-img snapshot -c "s$n" "$img"
      n=$(( n + 1 ))
    done
    time_window "$tsv" "$first" "$w" $(( $(numfmt --from=iec "$QSIZE") / 4096 )) "qemu-io -f qcow2 -c 'write -P {pat} {off} 4k' $img" \
      "qemu-img snapshot -c s{n} $img" "qemu-img info $img" || die "qemu window failed"
    n=$(( w + 1 ))
  done
  window_table "$tsv" "qemu-img snapshot -c, round $1 ($QSIZE qcow2, fully written; load at the end $(cut -d' ' -f1-3 /proc/loadavg))" \
    "qemu-img snapshot -c" "qemu-img info" 1 100 500 "$QCOUNT" >>"$WORK/tables.md"
  rm -f "$img"
}

# ---- part: e2e ----
part_e2e() {  # round
  [[ -n $SNAPSHOTCTL ]] || return 0
  local pool=$WORK/e2e.pool tsv=$WORK/e2e-r$1.tsv have=0 c first name=e2e ctl=$WORK/e2e.ctl.sock
  log "round $1 e2e: snapstored + snapshotctl up to $COUNT snapshots (load $(cut -d' ' -f1-3 /proc/loadavg))"
  rm -f "$tsv"
  "$SBENCH" prepare "$pool" --size 1G --snapshots 0 --spare "$(( COUNT * 64 ))K" >>"$WORK/e2e.log" ||
    die "prepare failed"
  SOCK[$name]=$WORK/e2e.sock
  for c in 1 100 1000 10000 100000; do
    (( c <= COUNT )) || break
    first=$(( c - 9 > 1 ? c - 9 : 1 ))
    if (( first - 1 > have )); then
      "$SBENCH" add "$pool" $(( first - 1 - have )) --start $(( have + 1 )) --prefix s \
        --writes-between 1 >>"$WORK/e2e.log" 2>&1 || die "snapshot_bench add failed"
    fi
    sync
    "$SNAPSTORED" --pool "$pool" --no-tcp --log-level warn --nbd-socket "${SOCK[$name]}" \
      --control-socket "$ctl" </dev/null >>"$WORK/e2e.log" 2>&1 &
    PID[$name]=$!
    wait_export "$name" $(( 1 << 30 )) "$WORK/e2e.log"
    time_window "$tsv" "$first" "$c" 262144 \
      "$PY -c 'import nbd,os; h=nbd.NBD(); h.connect_uri(\"$(uri "$name")\"); h.pwrite(os.urandom(4096), {off}); h.flush(); h.shutdown()'" \
      "$SNAPSHOTCTL --socket $ctl snapshot create origin s{n}" "$SNAPSHOTCTL --socket $ctl status" ||
      die "e2e window failed"
    stop_server "$name"
    have=$c
  done
  window_table "$tsv" "End to end: snapshotctl snapshot create, round $1 (load at the end $(cut -d' ' -f1-3 /proc/loadavg))" \
    "snapshotctl snapshot create" "snapshotctl status" 1 100 1000 10000 100000 >>"$WORK/tables.md"
  rm -f "$pool"
}

# ---- part: reclaim ----
part_reclaim() {  # round
  log "round $1 reclaim: $RSIZE (load $(cut -d' ' -f1-3 /proc/loadavg))"
  { echo "### Reclaim, round $1 (snapshot_bench reclaim --size $RSIZE; load at the start $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    "$SBENCH" reclaim "$WORK" --size "$(numfmt --from=iec "$RSIZE")" 2>>"$WORK/reclaim.log" ||
      die "snapshot_bench reclaim failed"
    echo; } >>"$WORK/tables.md"
}

log "work dir $WORK; parts ${PARTS[*]}; $ROUNDS round(s); load $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$WORK/tables.md"
for (( round = 1; round <= ROUNDS; round++ )); do
  for p in "${PARTS[@]}"; do "part_$p" "$round"; done
done
cat "$WORK/tables.md"
