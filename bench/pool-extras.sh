#!/usr/bin/env bash
# pool-extras.sh: measurements of snapstored's pool backend that nbd-bench.sh's fio table
# does not give.  Parts (run all by default, or pick with EXTRAS_PARTS="a c"):
#
#   a  Metadata bytes per GiB of fully written data.  Fresh pool (`format --size
#      EXTRAS_META_SIZE`: volume 'origin' of that size), SIZE bytes of random data written sequentially with
#      `nbdcopy --flush`, the daemon stopped, `snapstored dump --json`:
#      (metadata_blocks - metadata_blocks_free) * 4096 per GiB.  Then one full pass of 4k
#      random writes over the volume (fio, qd32, every block once, flush at the end), and
#      the same again; then `snapstored check`.
#   b  snapstored's peak RSS (VmHWM) with the default cache during the main fio jobs:
#      runs nbd-bench.sh with BENCH_SERVERS=snapstored-pool (every job, one round) and
#      prints its memory table.
#   c  A pool whose metadata does not fit the cache: EXTRAS_CACHE_DATA (4G) of random
#      data written, then 4k random reads over all of it (qd32 and qd1) with
#      --cache-size EXTRAS_SMALL_CACHE (4M) and with the default cache, alternating, a
#      fresh daemon for every run.  Reports IOPS, server CPU per request and the cache
#      hits/misses from the control socket's status before and after each job.
#   d  Data block size: pools formatted with --block-size EXTRAS_BLOCK_SIZES (4K 16K 64K)
#      and spare room (see EXTRAS_BS_SPARE), each filled with the same data, compared in
#      one nbd-bench.sh run (jobs EXTRAS_BS_JOBS, EXTRAS_BS_ROUNDS rounds, nbdkit-file as
#      the baseline); its memory table gives the metadata per GiB for each block size.
#
# Environment (all optional):
#   EXTRAS_PARTS="a b c d"     parts to run
#   BENCH_RUNTIME=10           seconds per time-based fio job
#   BENCH_SNAPSTORED=PATH      snapstored binary (default: build-bench, then build, then PATH)
#   BENCH_TMPDIR=/var/tmp      where the pools go (must not be tmpfs)
#   BENCH_OUTDIR=DIR           keep logs, fio JSON and the tables here
#   EXTRAS_META_SIZE=1G        (a) volume size written
#   EXTRAS_CACHE_DATA=4G       (c) volume size written
#   EXTRAS_SMALL_CACHE=4M      (c) the small --cache-size
#   EXTRAS_CACHE_ROUNDS=2      (c) rounds (each: small and default cache, order alternating)
#   EXTRAS_CACHE_COLD=0        (c) 1: drop the pool file's page cache before each job
#                              (`dd iflag=nocache count=0`, this file only), so that
#                              cache misses and data reads go to the disk
#   EXTRAS_BLOCK_SIZES="4K 16K 64K"                          (d)
#   EXTRAS_BS_JOBS="randwrite-4k-qd32 randwrite-4k-qd1 seqwrite-1m-qd8 randread-4k-qd32"  (d)
#   EXTRAS_BS_ROUNDS=2         (d)
#   EXTRAS_BS_SPARE=1          (d) 1: pools with BENCH_POOL_SPARE (4G) of spare room
#                              (snapstored-pool-spare-16k...), so that no overwrite waits
#                              for a commit and only the block size differs; 0: pools of
#                              the default size (snapstored-pool-16k...)
#   EXTRAS_BS_SIZE=1G          (b, d) export size for the nbd-bench.sh runs
#
# Usage: bench/pool-extras.sh [--help]
# Output: markdown on stdout; progress on stderr.
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
read -r -a PARTS <<<"$(tr ',' ' ' <<<"${EXTRAS_PARTS:-a b c d}")"
RUNTIME=${BENCH_RUNTIME:-10}
TMPBASE=${BENCH_TMPDIR:-/var/tmp}
OUTDIR=${BENCH_OUTDIR:-}
META_SIZE=${EXTRAS_META_SIZE:-1G}
CACHE_DATA=${EXTRAS_CACHE_DATA:-4G}
SMALL_CACHE=${EXTRAS_SMALL_CACHE:-4M}
CACHE_ROUNDS=${EXTRAS_CACHE_ROUNDS:-2}
CACHE_COLD=${EXTRAS_CACHE_COLD:-0}
read -r -a BLOCK_SIZES <<<"${EXTRAS_BLOCK_SIZES:-4K 16K 64K}"
BS_JOBS=${EXTRAS_BS_JOBS:-randwrite-4k-qd32 randwrite-4k-qd1 seqwrite-1m-qd8 randread-4k-qd32}
BS_ROUNDS=${EXTRAS_BS_ROUNDS:-2}
BS_SIZE=${EXTRAS_BS_SIZE:-1G}
BS_LAYOUT=-spare; [[ ${EXTRAS_BS_SPARE:-1} == 1 ]] || BS_LAYOUT=""
PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3
TICK=$(getconf CLK_TCK)

log() { printf '[pool-extras %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $RUNTIME =~ ^[0-9]+$ && $RUNTIME -gt 0 ]] || die "BENCH_RUNTIME must be a positive integer"
for p in "${PARTS[@]}"; do [[ $p =~ ^[abcd]$ ]] || die "unknown part '$p' (a b c d)"; done
for t in fio nbdcopy nbdinfo timeout; do command -v "$t" >/dev/null || die "$t is not installed"; done

if [[ -n ${BENCH_SNAPSTORED:-} ]]; then SNAPSTORED=$BENCH_SNAPSTORED
elif [[ -x $REPO/build-bench/src/snapstored ]]; then SNAPSTORED=$REPO/build-bench/src/snapstored
elif [[ -x $REPO/build/src/snapstored ]]; then SNAPSTORED=$REPO/build/src/snapstored
else SNAPSTORED=$(command -v snapstored || true)
fi
[[ -n $SNAPSTORED && -x $SNAPSTORED ]] || die "no snapstored binary (set BENCH_SNAPSTORED)"
export BENCH_SNAPSTORED=$SNAPSTORED BENCH_RUNTIME=$RUNTIME BENCH_TMPDIR=$TMPBASE

mkdir -p "$TMPBASE"
[[ $(stat -f -c %T "$TMPBASE") != tmpfs ]] || die "$TMPBASE is tmpfs; set BENCH_TMPDIR to a disk"
WORK=$(mktemp -d "$TMPBASE/pool-extras.XXXXXX")
mkdir -p "$WORK/fio"
SPID="" FIO_PID="" SUB_PID=""

stop_daemon() {  # SIGTERM (the daemon commits and exits), bounded wait, then SIGKILL
  [[ -n $SPID ]] || return 0
  if kill -0 "$SPID" 2>/dev/null; then
    kill -TERM "$SPID" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SPID" 2>/dev/null; then
      log "snapstored (pid $SPID) ignored SIGTERM for 30 s; killing it"
      kill -KILL "$SPID" 2>/dev/null || true
    fi
  fi
  wait "$SPID" 2>/dev/null || true
  SPID=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "$FIO_PID" "$SUB_PID"; do
    [[ -n $p ]] || continue
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  stop_daemon
  if [[ -n $OUTDIR && -d $WORK ]]; then
    mkdir -p "$OUTDIR"
    cp -r "$WORK"/fio "$WORK"/*.log "$WORK"/*.json "$WORK"/*.md "$WORK"/bench-* "$OUTDIR"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

SOCK=$WORK/nbd.sock CTL=$WORK/ctl.sock
uri() { echo "nbd+unix:///origin?socket=$SOCK"; }

start_daemon() {  # pool-file log-name [extra snapstored args...]
  local pool=$1 name=$2; shift 2
  rm -f "$SOCK" "$CTL"
  "$SNAPSTORED" --pool "$pool" --backend pool --no-tcp --log-level warn --nbd-socket "$SOCK" \
    --control-socket "$CTL" "$@" </dev/null >>"$WORK/$name.log" 2>&1 &
  SPID=$!
  for _ in $(seq 150); do
    kill -0 "$SPID" 2>/dev/null || { cat "$WORK/$name.log" >&2; die "snapstored exited during start-up"; }
    [[ -S $SOCK ]] && timeout 5 nbdinfo --size "$(uri)" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "snapstored did not come up"
}

cpu_ticks() { local f; read -r -a f <<<"$(sed 's/.*) //' "/proc/$SPID/stat")"; echo $(( f[11] + f[12] )); }
peak_rss_kb() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$SPID/status"; }

status_json() {  # the control socket's status result, one JSON line
  "$PY" - "$CTL" <<'EOF'
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
print(json.dumps(json.loads(buf)["result"]))
EOF
}

dump_json() { "$SNAPSTORED" dump "$1" --json; }

meta_used() {  # dump JSON on stdin -> metadata bytes in use (one copy) and data bytes in use
  "$PY" -c '
import json, sys
d = json.load(sys.stdin)
print((d["metadata_blocks"] - d["metadata_blocks_free"]) * 4096,
      (d["data_blocks"] - d["data_blocks_free"]) * d["data_block_size"], d["metadata_profile"])'
}

run_fio() {  # name out-json fio-args... ; runs fio against the daemon
  local name=$1 out=$2 rc=0; shift 2
  timeout -k 5 900 fio --name="$name" --ioengine=nbd --uri="$(uri)" --output-format=json \
    --output="$out" "$@" </dev/null >"$out.stdout" 2>&1 &
  FIO_PID=$!
  wait "$FIO_PID" || rc=$?
  FIO_PID=""
  kill -0 "$SPID" 2>/dev/null || die "snapstored died during $name"
  (( rc == 0 )) || { tail -n 5 "$out.stdout" >&2; die "fio $name failed (exit $rc)"; }
}

fio_summary() {  # out-json -> "iops requests"
  "$PY" - "$1" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
job = json.loads(text[text.find("{"):])["jobs"][0]
if job.get("error"):
    sys.exit("fio error %d" % job["error"])
iops = job["read"]["iops"] + job["write"]["iops"]
reqs = job["read"]["total_ios"] + job["write"]["total_ios"] + job.get("sync", {}).get("total_ios", 0)
print("%.1f %d" % (iops, reqs))
EOF
}

bytes_of() { numfmt --from=iec "$1"; }
machine_line() {
  echo "Load average (1, 5, 15 min) now: $(cut -d' ' -f1-3 /proc/loadavg); nproc $(nproc)."
}

OUT=$WORK/extras.md
: >"$OUT"
emit() { printf '%s\n' "$*" | tee -a "$OUT"; }

log "work dir $WORK; snapstored = $SNAPSTORED; parts: ${PARTS[*]}"

# ---------------------------------------------------------------- (a)
part_a() {
  local size bytes pool=$WORK/meta.pool gib u1 u2 u3
  size=$META_SIZE; bytes=$(bytes_of "$size"); gib=$(awk -v b="$bytes" 'BEGIN { print b / 2^30 }')
  log "(a) metadata per GiB: fresh pool, origin $size"
  "$SNAPSTORED" format "$pool" --size "$bytes" >"$WORK/a.log" 2>&1
  start_daemon "$pool" a
  local t0 t1; t0=$(date +%s.%N)
  head -c "$bytes" /dev/urandom | timeout 900 nbdcopy --flush - "$(uri)" || die "nbdcopy failed"
  t1=$(date +%s.%N)
  stop_daemon
  dump_json "$pool" >"$WORK/a-after-fill.json"
  read -r -a u1 <<<"$(meta_used <"$WORK/a-after-fill.json")"
  local pass
  for pass in 1 2; do
    start_daemon "$pool" a
    log "(a) 4k random-write pass $pass over all of it (qd32, each block once)"
    run_fio "a-randwrite-pass$pass" "$WORK/fio/a-randwrite-pass$pass.json" --rw=randwrite --bs=4k \
      --iodepth=32 --size="$bytes" --end_fsync=1
    stop_daemon
    dump_json "$pool" >"$WORK/a-after-pass$pass.json"
  done
  read -r -a u2 <<<"$(meta_used <"$WORK/a-after-pass1.json")"
  read -r -a u3 <<<"$(meta_used <"$WORK/a-after-pass2.json")"
  local check="ok"
  "$SNAPSTORED" check "$pool" >"$WORK/a-check.log" 2>&1 || check="FAILED (see a-check.log)"
  emit "### (a) Metadata per GiB of written data (4 KiB data blocks)"
  emit ""
  emit "Volume $size; sequential fill by nbdcopy at $(awk -v a="$t0" -v b="$t1" -v s="$bytes" 'BEGIN { printf "%.0f", s / 2^20 / (b - a) }') MiB/s (including /dev/urandom). Metadata profile ${u1[2]}: the disk holds two copies of every number below. \`snapstored check\` afterwards: $check."
  emit ""
  emit "| state | metadata in use | per GiB of data | per 4 KiB data block | data in use |"
  emit "|---|--:|--:|--:|--:|"
  local label arr
  for label in "after sequential fill" "after one 4k random-write pass" "after a second pass"; do
    case $label in
      *fill) arr=("${u1[@]}") ;; *one*) arr=("${u2[@]}") ;; *) arr=("${u3[@]}") ;;
    esac
    emit "$(awk -v l="$label" -v m="${arr[0]}" -v d="${arr[1]}" -v g="$gib" 'BEGIN {
      printf "| %s | %.2f MiB | %.2f MiB | %.1f B | %.0f MiB |", l, m / 2^20, m / 2^20 / g,
             m / (g * 262144), d / 2^20 }')"
  done
  emit ""
  rm -f "$pool"
}

# ---------------------------------------------------------------- (b) and (d)
sub_bench() {  # tag, env assignments...; runs nbd-bench.sh and appends its tables
  local tag=$1 rc=0; shift
  env "$@" BENCH_OUTDIR="$WORK/bench-$tag" "$HERE/nbd-bench.sh" >"$WORK/bench-$tag.md" \
    2> >(tee "$WORK/bench-$tag.log" >&2) &
  SUB_PID=$!
  wait "$SUB_PID" || rc=$?
  SUB_PID=""
  (( rc == 0 )) || die "nbd-bench.sh ($tag) failed"
}

part_b() {
  log "(b) peak RSS of snapstored-pool during the main jobs (nbd-bench.sh, one round)"
  sub_bench b BENCH_SERVERS=snapstored-pool BENCH_SIZE="$BS_SIZE" BENCH_ROUNDS=1
  emit "### (b) Peak RSS during the main fio jobs (default cache, $BS_SIZE volume)"
  emit ""
  emit "$(sed -n '/^### Server memory/,$p' "$WORK/bench-b.md")"
  emit ""
  emit "<details><summary>the fio table of this run</summary>"
  emit ""
  emit "$(sed -n '/^### Round 1/,/^### Server memory/p' "$WORK/bench-b.md" | sed '$d')"
  emit "</details>"
  emit ""
}

part_d() {
  local servers="" b
  for b in "${BLOCK_SIZES[@]}"; do servers+="snapstored-pool${BS_LAYOUT}-${b,,} "; done
  log "(d) data block sizes: $servers"
  sub_bench d BENCH_SERVERS="${servers}nbdkit-file" BENCH_JOBS="$BS_JOBS" BENCH_ROUNDS="$BS_ROUNDS" \
    BENCH_SIZE="$BS_SIZE"
  emit "### (d) Data block size (${BLOCK_SIZES[*]}), $BS_SIZE volume, $BS_ROUNDS round(s)"
  emit ""
  if (( BS_ROUNDS > 1 )); then
    emit "$(sed -n '/^### Median/,$p' "$WORK/bench-d.md")"
  else
    emit "$(sed -n '/^### Round 1/,$p' "$WORK/bench-d.md")"
  fi
  emit ""
}

# ---------------------------------------------------------------- (c)
part_c() {
  local bytes pool=$WORK/cache.pool round cache job
  bytes=$(bytes_of "$CACHE_DATA")
  log "(c) cache: $CACHE_DATA written; randread with --cache-size $SMALL_CACHE and the default"
  "$SNAPSTORED" format "$pool" --size "$bytes" >"$WORK/c.log" 2>&1
  start_daemon "$pool" c
  head -c "$bytes" /dev/urandom | timeout 1800 nbdcopy --flush - "$(uri)" || die "nbdcopy failed"
  local meta; meta=$(status_json | "$PY" -c '
import json, sys; s = json.load(sys.stdin)["space"]
print((s["metadata_blocks"] - s["metadata_blocks_free"]) * 4096)')
  stop_daemon
  local tsv=$WORK/c.tsv
  printf 'round\tcache\tjob\tiops\tcpu_us_req\thits\tmisses\tcached\tcapacity\tpeak_rss_kb\n' >"$tsv"
  for (( round = 1; round <= CACHE_ROUNDS; round++ )); do
    local order=("$SMALL_CACHE" default)
    (( round % 2 == 0 )) && order=(default "$SMALL_CACHE")
    for cache in "${order[@]}"; do
      local args=()
      [[ $cache == default ]] || args=(--cache-size "$cache")
      start_daemon "$pool" c "${args[@]}"
      for job in randread-4k-qd32 randread-4k-qd1; do
        local qd=${job##*qd} out=$WORK/fio/c-r$round-$cache-$job.json s0 s1 c0 c1 sum
        timeout 300 sync || true
        [[ $CACHE_COLD == 1 ]] && dd if="$pool" iflag=nocache count=0 status=none
        s0=$(status_json); c0=$(cpu_ticks)
        run_fio "c-$job" "$out" --rw=randread --bs=4k --iodepth="$qd" --time_based --runtime="$RUNTIME"
        c1=$(cpu_ticks); s1=$(status_json)
        read -r -a sum <<<"$(fio_summary "$out")"
        "$PY" - "$round" "$cache" "$job" "${sum[0]}" "${sum[1]}" "$(( c1 - c0 ))" "$TICK" \
          "$s0" "$s1" "$(peak_rss_kb)" >>"$tsv" <<'EOF'
import json, sys
rnd, cache, job, iops, reqs, ticks, tick, s0, s1, rss = sys.argv[1:]
a, b = json.loads(s0)["space"]["cache"], json.loads(s1)["space"]["cache"]
cpu = int(ticks) * 1e6 / int(tick) / int(reqs)
print("\t".join(str(x) for x in (rnd, cache, job, iops, "%.1f" % cpu, b["hits"] - a["hits"],
      b["misses"] - a["misses"], b["cached_blocks"], b["capacity_blocks"], rss)))
EOF
        log "(c) round $round cache $cache $job: $(tail -n1 "$tsv" | cut -f4-8 | tr '\t' ' ')"
      done
      stop_daemon
    done
  done
  emit "### (c) Metadata larger than the cache: $CACHE_DATA written, 4k random reads over all of it"
  emit ""
  emit "Metadata in use after the fill: $(awk -v m="$meta" 'BEGIN { printf "%.1f MiB (%d blocks)", m / 2^20, m / 4096 }') against a $SMALL_CACHE cache and the default (64M). A fresh daemon (cold metadata cache) for every cache size, qd32 then qd1, ${RUNTIME} s each; rounds alternate the order. Page cache: $([[ $CACHE_COLD == 1 ]] && echo "the pool file's pages were dropped before each job (\`dd iflag=nocache\`)" || echo "warm (the pool file fits in RAM), so a cache miss is a 4 KiB pread from the page cache plus a checksum, not a disk read")."
  emit ""
  emit "$("$PY" - "$tsv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
out = ["| job | cache | IOPS (median) | per round | server CPU µs/req | cache hits | cache misses | miss rate | cached / capacity blocks | peak RSS MiB |",
       "|---|---|--:|---|--:|--:|--:|--:|--:|--:|"]
ratios = {}
for job in ("randread-4k-qd32", "randread-4k-qd1"):
    for cache in sorted({r["cache"] for r in rows}, key=lambda c: c == "default"):
        rs = [r for r in rows if r["job"] == job and r["cache"] == cache]
        if not rs:
            continue
        h = sum(int(r["hits"]) for r in rs); m = sum(int(r["misses"]) for r in rs)
        med = statistics.median(float(r["iops"]) for r in rs)
        ratios.setdefault(job, {})[cache] = med
        out.append("| %s | %s | %.0f | %s | %.1f | %d | %d | %.1f%% | %s / %s | %.1f |" % (
            job, cache, med, ", ".join("%.0f" % float(r["iops"]) for r in rs),
            statistics.median(float(r["cpu_us_req"]) for r in rs), h, m,
            100.0 * m / (h + m) if h + m else 0, rs[-1]["cached"], rs[-1]["capacity"],
            max(int(r["peak_rss_kb"]) for r in rs) / 1024))
out.append("")
for job, v in ratios.items():
    small = [c for c in v if c != "default"]
    if small and v.get("default"):
        out.append("- %s: %s cache at %.2fx the default cache's IOPS." % (job, small[0], v[small[0]] / v["default"]))
print("\n".join(out))
EOF
)"
  emit ""
  rm -f "$pool"
}

for p in "${PARTS[@]}"; do "part_$p"; done
emit "$(machine_line)"
