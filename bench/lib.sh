# bench/lib.sh: helpers shared by bench/snapshot-fio.sh and bench/snapshot-create.sh.
# Sourced, not run. The caller sets LOG_TAG (the prefix of progress lines) and REPO, and
# uses `set -euo pipefail`. Servers are tracked by name in the associative arrays PID and
# SOCK; stop_all stops every one of them (run it from the caller's EXIT trap).
# shellcheck shell=bash

declare -A PID SOCK
PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3
# shellcheck disable=SC2034  # used by the callers
TICK=$(getconf CLK_TCK)

log() { printf '[%s %(%H:%M:%S)T] %s\n' "${LOG_TAG:-bench}" -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is not installed ($2)"; }

# find_binary ENV_VALUE NAME: the explicit path, else build-bench, then build, then PATH.
find_binary() {
  local given=$1 name=$2 sub=${3:-src} found=""
  if [[ -n $given ]]; then found=$given
  elif [[ -x $REPO/build-bench/$sub/$name ]]; then found=$REPO/build-bench/$sub/$name
  elif [[ -x $REPO/build/$sub/$name ]]; then found=$REPO/build/$sub/$name
  else found=$(command -v "$name" || true)
  fi
  [[ -n $found && -x $found ]] || die "no $name binary found (build it, or set its BENCH_ variable)"
  echo "$found"
}

# make_workdir BASE: a fresh directory under BASE, which must not be tmpfs.
make_workdir() {
  mkdir -p "$1"
  [[ $(stat -f -c %T "$1") != tmpfs ]] || die "$1 is tmpfs; set BENCH_TMPDIR to a disk"
  mktemp -d "$1/${LOG_TAG:-bench}.XXXXXX"
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

alive() {  # name: the server's process exists and is not a zombie
  local pid=${PID[$1]:-} state
  [[ -n $pid && -r /proc/$pid/stat ]] || return 1
  state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

cpu_ticks() {  # name: utime+stime of the whole server process (all threads), clock ticks
  local f
  read -r -a f <<<"$(sed 's/.*) //' "/proc/${PID[$1]}/stat")"
  echo $(( f[11] + f[12] ))
}

stop_server() {  # name: SIGTERM, wait up to 60 s (a pool commits on the way out), then SIGKILL
  local name=$1 pid=${PID[$1]:-}
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored SIGTERM for 60 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  unset "PID[$name]"
}

stop_all() { local s; for s in "${!PID[@]}"; do stop_server "$s"; done; }

uri() { echo "nbd+unix:///origin?socket=${SOCK[$1]}"; }

# wait_export NAME BYTES LOGFILE: until the export answers with the right size (~60 s).
wait_export() {
  local name=$1 bytes=$2 logfile=$3 size=""
  for _ in $(seq 300); do
    alive "$name" || { tail -n 20 "$logfile" >&2; die "$name exited during start-up"; }
    if [[ -S ${SOCK[$name]} ]]; then
      size=$(timeout 5 nbdinfo --size "$(uri "$name")" 2>/dev/null) && break
    fi
    sleep 0.2
  done
  [[ $size == "$bytes" ]] || die "$name did not come up with a $bytes-byte export (got '${size}')"
}

# fio_summary JSON: "ok<TAB>iops<TAB>MiB/s<TAB>requests<TAB>clat p50 µs<TAB>clat p99 µs<TAB>
# runtime ms" (requests = reads + writes + flushes), or a status word when fio reported an
# error.
fio_summary() {
  "$PY" - "$1" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
job = json.loads(text[text.find("{"):])["jobs"][0]  # fio may print notes before the JSON
if job.get("error"):
    print("fio-error-%d" % job["error"]); sys.exit()
rw = [job[d] for d in ("read", "write") if job[d]["total_ios"]]
iops = sum(d["iops"] for d in rw)
mib = sum(d["bw_bytes"] for d in rw) / 1048576
reqs = sum(d["total_ios"] for d in rw) + job.get("sync", {}).get("total_ios", 0)
main = max(rw, key=lambda d: d["total_ios"]) if rw else None
pct = main["clat_ns"].get("percentile", {}) if main else {}
p = lambda q: "%.1f" % (pct[q] / 1000) if q in pct else ""
print("ok\t%.1f\t%.2f\t%d\t%s\t%s\t%d" % (iops, mib, reqs, p("50.000000"), p("99.000000"),
                                      job["job_runtime"]))
EOF
}
