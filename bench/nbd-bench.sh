#!/usr/bin/env bash
# nbd-bench.sh: compare snapstored's raw backend with nbdkit (file and memory plugins)
# through fio's nbd ioengine, on identical pre-filled data.
#
# Each server gets its own private Unix socket and its own copy of the same random data:
#   snapstored     snapstored --pool FILE --backend raw --no-tcp --log-level warn
#   nbdkit-file    nbdkit -U SOCK --foreground file FILE
#   nbdkit-memory  nbdkit -U SOCK --foreground memory SIZE   (filled with nbdcopy)
# For every job the servers run one after the other (the order rotates from job to job
# and round to round), so background noise is shared out fairly.  Around each job the
# server's CPU time (utime+stime of the whole process, /proc/PID/stat) is sampled, giving
# server CPU microseconds per NBD request (reads + writes + flushes).
#
# Environment (all optional):
#   BENCH_RUNTIME=10        seconds per fio job
#   BENCH_SIZE=1G           export size (any size `numfmt --from=iec` reads)
#   BENCH_ROUNDS=1          run the whole suite this many times; >1 adds a median table
#   BENCH_JOBS=...          jobs to run, space or comma separated (default: all, see --list)
#   BENCH_SERVERS=...       servers, from: snapstored nbdkit-file nbdkit-memory
#   BENCH_SNAPSTORED=PATH   snapstored binary (default: build-bench, then build, then PATH)
#   BENCH_SNAPSTORED_ARGS=  extra arguments for snapstored (e.g. "--threads 2")
#   BENCH_TMPDIR=/var/tmp   where the data files go (must not be tmpfs: refused if it is)
#   BENCH_OUTDIR=DIR        keep fio JSON, server logs, results.tsv and the tables here
#   BENCH_PERF=auto         1/0/auto: also count the server's context switches per request
#                           with `perf stat -e context-switches -p PID` (auto: if perf works)
#   BENCH_KEEP_SYNC=0       1: skip the `sync` before each job (it drains dirty pages left
#                           by the previous job so they do not land on the next server)
#
# Usage: bench/nbd-bench.sh [--list | --help]
# Output: markdown tables on stdout; progress on stderr.
set -euo pipefail

ALL_JOBS=(randread-4k-qd1 randread-4k-qd32 randwrite-4k-qd1 randwrite-4k-qd32
          seqread-1m-qd8 seqwrite-1m-qd8 randwrite-4k-qd1-flush)
declare -A JOB_ARGS=(
  [randread-4k-qd1]="--rw=randread --bs=4k --iodepth=1"
  [randread-4k-qd32]="--rw=randread --bs=4k --iodepth=32"
  [randwrite-4k-qd1]="--rw=randwrite --bs=4k --iodepth=1"
  [randwrite-4k-qd32]="--rw=randwrite --bs=4k --iodepth=32"
  [seqread-1m-qd8]="--rw=read --bs=1M --iodepth=8"
  [seqwrite-1m-qd8]="--rw=write --bs=1M --iodepth=8"
  # each 4k write is followed by an NBD flush (fio's fsync=1 -> NBD_CMD_FLUSH)
  [randwrite-4k-qd1-flush]="--rw=randwrite --bs=4k --iodepth=1 --fsync=1"
)
ALL_SERVERS=(snapstored nbdkit-file nbdkit-memory)
BASELINE=nbdkit-file

case "${1:-}" in
  --list) printf '%s\n' "${ALL_JOBS[@]}"; exit 0 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

RUNTIME=${BENCH_RUNTIME:-10}
SIZE=${BENCH_SIZE:-1G}
ROUNDS=${BENCH_ROUNDS:-1}
TMPBASE=${BENCH_TMPDIR:-/var/tmp}
OUTDIR=${BENCH_OUTDIR:-}
KEEP_SYNC=${BENCH_KEEP_SYNC:-0}
PERF=${BENCH_PERF:-auto}
read -r -a JOBS <<<"$(tr ',' ' ' <<<"${BENCH_JOBS:-${ALL_JOBS[*]}}")"
read -r -a SERVERS <<<"$(tr ',' ' ' <<<"${BENCH_SERVERS:-${ALL_SERVERS[*]}}")"
read -r -a SNAP_EXTRA <<<"${BENCH_SNAPSTORED_ARGS:-}"
PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3
REPO=$(cd "$(dirname "$0")/.." && pwd)

log() { printf '[nbd-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $RUNTIME =~ ^[0-9]+$ && $RUNTIME -gt 0 ]] || die "BENCH_RUNTIME must be a positive integer"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -gt 0 ]] || die "BENCH_ROUNDS must be a positive integer"
BYTES=$(numfmt --from=iec "$SIZE" 2>/dev/null) || die "bad BENCH_SIZE '$SIZE'"
(( BYTES >= 1048576 && BYTES % 4096 == 0 )) || die "BENCH_SIZE must be >= 1M and a multiple of 4k"
for j in "${JOBS[@]}"; do [[ -n ${JOB_ARGS[$j]:-} ]] || die "unknown job '$j' (see --list)"; done
for s in "${SERVERS[@]}"; do
  [[ " ${ALL_SERVERS[*]} " == *" $s "* ]] || die "unknown server '$s' (${ALL_SERVERS[*]})"
done
(( ${#JOBS[@]} > 0 && ${#SERVERS[@]} > 0 )) || die "nothing to run"

need() { command -v "$1" >/dev/null || die "$1 is not installed ($2)"; }
need fio "apt-get install fio"
need timeout coreutils
for s in "${SERVERS[@]}"; do
  case $s in
    nbdkit-*) need nbdkit "apt-get install nbdkit" ;;
  esac
done
[[ " ${SERVERS[*]} " == *" nbdkit-memory "* ]] && need nbdcopy "apt-get install libnbd-bin"
need nbdinfo "apt-get install libnbd-bin"
fio --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd ioengine"
if [[ $PERF == auto ]]; then
  PERF=0
  if command -v perf >/dev/null &&
     perf stat -x, -e context-switches -o /dev/null true >/dev/null 2>&1; then PERF=1; fi
elif [[ $PERF == 1 ]]; then
  need perf "apt-get install linux-perf"
fi

SNAPSTORED=""
if [[ " ${SERVERS[*]} " == *" snapstored "* ]]; then
  if [[ -n ${BENCH_SNAPSTORED:-} ]]; then SNAPSTORED=$BENCH_SNAPSTORED
  elif [[ -x $REPO/build-bench/src/snapstored ]]; then SNAPSTORED=$REPO/build-bench/src/snapstored
  elif [[ -x $REPO/build/src/snapstored ]]; then SNAPSTORED=$REPO/build/src/snapstored
  else SNAPSTORED=$(command -v snapstored || true)
  fi
  [[ -n $SNAPSTORED && -x $SNAPSTORED ]] || die "no snapstored binary (set BENCH_SNAPSTORED)"
fi

mkdir -p "$TMPBASE"
[[ $(stat -f -c %T "$TMPBASE") != tmpfs ]] || die "$TMPBASE is tmpfs; set BENCH_TMPDIR to a disk"
WORK=$(mktemp -d "$TMPBASE/nbd-bench.XXXXXX")
declare -A PID SOCK
FIO_PID="" PERF_PID=""
TICK=$(getconf CLK_TCK)

stop_server() {  # name: SIGTERM, bounded wait, then SIGKILL
  local name=$1 pid=${PID[$1]:-}
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM for 10 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  unset "PID[$name]"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n ${PERF_PID:-} ]]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
  fi
  if [[ -n ${FIO_PID:-} ]]; then  # the `timeout` wrapper: it passes SIGTERM on to fio
    kill -TERM "$FIO_PID" 2>/dev/null || true
    wait "$FIO_PID" 2>/dev/null || true
  fi
  for s in "${!PID[@]}"; do stop_server "$s"; done
  if [[ -n $OUTDIR && -d $WORK ]]; then
    mkdir -p "$OUTDIR"
    cp -r "$WORK"/fio "$WORK"/*.log "$WORK"/results.tsv "$WORK"/tables.md "$OUTDIR"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

uri() { echo "nbd+unix:///origin?socket=${SOCK[$1]}"; }

alive() {  # the server process exists and is not a zombie
  local pid=${PID[$1]:-} state
  [[ -n $pid && -r /proc/$pid/stat ]] || return 1
  state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

cpu_ticks() {  # utime+stime of the whole process (all threads), in clock ticks
  local f
  read -r -a f <<<"$(sed 's/.*) //' "/proc/${PID[$1]}/stat")"
  echo $(( f[11] + f[12] ))
}

start_server() {
  local name=$1 sock=$WORK/$1.sock
  SOCK[$name]=$sock
  case $name in
    snapstored)
      "$SNAPSTORED" --pool "$WORK/snapstored.img" --backend raw --no-tcp --log-level warn \
        --nbd-socket "$sock" --control-socket "$WORK/snapstored.ctl.sock" "${SNAP_EXTRA[@]}" \
        </dev/null >"$WORK/$name.log" 2>&1 &
      ;;
    nbdkit-file)
      nbdkit -U "$sock" --foreground file "$WORK/nbdkit-file.img" </dev/null >"$WORK/$name.log" 2>&1 &
      ;;
    nbdkit-memory)
      nbdkit -U "$sock" --foreground memory "$BYTES" </dev/null >"$WORK/$name.log" 2>&1 &
      ;;
  esac
  PID[$name]=$!
  local size=""
  for _ in $(seq 100); do  # up to ~20 s
    alive "$name" || { cat "$WORK/$name.log" >&2; die "$name exited during start-up"; }
    if [[ -S $sock ]]; then
      size=$(timeout 5 nbdinfo --size "$(uri "$name")" 2>/dev/null) && break
    fi
    sleep 0.2
  done
  [[ $size == "$BYTES" ]] || die "$name did not come up with a $BYTES-byte export (got '${size}')"
  log "$name up (pid ${PID[$name]})"
}

# ---- data ----
log "work dir $WORK; $SIZE of random data; ${RUNTIME}s per job; ${ROUNDS} round(s)"
log "jobs: ${JOBS[*]}"
log "servers: ${SERVERS[*]}${SNAPSTORED:+ (snapstored = $SNAPSTORED ${SNAP_EXTRA[*]})}"
head -c "$BYTES" /dev/urandom >"$WORK/base.img"
for s in "${SERVERS[@]}"; do
  case $s in
    snapstored|nbdkit-file) cp --reflink=never --sparse=never "$WORK/base.img" "$WORK/$s.img" ;;
  esac
done
for s in "${SERVERS[@]}"; do start_server "$s"; done
if [[ -n ${PID[nbdkit-memory]:-} ]]; then
  log "filling nbdkit-memory with nbdcopy"
  timeout 600 nbdcopy "$WORK/base.img" "$(uri nbdkit-memory)" || die "nbdcopy into nbdkit-memory failed"
fi
rm -f "$WORK/base.img"
sync

# ---- runs ----
mkdir -p "$WORK/fio"
RESULTS=$WORK/results.tsv
printf 'round\tjob\tserver\tstatus\tiops\tmib_s\trequests\tcpu_ticks\tctx_switches\n' >"$RESULTS"
FIO_TIMEOUT=$(( RUNTIME + 60 ))

run_one() {  # round job server
  local round=$1 job=$2 server=$3 out=$WORK/fio/r$1-$2-$3.json
  if ! alive "$server"; then
    log "$server is not running; skipping $job"
    printf '%s\t%s\t%s\tdead\t\t\t\t\t\n' "$round" "$job" "$server" >>"$RESULTS"
    return
  fi
  [[ $KEEP_SYNC == 1 ]] || timeout 300 sync || true
  local before after rc=0 switches=""
  if [[ $PERF == 1 ]]; then
    perf stat -x, -e context-switches -p "${PID[$server]}" -o "$out.perf" </dev/null >/dev/null 2>&1 &
    PERF_PID=$!
    sleep 0.3  # let it attach
  fi
  before=$(cpu_ticks "$server")
  # shellcheck disable=SC2086  # JOB_ARGS holds several words on purpose
  # In the background and waited for, so that a signal to this script is handled at once.
  timeout -k 5 "$FIO_TIMEOUT" fio --name="$job" --ioengine=nbd --uri="$(uri "$server")" \
    ${JOB_ARGS[$job]} --runtime="$RUNTIME" --time_based --output-format=json \
    --output="$out" </dev/null >"$out.stdout" 2>&1 &
  FIO_PID=$!
  wait "$FIO_PID" || rc=$?
  FIO_PID=""
  if [[ -n $PERF_PID ]]; then
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
    switches=$(awk -F, '$3 == "context-switches" { print $1 }' "$out.perf" 2>/dev/null || true)
    [[ $switches =~ ^[0-9]+$ ]] || switches=""
  fi
  if ! alive "$server"; then
    log "$server died during $job (fio exit $rc); see its log"
    tail -n 20 "$WORK/$server.log" >&2 || true
    printf '%s\t%s\t%s\tdied\t\t\t\t\t\n' "$round" "$job" "$server" >>"$RESULTS"
    return
  fi
  after=$(cpu_ticks "$server")
  if (( rc != 0 )); then
    log "fio failed on $server/$job (exit $rc)"; tail -n 5 "$out.stdout" >&2 || true
    printf '%s\t%s\t%s\tfio-exit-%s\t\t\t\t\t\n' "$round" "$job" "$server" "$rc" >>"$RESULTS"
    return
  fi
  local line
  line=$("$PY" - "$out" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
start = text.find("{")  # fio may print notes before the JSON
job = json.loads(text[start:])["jobs"][0]
if job.get("error"):
    print("fio-error-%d" % job["error"]); sys.exit()
iops = job["read"]["iops"] + job["write"]["iops"]
mib = (job["read"]["bw_bytes"] + job["write"]["bw_bytes"]) / 1048576
reqs = job["read"]["total_ios"] + job["write"]["total_ios"] + job.get("sync", {}).get("total_ios", 0)
print("ok\t%.1f\t%.2f\t%d" % (iops, mib, reqs))
EOF
) || line=$'parse-error\t\t\t'
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$job" "$server" "$line" "$(( after - before ))" "$switches" >>"$RESULTS"
  log "round $round $job $server: $(cut -f1-3 <<<"$line" | tr '\t' ' ') (cpu $(( after - before )) ticks)"
}

n=${#SERVERS[@]}
for (( round = 1; round <= ROUNDS; round++ )); do
  ji=0
  for job in "${JOBS[@]}"; do
    for (( k = 0; k < n; k++ )); do
      run_one "$round" "$job" "${SERVERS[$(( (k + ji + round - 1) % n ))]}"
    done
    ji=$(( ji + 1 ))
  done
done

# ---- report ----
"$PY" - "$RESULTS" "$TICK" "$BASELINE" "${JOBS[*]}" "${SERVERS[*]}" >"$WORK/tables.md" <<'EOF'
import csv, statistics, sys
path, tick, baseline = sys.argv[1], int(sys.argv[2]), sys.argv[3]
jobs, servers = sys.argv[4].split(), sys.argv[5].split()
rows = list(csv.DictReader(open(path), delimiter="\t"))
rounds = sorted({int(r["round"]) for r in rows})
res = {}
for r in rows:
    key = (int(r["round"]), r["job"], r["server"])
    if r["status"] == "ok":
        reqs = int(r["requests"])
        cpu_us = int(r["cpu_ticks"]) * 1e6 / tick / reqs if reqs else float("nan")
        sw = r.get("ctx_switches") or ""
        res[key] = dict(iops=float(r["iops"]), mib=float(r["mib_s"]), cpu=cpu_us,
                        sw=int(sw) / reqs if sw and reqs else None)
    else:
        res[key] = dict(status=r["status"])

def ratio(rnd, job, server):
    a, b = res.get((rnd, job, server), {}), res.get((rnd, job, baseline), {})
    if "iops" in a and b.get("iops"):
        return a["iops"] / b["iops"]
    return None

def fmt(x, spec):
    return "—" if x is None else format(x, spec)

with_sw = any(v.get("sw") is not None for v in res.values())
head = "| job | server | IOPS | MiB/s | ratio to %s | server CPU µs/req |" % baseline
head += " server ctx switches/req |" if with_sw else ""
head += "\n|---|---|--:|--:|--:|--:|" + ("--:|" if with_sw else "")

def sw_cell(x):
    return (" %s |" % fmt(x, ".2f")) if with_sw else ""
for rnd in rounds:
    print("### Round %d\n\n%s" % (rnd, head))
    for job in jobs:
        for s in servers:
            v = res.get((rnd, job, s), {"status": "missing"})
            if "iops" not in v:
                print("| %s | %s | %s | | | |" % (job, s, v["status"]))
                continue
            rt = ratio(rnd, job, s)
            print("| %s | %s | %.0f | %.1f | %s | %.1f |%s" % (
                job, s, v["iops"], v["mib"], fmt(rt, ".2f") + ("x" if rt else ""), v["cpu"],
                sw_cell(v.get("sw"))))
    print()
if len(rounds) > 1:
    print("### Median of %d rounds (ratio: median, with min–max over rounds)\n\n%s" % (len(rounds), head))
    for job in jobs:
        for s in servers:
            vals = [res[(r, job, s)] for r in rounds if "iops" in res.get((r, job, s), {})]
            if not vals:
                print("| %s | %s | no result | | | |" % (job, s)); continue
            med = lambda k: statistics.median(v[k] for v in vals)
            rts = [x for x in (ratio(r, job, s) for r in rounds) if x is not None]
            rtxt = "—"
            if rts:
                rtxt = "%.2fx" % statistics.median(rts)
                if s != baseline:
                    rtxt += " (%.2f–%.2f)" % (min(rts), max(rts))
            sws = [v["sw"] for v in vals if v.get("sw") is not None]
            print("| %s | %s | %.0f | %.1f | %s | %.1f |%s" % (
                job, s, med("iops"), med("mib"), rtxt, med("cpu"),
                sw_cell(statistics.median(sws) if sws else None)))
    print()
EOF
cat "$WORK/tables.md"
