#!/usr/bin/env bash
# nbd-bench.sh: compare snapstored (raw and pool backends) with nbdkit (file and memory
# plugins) through fio's nbd ioengine, on identical pre-filled data.
#
# Each server gets its own private Unix socket and its own copy of the same random data:
#   snapstored       snapstored --pool FILE --backend raw --no-tcp --log-level warn
#   snapstored-pool  snapstored format POOL --size SIZE (volume 'origin' of SIZE bytes in a
#                    pool file of its own default size: SIZE plus room for metadata), then
#                    snapstored --pool POOL --backend pool --no-tcp --log-level warn,
#                    filled with `nbdcopy --flush`
#   snapstored-pool-spare   the same origin in a bigger pool: format --size SIZE+SPARE
#                    --origin-size SIZE (BENCH_POOL_SPARE), so that overwrites find free
#                    blocks without forcing a commit (not in the default set)
#   snapstored-pool[-spare]-16k (or -4k, -64k, any 4k..1m): the same with --block-size 16K
#                    (not in the default set; for comparing data block sizes)
#   snapstored-pool[-spare]-sparse[-16k]: the same with a sparse pool file even when
#                    BENCH_POOL_PREALLOC=1 (for comparing the two in one run)
#   snapstored-pool...-base: any pool server above, formatted and served by another
#                    snapstored binary (BENCH_SNAPSTORED_BASE), to compare two builds in
#                    one run (an A/B of a change against the commit before it)
#   nbdkit-file      nbdkit -U SOCK --foreground file FILE
#   nbdkit-memory    nbdkit -U SOCK --foreground memory SIZE   (filled with nbdcopy)
# After the fills, every server's peak RSS (VmHWM) is reset (/proc/PID/clear_refs), so the
# memory table shows the peak during the fio jobs only.  For pool servers the control
# socket's status (metadata blocks in use, cache hits/misses) is sampled around each job.
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
#   BENCH_SERVERS=...       servers, from: snapstored snapstored-pool nbdkit-file
#                           nbdkit-memory snapstored-pool[-spare][-sparse][-<4k..1m>]
#                           (default: the first four)
#   BENCH_SNAPSTORED=PATH   snapstored binary (default: build-bench, then build, then PATH)
#   BENCH_SNAPSTORED_BASE=PATH  the binary of the -base servers
#   BENCH_SNAPSTORED_ARGS=  extra arguments for every snapstored server (e.g. "--threads 2")
#   BENCH_POOL_ARGS=        extra arguments for pool servers only (e.g. "--cache-size 4M")
#   BENCH_POOL_FORMAT_ARGS= extra arguments for `snapstored format` (e.g. "--block-size 16K")
#   BENCH_POOL_PREALLOC=1   1: every pool file is written full of zeroes before `snapstored
#                           format` (which then keeps its size), so that, like nbdkit-file's
#                           image (a copy made with --sparse=never), every block of it is
#                           allocated in the host file system and a write never has to
#                           allocate there. 0: the sparse file `format --size` creates.
#   BENCH_POOL_SPARE=4G     extra pool space for the -spare servers (the file is sparse
#                           unless BENCH_POOL_PREALLOC=1).
#                           Blocks freed by overwrites are reusable only after a commit;
#                           1 MiB writes reach ~1.8 GB/s here and commits can be ~1.5 s
#                           apart, so the spare room should be a few GB
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
ALL_SERVERS=(snapstored snapstored-pool nbdkit-file nbdkit-memory)
BASELINE=nbdkit-file
POOL_VARIANT_RE='^snapstored-pool(-spare)?(-sparse)?(-([0-9]+[kKmM]))?(-base)?$'
is_pool() { [[ $1 =~ $POOL_VARIANT_RE ]]; }
is_snapstored() { [[ $1 == snapstored ]] || is_pool "$1"; }

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
read -r -a POOL_EXTRA <<<"${BENCH_POOL_ARGS:-}"
read -r -a POOL_FORMAT_EXTRA <<<"${BENCH_POOL_FORMAT_ARGS:-}"
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
  [[ " ${ALL_SERVERS[*]} " == *" $s "* || $s =~ $POOL_VARIANT_RE ]] ||
    die "unknown server '$s' (${ALL_SERVERS[*]} snapstored-pool[-spare][-sparse][-<4k..1m>][-base])"
done
[[ $(printf '%s\n' "${SERVERS[@]}" | sort | uniq -d) == "" ]] || die "a server is listed twice"
SPARE_BYTES=$(numfmt --from=iec "${BENCH_POOL_SPARE:-4G}" 2>/dev/null) || die "bad BENCH_POOL_SPARE"
PREALLOC=${BENCH_POOL_PREALLOC:-1}
[[ $PREALLOC == 0 || $PREALLOC == 1 ]] || die "BENCH_POOL_PREALLOC must be 0 or 1"
(( ${#JOBS[@]} > 0 && ${#SERVERS[@]} > 0 )) || die "nothing to run"

need() { command -v "$1" >/dev/null || die "$1 is not installed ($2)"; }
need fio "apt-get install fio"
need timeout coreutils
for s in "${SERVERS[@]}"; do
  case $s in
    nbdkit-*) need nbdkit "apt-get install nbdkit" ;;
  esac
done
need nbdcopy "apt-get install libnbd-bin"
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
HAVE_SNAPSTORED=0
for s in "${SERVERS[@]}"; do is_snapstored "$s" && HAVE_SNAPSTORED=1; done
if (( HAVE_SNAPSTORED )); then
  if [[ -n ${BENCH_SNAPSTORED:-} ]]; then SNAPSTORED=$BENCH_SNAPSTORED
  elif [[ -x $REPO/build-bench/src/snapstored ]]; then SNAPSTORED=$REPO/build-bench/src/snapstored
  elif [[ -x $REPO/build/src/snapstored ]]; then SNAPSTORED=$REPO/build/src/snapstored
  else SNAPSTORED=$(command -v snapstored || true)
  fi
  [[ -n $SNAPSTORED && -x $SNAPSTORED ]] || die "no snapstored binary (set BENCH_SNAPSTORED)"
fi
SNAPSTORED_BASE=${BENCH_SNAPSTORED_BASE:-}
for s in "${SERVERS[@]}"; do
  [[ $s == *-base ]] || continue
  [[ -n $SNAPSTORED_BASE && -x $SNAPSTORED_BASE ]] || die "$s needs BENCH_SNAPSTORED_BASE (a snapstored binary)"
done
# The snapstored binary that formats and serves pool server $1.
snap_bin() { if [[ $1 == *-base ]]; then echo "$SNAPSTORED_BASE"; else echo "$SNAPSTORED"; fi; }

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
    cp -r "$WORK"/fio "$WORK"/*.log "$WORK"/results.tsv "$WORK"/pools.tsv "$WORK"/tables.md \
      "$OUTDIR"/ 2>/dev/null || true
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

peak_rss_kb() {  # VmHWM of the server (kB); reset by reset_peak_rss
  awk '$1 == "VmHWM:" { print $2 }' "/proc/${PID[$1]}/status" 2>/dev/null || true
}

anon_rss_kb() {  # RssAnon of the server (kB) now: its own memory, not mapped pool file pages
  awk '$1 == "RssAnon:" { print $2 }' "/proc/${PID[$1]}/status" 2>/dev/null || true
}

reset_peak_rss() {  # "5" resets the peak RSS to the current RSS (Linux >= 4.0)
  echo 5 >"/proc/${PID[$1]}/clear_refs" 2>/dev/null || log "cannot reset VmHWM of $1"
}

# Pool status over the control socket, as tab-separated fields:
# cache_hits cache_misses cached_blocks capacity_blocks metadata_used_blocks
# data_used_blocks data_block_size commits unused_bytes (free data blocks + unallocated)
pool_status() {
  "$PY" - "$WORK/$1.ctl.sock" <<'EOF' 2>/dev/null || printf '\t\t\t\t\t\t\t\t\n'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b'{"version":1,"command":"status"}\n')
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
sp = json.loads(buf)["result"]["space"]
c = sp["cache"]
print("\t".join(str(x) for x in (
    c["hits"], c["misses"], c["cached_blocks"], c["capacity_blocks"],
    sp["metadata_blocks"] - sp["metadata_blocks_free"], sp["data_blocks"] - sp["data_blocks_free"],
    sp["data_block_size"], sp.get("commits", ""),
    sp["data_blocks_free"] * sp["data_block_size"] + sp.get("unallocated_bytes", 0))))
EOF
}

start_server() {
  local name=$1 sock=$WORK/$1.sock
  SOCK[$name]=$sock
  case $name in
    snapstored-pool*)
      "$(snap_bin "$name")" --pool "$WORK/$name.pool" --backend pool --no-tcp --log-level warn \
        --nbd-socket "$sock" --control-socket "$WORK/$name.ctl.sock" "${SNAP_EXTRA[@]}" \
        "${POOL_EXTRA[@]}" </dev/null >"$WORK/$name.log" 2>&1 &
      ;;
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
log "servers: ${SERVERS[*]}${SNAPSTORED:+ (snapstored = $SNAPSTORED ${SNAP_EXTRA[*]})}${SNAPSTORED_BASE:+ (-base: $SNAPSTORED_BASE)}; pool files preallocated: $PREALLOC"
head -c "$BYTES" /dev/urandom >"$WORK/base.img"
POOLS=$WORK/pools.tsv
printf 'server\tblock_size\tfill_seconds\tmetadata_used_blocks\tdata_used_blocks\tunused_bytes\n' >"$POOLS"
for s in "${SERVERS[@]}"; do
  case $s in
    snapstored|nbdkit-file) cp --reflink=never --sparse=never "$WORK/base.img" "$WORK/$s.img" ;;
    snapstored-pool*)
      [[ $s =~ $POOL_VARIANT_RE ]]
      total=$BYTES
      [[ -n ${BASH_REMATCH[1]} ]] && total=$(( BYTES + SPARE_BYTES ))
      fmt=(--size "$total" --origin-size "$BYTES")
      [[ -n ${BASH_REMATCH[4]} ]] && fmt+=(--block-size "${BASH_REMATCH[4]^^}")
      if [[ $PREALLOC == 1 && -z ${BASH_REMATCH[2]} ]]; then
        # The size `format --size TOTAL` gives a new file (pool_file_size_for in pool.h).
        mib=$(( (total + total / 8 + (32 << 20) + (1 << 20) - 1) >> 20 ))
        dd if=/dev/zero of="$WORK/$s.pool" bs=1M count="$mib" status=none ||
          die "cannot preallocate $s.pool"
        fmt=(--origin-size "$BYTES" "${fmt[@]:4}")
      fi
      "$(snap_bin "$s")" format "$WORK/$s.pool" "${fmt[@]}" "${POOL_FORMAT_EXTRA[@]}" \
        >"$WORK/$s.format.log" 2>&1 || { cat "$WORK/$s.format.log" >&2; die "format $s failed"; }
      log "$s: $(head -n1 "$WORK/$s.format.log")"
      ;;
  esac
done
for s in "${SERVERS[@]}"; do start_server "$s"; done
for s in "${SERVERS[@]}"; do
  [[ $s == nbdkit-memory ]] || is_pool "$s" || continue
  log "filling $s with nbdcopy --flush"
  t0=$(date +%s.%N)
  timeout 900 nbdcopy --flush "$WORK/base.img" "$(uri "$s")" || die "nbdcopy into $s failed"
  t1=$(date +%s.%N)
  if is_pool "$s"; then
    IFS=$'\t' read -r _ _ _ _ mu du dbs _ dt <<<"$(pool_status "$s")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$dbs" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" \
      "$mu" "$du" "$dt" >>"$POOLS"
    log "$s filled in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; metadata blocks in use $mu, data blocks $du"
  fi
done
rm -f "$WORK/base.img"
sync
for s in "${SERVERS[@]}"; do reset_peak_rss "$s"; done

# ---- runs ----
mkdir -p "$WORK/fio"
RESULTS=$WORK/results.tsv
printf 'round\tjob\tserver\tstatus\tiops\tmib_s\trequests\tcpu_ticks\tctx_switches\tpeak_rss_kb\tcache_hits\tcache_misses\tmetadata_used_blocks\tdata_used_blocks\tcommits\tanon_rss_kb\n' >"$RESULTS"
FIO_TIMEOUT=$(( RUNTIME + 60 ))

run_one() {  # round job server
  local round=$1 job=$2 server=$3 out=$WORK/fio/r$1-$2-$3.json
  if ! alive "$server"; then
    log "$server is not running; skipping $job"
    printf '%s\t%s\t%s\tdead\t\t\t\t\t\n' "$round" "$job" "$server" >>"$RESULTS"
    return
  fi
  [[ $KEEP_SYNC == 1 ]] || timeout 300 sync || true
  local before after rc=0 switches="" st0="" st1=""
  is_pool "$server" && st0=$(pool_status "$server")
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
  local extra hits="" misses="" mu="" du="" commits="" h0 m0 c0
  if [[ -n $st0 ]]; then
    st1=$(pool_status "$server")
    IFS=$'\t' read -r h0 m0 _ _ _ _ _ c0 _ <<<"$st0"
    IFS=$'\t' read -r hits misses _ _ mu du _ commits _ <<<"$st1"
    [[ $h0 =~ ^[0-9]+$ && $hits =~ ^[0-9]+$ ]] && hits=$(( hits - h0 )) misses=$(( misses - m0 ))
    [[ $c0 =~ ^[0-9]+$ && $commits =~ ^[0-9]+$ ]] && commits=$(( commits - c0 ))
  fi
  extra=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$(peak_rss_kb "$server")" "$hits" "$misses" "$mu" "$du" \
    "$commits" "$(anon_rss_kb "$server")")
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
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$job" "$server" "$line" "$(( after - before ))" "$switches" \
    "$extra" >>"$RESULTS"
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
"$PY" - "$RESULTS" "$TICK" "$BASELINE" "${JOBS[*]}" "${SERVERS[*]}" "$POOLS" "$BYTES" "$RUNTIME" >"$WORK/tables.md" <<'EOF'
import csv, statistics, sys
path, tick, baseline = sys.argv[1], int(sys.argv[2]), sys.argv[3]
jobs, servers = sys.argv[4].split(), sys.argv[5].split()
pools_path, size_bytes, runtime = sys.argv[6], int(sys.argv[7]), int(sys.argv[8])
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
        if r.get("peak_rss_kb"):
            res[key]["rss"] = int(r["peak_rss_kb"])
        if r.get("anon_rss_kb"):
            res[key]["anon"] = int(r["anon_rss_kb"])
        for k in ("cache_hits", "cache_misses", "metadata_used_blocks", "commits"):
            if r.get(k):
                res[key][k] = int(r[k])
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
            if len(vals) < len(rounds):  # say so when some rounds failed
                bad = sorted({res.get((r, job, s), {}).get("status", "missing")
                              for r in rounds if "iops" not in res.get((r, job, s), {})})
                rtxt += " [%d of %d rounds; others %s]" % (len(vals), len(rounds), ", ".join(bad))
            sws = [v["sw"] for v in vals if v.get("sw") is not None]
            print("| %s | %s | %.0f | %.1f | %s | %.1f |%s" % (
                job, s, med("iops"), med("mib"), rtxt, med("cpu"),
                sw_cell(statistics.median(sws) if sws else None)))
    print()

# Peak RSS during the jobs, and the pools' metadata and cache.
fills = {r["server"]: r for r in csv.DictReader(open(pools_path), delimiter="\t")}
gib = size_bytes / 2**30
print("### Server memory and pool metadata\n")
print("Peak RSS: the largest VmHWM after any job (reset after the fill); for snapstored it")
print("includes the pages of the pool file it has read through its mapping (page cache, shared")
print("with the kernel), so the anonymous RSS (RssAnon, largest value seen after a job) is given")
print("too. Metadata: blocks in")
print("use x 4096 per GiB of volume (one copy; `dup` stores two), right after the fill and after")
print("the last job. Cache: hits and misses summed over every job of every round.\n")
print("| server | peak RSS MiB | anon RSS MiB | data block | fill MiB/s | unused after fill (free data + unallocated) | metadata after fill, KiB/GiB | metadata after jobs, KiB/GiB | cache hits | cache misses |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for s in servers:
    vals = [v for (r, j, sv), v in res.items() if sv == s]
    rss = [v["rss"] for v in vals if "rss" in v]
    anon = [v["anon"] for v in vals if "anon" in v]
    f = fills.get(s)
    cells = ["%.1f" % (max(rss) / 1024) if rss else "—", "%.1f" % (max(anon) / 1024) if anon else "—"]
    if f and f.get("metadata_used_blocks"):
        last = None
        for rnd in rounds:
            for job in jobs:
                v = res.get((rnd, job, s), {})
                if "metadata_used_blocks" in v:
                    last = v["metadata_used_blocks"]
        hits = sum(v.get("cache_hits", 0) for v in vals)
        misses = sum(v.get("cache_misses", 0) for v in vals)
        secs = float(f["fill_seconds"])
        cells += ["%d KiB" % (int(f["block_size"]) // 1024),
                  "%.0f" % (size_bytes / 2**20 / secs) if secs else "—",
                  "%.0f MiB" % (int(f["unused_bytes"]) / 2**20) if f.get("unused_bytes") else "—",
                  "%.0f" % (int(f["metadata_used_blocks"]) * 4 / gib),
                  "%.0f" % (last * 4 / gib) if last is not None else "—",
                  "%d" % hits, "%d" % misses]
    else:
        cells += ["—"] * 7
    print("| %s | %s |" % (s, " | ".join(cells)))
print()

pools = [s for s in servers if s in fills]
if pools:
    print("### Pool commits per second during each job (median over rounds)\n")
    print("A commit is 2 fdatasyncs. Commits come from the timer (--commit-interval), from NBD")
    print("flushes, from a full metadata cache, and from a write that finds no free data block.\n")
    print("| job | " + " | ".join(pools) + " |")
    print("|---|" + "--:|" * len(pools))
    for job in jobs:
        cells = []
        for s in pools:
            cs = [res[(r, job, s)]["commits"] / runtime
                  for r in rounds if "commits" in res.get((r, job, s), {})]
            cells.append("%.1f" % statistics.median(cs) if cs else "—")
        print("| %s | %s |" % (job, " | ".join(cells)))
    print()
EOF
cat "$WORK/tables.md"
