#!/usr/bin/env bash
# snapshot-fio.sh: what snapshots cost the origin's I/O, through NBD with fio's nbd ioengine
# (issue 4, item 9). Two parts, each with its servers taking turns job by job in one run
# (the order rotates from job to job and round to round), so every figure is a ratio to a
# peer measured at the same time on the same loaded machine.
#
# Part "snapshots": 4k random read and write, qd1 and qd32, on the origin with 0, 100 and
#   10,000 snapshots present. Each pool is prepared offline by
#     snapshot_bench prepare POOL --size BENCH_SIZE --snapshots N --writes-between K
#   (origin fully written with random data, then N snapshots with K random 4k writes to
#   origin between consecutive ones, so they differ like periodic snapshots of a live
#   disk; origin ends equal to the newest snapshot, every block shared with it), and
#   served by  snapstored --pool POOL --no-tcp --nbd-socket SOCK --control-socket CTL.
#   Servers: pool-0snap (the baseline), pool-100snap, pool-10000snap, and a control,
#   pool-10000snap-deleted: the 10,000-snapshot pool with every snapshot then deleted and
#   reclaimed (snapshot_bench delete), so the same origin tree and data layout (origin's
#   blocks scattered by the writes between snapshots) without the snapshots.
#   Jobs (time based, BENCH_RUNTIME s each):
#     randread-4k-qd1    --rw=randread --bs=4k --iodepth=1
#     randread-4k-qd32   --rw=randread --bs=4k --iodepth=32
#     randwrite-4k-qd1   --rw=randwrite --bs=4k --iodepth=1
#     randwrite-4k-qd32  --rw=randwrite --bs=4k --iodepth=32
#   After every write job each server is stopped, its pool put back into the prepared
#   state offline (snapshot_bench rollback POOL origin snap-N: origin becomes a clone of
#   the newest snapshot again, the written tree is reclaimed; the pools without snapshots
#   only restart), and started again: every round sees the same pools.
#
# Part "first-write": the copy-on-write path. Origin of BENCH_FW_SIZE bytes fully written,
#   one snapshot taken, then 4k writes each into a different 64 KiB region still shared
#   with the snapshot: every region once, in random order, at a random 4k slot inside
#   the region (fio replays a generated iolog: fio's own random map does not keep
#   --blockalign=64k offsets apart). Servers, all under the same fio job:
#     snapstored-cow     pool prepared with 1 snapshot (snap-1); reset after every pass
#                        by snapshot_bench rollback POOL origin snap-1
#     snapstored-cow-alloc  the same, but the pool file's free space written with zeros
#                        after preparing (cp --sparse=never): a new pool file is sparse, so
#                        each redirected write first allocates file system blocks, which
#                        nbdkit-file's fully written file never does
#     snapstored-nosnap  the same pool without a snapshot (the same writes, no sharing)
#     nbdkit-file        nbdkit -U SOCK --foreground file FILE: plain 4k random writes
#                        (the baseline)
#     qemu-nbd-qcow2     qemu-nbd --persistent -k SOCK -f qcow2 -x origin IMG, IMG made
#                        by qemu-img convert -O qcow2 (64 KiB clusters, fully written),
#                        one internal snapshot (qemu-img snapshot -c snap-1); reset after
#                        every pass by qemu-img snapshot -a snap-1
#   Jobs: firstwrite-4k-qd1, firstwrite-4k-qd32 (--read_iolog=..., --iodepth=1 / 32),
#   each repeated BENCH_FW_PASSES times per round (a pass is short at qd32).
#   fio runs with --number_ios=REGIONS: without it fio 3.33 ends a replay by closing the
#   connection with the last few I/Os unsent or unanswered (and nbdkit 1.32 may then die
#   on an assertion in raw_send_socket); with it every region is written, once.
#
# Measured per job and server: IOPS, ratio to the part's baseline in the same round,
# server CPU µs per request (utime+stime of the server process, /proc/PID/stat), fio's
# completion latency p50 and p99, and the 1-minute load average when the job started.
#
# Environment (all optional):
#   BENCH_PARTS=snapshots,first-write   parts to run
#   BENCH_ROUNDS=1                     rounds; >1 adds a median table (min–max of ratios)
#   BENCH_RUNTIME=10                   seconds per time-based job (part snapshots)
#   BENCH_SIZE=1G                      origin size, part snapshots
#   BENCH_SNAPSHOTS="0 100 10000"      snapshot counts, part snapshots (first = baseline)
#   BENCH_DELETED_CONTROLS="10000"     counts that also get a -deleted control ("" = none)
#   BENCH_WRITES_BETWEEN=16            random 4k writes to origin between two snapshots
#   BENCH_JOBS=...                     part snapshots' jobs (default: the four above)
#   BENCH_FW_SIZE=2G                   origin size, part first-write (regions = size/64K)
#   BENCH_FW_QDS="1 32"                queue depths, part first-write
#   BENCH_FW_PASSES=4                  passes per round and job, part first-write (each
#                                      with every region once, the servers taking turns
#                                      pass by pass; qemu-nbd-qcow2 runs only the first,
#                                      which alone lasts minutes); a round's IOPS is its
#                                      passes' writes over their summed fio runtime
#   BENCH_FW_SERVERS=...               default: snapstored-cow snapstored-cow-alloc
#                                      snapstored-nosnap nbdkit-file qemu-nbd-qcow2
#   BENCH_SNAPSTORED=PATH              snapstored binary (default: build-bench, build, PATH)
#   BENCH_SNAPSHOT_BENCH=PATH          snapshot_bench binary (same search)
#   BENCH_SNAPSTORED_ARGS=             extra arguments for every snapstored
#   BENCH_TMPDIR=/var/tmp              where pools and images go (refused if tmpfs)
#   BENCH_OUTDIR=DIR                   keep fio JSON, logs, results.tsv and the tables
#
# Usage: bench/snapshot-fio.sh [--help | --report BENCH_OUTDIR/results.tsv]
#   (--report prints the tables of a kept run again, e.g. one cut short)
# Output: markdown tables on stdout (and in BENCH_OUTDIR/tables.md); progress on stderr.
set -euo pipefail

MODE=run REPORT_FILE=""
case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  --report) MODE=report REPORT_FILE=${2:?--report needs a results.tsv}; [[ -r $REPORT_FILE ]] || exit 2 ;;
  "") ;;
  *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

REPO=$(cd "$(dirname "$0")/.." && pwd)
LOG_TAG=snapshot-fio
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

read -r -a PARTS <<<"$(tr ',' ' ' <<<"${BENCH_PARTS:-snapshots first-write}")"
ROUNDS=${BENCH_ROUNDS:-1}
RUNTIME=${BENCH_RUNTIME:-10}
SIZE=${BENCH_SIZE:-1G}
read -r -a COUNTS <<<"${BENCH_SNAPSHOTS:-0 100 10000}"
read -r -a CONTROLS <<<"${BENCH_DELETED_CONTROLS-10000}"
WRITES_BETWEEN=${BENCH_WRITES_BETWEEN:-16}
ALL_JOBS=(randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd1 randwrite-4k-qd32)
read -r -a JOBS <<<"$(tr ',' ' ' <<<"${BENCH_JOBS:-${ALL_JOBS[*]}}")"
FW_SIZE=${BENCH_FW_SIZE:-2G}
read -r -a FW_QDS <<<"${BENCH_FW_QDS:-1 32}"
FW_PASSES=${BENCH_FW_PASSES:-4}
read -r -a FW_SERVERS <<<"$(tr ',' ' ' <<<"${BENCH_FW_SERVERS:-snapstored-cow snapstored-cow-alloc snapstored-nosnap nbdkit-file qemu-nbd-qcow2}")"
read -r -a SNAP_EXTRA <<<"${BENCH_SNAPSTORED_ARGS:-}"
TMPBASE=${BENCH_TMPDIR:-/var/tmp}
OUTDIR=${BENCH_OUTDIR:-}

# report RESULTS.tsv [PREPARED.log]: the markdown tables (also: --report on a kept run).
report() {
  "$PY" - "$1" "$TICK" "pool-${COUNTS[0]}snap" "${2:-/dev/null}" <<'EOF'
import csv, statistics, sys
path, tick, base_snap, prepared = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = list(csv.DictReader(open(path), delimiter="\t"))
baseline = {"snapshots": base_snap, "first-write": "nbdkit-file"}
res = {}
order = {}
for r in rows:
    part, job, srv = r["part"], r["job"], r["server"]
    order.setdefault(part, {}).setdefault(job, [])
    if srv not in order[part][job]:
        order[part][job].append(srv)
    key = (part, int(r["round"].split(".")[0]), job, srv)  # "round.pass": passes add up
    if r["status"] != "ok":
        res[key] = {"status": r["status"]}; continue
    acc = res.setdefault(key, dict(reqs=0, ms=0, ticks=0, p50s=[], p99s=[], load=float(r["load1"])))
    if "reqs" not in acc:
        continue  # a failed pass spoils the round
    acc["reqs"] += int(r["requests"]); acc["ms"] += int(r["runtime_ms"]); acc["ticks"] += int(r["cpu_ticks"])
    acc["p50s"].append(float(r["clat_p50_us"] or "nan")); acc["p99s"].append(float(r["clat_p99_us"] or "nan"))
for acc in res.values():
    if "reqs" in acc:
        acc["iops"] = acc["reqs"] * 1000 / acc["ms"] if acc["ms"] else 0
        acc["cpu"] = acc["ticks"] * 1e6 / tick / acc["reqs"] if acc["reqs"] else 0
        acc["p50"], acc["p99"] = statistics.median(acc["p50s"]), statistics.median(acc["p99s"])

def ratio(part, rnd, job, srv):
    a, b = res.get((part, rnd, job, srv), {}), res.get((part, rnd, job, baseline[part]), {})
    return a["iops"] / b["iops"] if "iops" in a and b.get("iops") else None

for part in order:
    rounds = sorted({k[1] for k in res if k[0] == part})
    servers = []
    for job in order[part]:
        for s in order[part][job]:
            if s not in servers: servers.append(s)
    loads = [v["load"] for k, v in res.items() if k[0] == part and "load" in v]
    print("## Part %s: %d round(s); 1-minute load average at job start: median %.1f (%.1f–%.1f)\n"
          % (part, len(rounds), statistics.median(loads), min(loads), max(loads)) if loads else "## Part %s\n" % part)
    head = ("| job | server | IOPS | ratio to %s | server CPU µs/req | clat p50 µs | clat p99 µs |\n"
            "|---|---|--:|--:|--:|--:|--:|" % baseline[part])
    tables = [("Round %d" % r, [r]) for r in rounds]
    if len(rounds) > 1:
        tables.append(("Median of %d rounds (ratio: median of the per-round ratios, min–max)" % len(rounds), rounds))
    for title, rs in tables:
        print("### %s\n\n%s" % (title, head))
        for job in order[part]:
            for s in servers:
                vals = [res[(part, r, job, s)] for r in rs if "iops" in res.get((part, r, job, s), {})]
                if not vals:
                    print("| %s | %s | failed | | | | |" % (job, s)); continue
                med = lambda k: statistics.median(v[k] for v in vals)
                rts = [x for x in (ratio(part, r, job, s) for r in rs) if x is not None]
                rt = "—"
                if rts:
                    rt = "%.2fx" % statistics.median(rts)
                    if len(rts) > 1 and s != baseline[part]:
                        rt += " (%.2f–%.2f)" % (min(rts), max(rts))
                if len(vals) < len(rs):
                    rt += " [%d of %d rounds]" % (len(vals), len(rs))
                print("| %s | %s | %.0f | %s | %.1f | %.1f | %.1f |" % (
                    job, s, med("iops"), rt, med("cpu"), med("p50"), med("p99")))
        print()
try:
    lines = open(prepared).read().strip()
    if lines:
        print("### Prepared pools and images\n\n```\n%s\n```" % lines)
except OSError:
    pass
EOF
}
if [[ $MODE == report ]]; then report "$REPORT_FILE" "$(dirname "$REPORT_FILE")/prepared.log"; exit 0; fi

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
[[ $RUNTIME =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNTIME must be a positive integer"
[[ $FW_PASSES =~ ^[1-9][0-9]*$ ]] || die "BENCH_FW_PASSES must be a positive integer"
BYTES=$(numfmt --from=iec "$SIZE") || die "bad BENCH_SIZE"
FW_BYTES=$(numfmt --from=iec "$FW_SIZE") || die "bad BENCH_FW_SIZE"
(( BYTES % 65536 == 0 && FW_BYTES % 65536 == 0 )) || die "sizes must be multiples of 64K"
declare -A JOB_ARGS=(
  [randread-4k-qd1]="--rw=randread --bs=4k --iodepth=1"
  [randread-4k-qd32]="--rw=randread --bs=4k --iodepth=32"
  [randwrite-4k-qd1]="--rw=randwrite --bs=4k --iodepth=1"
  [randwrite-4k-qd32]="--rw=randwrite --bs=4k --iodepth=32"
)
for j in "${JOBS[@]}"; do [[ -n ${JOB_ARGS[$j]:-} ]] || die "unknown job '$j'"; done
for p in "${PARTS[@]}"; do [[ $p == snapshots || $p == first-write ]] || die "unknown part '$p'"; done

need fio "apt-get install fio"
need nbdinfo "apt-get install libnbd-bin"
fio --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd ioengine"
SNAPSTORED=$(find_binary "${BENCH_SNAPSTORED:-}" snapstored)
SBENCH=$(find_binary "${BENCH_SNAPSHOT_BENCH:-}" snapshot_bench bench)
if [[ " ${PARTS[*]} " == *" first-write "* ]]; then
  for s in "${FW_SERVERS[@]}"; do
    case $s in
      nbdkit-file) need nbdkit "apt-get install nbdkit" ;;
      qemu-nbd-qcow2) need qemu-nbd "apt-get install qemu-utils"; need qemu-img "apt-get install qemu-utils" ;;
      snapstored-cow|snapstored-cow-alloc|snapstored-nosnap) ;;
      *) die "unknown first-write server '$s'" ;;
    esac
  done
fi

WORK=$(make_workdir "$TMPBASE")
FIO_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $FIO_PID ]]; then kill -TERM "$FIO_PID" 2>/dev/null || true; wait "$FIO_PID" 2>/dev/null || true; fi
  stop_all
  if [[ -n $OUTDIR && -d $WORK ]]; then
    mkdir -p "$OUTDIR"
    cp -r "$WORK"/*.tsv "$WORK"/*.log "$WORK"/*.md "$WORK"/fio "$OUTDIR"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM
mkdir -p "$WORK/fio"

# ---- servers ----
declare -A KIND FILE RESET_TO EXPORT_BYTES DIRTY
start_server() {
  local name=$1 sock=$WORK/$1.sock
  SOCK[$name]=$sock
  rm -f "$sock"
  case ${KIND[$name]} in
    pool)
      "$SNAPSTORED" --pool "${FILE[$name]}" --no-tcp --log-level warn --nbd-socket "$sock" \
        --control-socket "$WORK/$name.ctl.sock" "${SNAP_EXTRA[@]}" </dev/null >>"$WORK/$name.log" 2>&1 & ;;
    nbdkit)
      nbdkit -U "$sock" --foreground file "${FILE[$name]}" </dev/null >>"$WORK/$name.log" 2>&1 & ;;
    qemu)
      qemu-nbd --persistent --socket="$sock" --format=qcow2 --export-name=origin "${FILE[$name]}" \
        </dev/null >>"$WORK/$name.log" 2>&1 & ;;
  esac
  PID[$name]=$!
  wait_export "$name" "${EXPORT_BYTES[$name]}" "$WORK/$name.log"
}

# Back to the prepared state: stop, undo the writes offline, start again.
reset_server() {
  local name=$1
  stop_server "$name"
  case ${KIND[$name]} in
    pool) [[ -z ${RESET_TO[$name]:-} ]] ||
            "$SBENCH" rollback "${FILE[$name]}" origin "${RESET_TO[$name]}" >>"$WORK/$name.log" 2>&1 ||
            die "rollback of $name failed (see $name.log)" ;;
    qemu) qemu-img snapshot -a "${RESET_TO[$name]}" "${FILE[$name]}" >>"$WORK/$name.log" 2>&1 ||
            die "qemu-img snapshot -a on $name failed" ;;
  esac
  DIRTY[$name]=0
  start_server "$name"
}

prepare_pool() {  # name bytes snapshots
  FILE[$1]=$WORK/$1.pool KIND[$1]=pool EXPORT_BYTES[$1]=$2
  if (( $3 > 0 )); then RESET_TO[$1]=snap-$3; fi
  log "preparing $1: $(numfmt --to=iec "$2") origin, $3 snapshots, $WRITES_BETWEEN writes between"
  "$SBENCH" prepare "${FILE[$1]}" --size "$2" --snapshots "$3" --writes-between "$WRITES_BETWEEN" \
    >"$WORK/$1.prepare.log" 2>"$WORK/$1.prepare.err" || { cat "$WORK/$1.prepare.err" >&2; die "prepare $1 failed"; }
  sed "s|^|$1: |; s|$WORK/||" "$WORK/$1.prepare.log" >>"$WORK/prepared.log"
}

# ---- one fio run ----
RESULTS=$WORK/results.tsv
printf 'part\tround\tjob\tserver\tstatus\tiops\tmib_s\trequests\tclat_p50_us\tclat_p99_us\truntime_ms\tcpu_ticks\tload1\n' >"$RESULTS"

run_fio() {  # part round[.pass] job server fio-args...
  local part=$1 round=$2 job=$3 server=$4; shift 4
  local out=$WORK/fio/$part-r$round-$job-$server.json rc=0 before after line load
  alive "$server" || die "$server is not running before $job"
  timeout 300 sync || true
  load=$(loadavg)
  before=$(cpu_ticks "$server")
  timeout -k 5 1800 fio --name="$job" --ioengine=nbd --uri="$(uri "$server")" "$@" \
    --output-format=json --output="$out" </dev/null >"$out.stdout" 2>&1 &
  FIO_PID=$!
  wait "$FIO_PID" || rc=$?
  FIO_PID=""
  if ! alive "$server"; then  # recorded; the server is started again for the next job
    tail -n 5 "$WORK/$server.log" >&2
    log "$server died during $job (fio exit $rc); restarting it"
    printf '%s\t%s\t%s\t%s\tdied\t\t\t\t\t\t\t\t%s\n' "$part" "$round" "$job" "$server" "$load" >>"$RESULTS"
    unset "PID[$server]"
    reset_server "$server"
    return
  fi
  after=$(cpu_ticks "$server")
  if (( rc != 0 )); then
    tail -n 5 "$out.stdout" >&2 || true
    line="fio-exit-$rc"
  else
    line=$(fio_summary "$out") || line=parse-error
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$round" "$job" "$server" "$line" "$(( after - before ))" \
    "$load" >>"$RESULTS"
  log "$part round $round $job $server: $(cut -f1-3 <<<"$line" | tr '\t' ' ') (load $load)"
}

rotated() {  # offset names...: the names, starting at offset (mod count)
  local off=$1; shift
  local n=$# k names=("$@")
  for (( k = 0; k < n; k++ )); do echo "${names[$(( (k + off) % n ))]}"; done
}

# ---- part: snapshots ----
part_snapshots() {
  local servers=() c s round ji job
  for c in "${COUNTS[@]}"; do
    s=pool-${c}snap
    servers+=("$s")
    prepare_pool "$s" "$BYTES" "$c"
  done
  for c in "${CONTROLS[@]}"; do
    s=pool-${c}snap-deleted
    servers+=("$s")
    prepare_pool "$s" "$BYTES" "$c"
    "$SBENCH" delete "${FILE[$s]}" "$c" >>"$WORK/$s.prepare.log" 2>>"$WORK/$s.prepare.err" ||
      die "deleting the snapshots of $s failed"
    RESET_TO[$s]=""
    sed "s|^|$s: |; s|$WORK/||" <(tail -n 2 "$WORK/$s.prepare.log") >>"$WORK/prepared.log"
  done
  sync
  for s in "${servers[@]}"; do start_server "$s"; log "$s up (pid ${PID[$s]})"; done
  for (( round = 1; round <= ROUNDS; round++ )); do
    ji=0
    for job in "${JOBS[@]}"; do
      while read -r s; do
        if [[ ${DIRTY[$s]:-0} == 1 ]]; then reset_server "$s"; fi
        # shellcheck disable=SC2086  # JOB_ARGS holds several words on purpose
        run_fio snapshots "$round" "$job" "$s" ${JOB_ARGS[$job]} --runtime="$RUNTIME" --time_based
        if [[ $job == randwrite* ]]; then DIRTY[$s]=1; fi
      done < <(rotated $(( ji + round - 1 )) "${servers[@]}")
      ji=$(( ji + 1 ))
    done
  done
  for s in "${servers[@]}"; do stop_server "$s"; rm -f "${FILE[$s]}"; done
}

# ---- part: first-write ----
make_replay_log() {  # file bytes seed: every 64 KiB region once, random order and slot
  "$PY" - "$@" <<'EOF'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
regions = list(range(size // 65536))
rng.shuffle(regions)
offs = [r * 65536 + rng.randrange(16) * 4096 for r in regions]
with open(path, "w") as f:
    f.write("fio version 2 iolog\nnbd add\nnbd open\n")
    for o in offs:
        f.write("nbd write %d 4096\n" % o)
EOF
}

part_first_write() {
  local s round qi qd job pass
  log "first-write: $(numfmt --to=iec "$FW_BYTES") origin, $(( FW_BYTES / 65536 )) regions of 64 KiB"
  head -c "$FW_BYTES" /dev/urandom >"$WORK/base.img"
  for s in "${FW_SERVERS[@]}"; do
    case $s in
      snapstored-cow) prepare_pool "$s" "$FW_BYTES" 1 ;;
      snapstored-cow-alloc)
        prepare_pool "$s" "$FW_BYTES" 1
        cp --sparse=never "${FILE[$s]}" "${FILE[$s]}.full" && mv "${FILE[$s]}.full" "${FILE[$s]}"
        echo "$s: $(du -h --apparent-size "${FILE[$s]}" | cut -f1) apparent, $(du -h "${FILE[$s]}" | cut -f1) allocated" >>"$WORK/prepared.log" ;;
      snapstored-nosnap) prepare_pool "$s" "$FW_BYTES" 0 ;;
      nbdkit-file)
        FILE[$s]=$WORK/$s.img KIND[$s]=nbdkit EXPORT_BYTES[$s]=$FW_BYTES
        cp --reflink=never --sparse=never "$WORK/base.img" "${FILE[$s]}" ;;
      qemu-nbd-qcow2)
        FILE[$s]=$WORK/$s.qcow2 KIND[$s]=qemu EXPORT_BYTES[$s]=$FW_BYTES RESET_TO[$s]=snap-1
        qemu-img convert -f raw -O qcow2 "$WORK/base.img" "${FILE[$s]}"
        qemu-img snapshot -c snap-1 "${FILE[$s]}"
        echo "$s: $(qemu-img info "${FILE[$s]}" | grep -E 'cluster_size|disk size' | tr '\n' ' ')" >>"$WORK/prepared.log" ;;
    esac
  done
  rm -f "$WORK/base.img"
  sync
  for s in "${FW_SERVERS[@]}"; do start_server "$s"; log "$s up (pid ${PID[$s]})"; done
  for (( round = 1; round <= ROUNDS; round++ )); do
    qi=0
    for qd in "${FW_QDS[@]}"; do
      job=firstwrite-4k-qd$qd
      for (( pass = 1; pass <= FW_PASSES; pass++ )); do
        make_replay_log "$WORK/replay.log" "$FW_BYTES" "$round$qd$pass"
        while read -r s; do
          # qemu-nbd's passes last minutes: one per round is long enough to measure
          if (( pass > 1 )) && [[ $s == qemu-nbd-qcow2 ]]; then continue; fi
          run_fio first-write "$round.$pass" "$job" "$s" --read_iolog="$WORK/replay.log" \
            --number_ios=$(( FW_BYTES / 65536 )) --iodepth="$qd"
          if [[ -n ${RESET_TO[$s]:-} ]]; then reset_server "$s"; fi
        done < <(rotated $(( qi + round + pass - 2 )) "${FW_SERVERS[@]}")
      done
      qi=$(( qi + 1 ))
    done
  done
  for s in "${FW_SERVERS[@]}"; do stop_server "$s"; rm -f "${FILE[$s]}"; done
}

log "work dir $WORK; parts: ${PARTS[*]}; ${ROUNDS} round(s); load $(cut -d' ' -f1-3 /proc/loadavg)"
log "snapstored $SNAPSTORED; snapshot_bench $SBENCH"
for p in "${PARTS[@]}"; do
  case $p in
    snapshots) part_snapshots ;;
    first-write) part_first_write ;;
  esac
done

# ---- report ----
report "$RESULTS" "$WORK/prepared.log" >"$WORK/tables.md"
cat "$WORK/tables.md"
