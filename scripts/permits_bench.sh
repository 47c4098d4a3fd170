#!/usr/bin/env bash
# The cost of worker admission (issue 20): CPU per request and req/s of the crate's server
# with a function that waits, at several connection counts and worker counts, for one or
# more commits side by side.
#
#   scripts/permits_bench.sh [REV...]      (default: the working tree, as `.`)
#   scripts/permits_bench.sh 90678af .     (a commit before, and the working tree)
#
# Each REV is built from `git archive REV` under target/permits-bench/ with this checkout's
# examples/bench_server.rs laid over it (for --workers and --handler-us), `.` from the
# working tree. For every REV and every worker count a bench server runs (`--handler-us`:
# bench/greeter sleeps that long before greeting, as a function waiting on I/O, so it holds
# a worker but no core); then, REPEAT times, for every connection count, every worker
# count and every REV in turn (interleaved, so drift hits all alike): wrk keep-alive,
# w1_greet, for DURATION, and the server process's CPU time (utime + stime of
# /proc/PID/stat, all its threads, the ended ones too) before and after. Prints one line
# per run and a table of medians: req/s and CPU microseconds per request.
#
# FUTEX=1 instead runs each REV and worker count once under `strace -f -c -e trace=futex`
# (attached to the server for one wrk run per connection count in FUTEX_CONNS) and prints
# futex calls per request.
#
# Env: CONNS="1 16 128 1024" WORKERS="default 1" HANDLER_US=500 DURATION=5s REPEAT=3
#      WARMUP=2s BASE_PORT=18200 FUTEX_CONNS="1 128"
# Needs: cargo, git, wrk, curl (and strace for FUTEX=1). 1,024 connections need an
# open-files limit above 2,100 for the server and for wrk; the script raises its own soft
# limit to the hard one. Loopback only; every server is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
for tool in cargo git wrk curl; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install -y wrk curl)" >&2; exit 1; }
done
[ $# -gt 0 ] || set -- .
CONNS=${CONNS:-1 16 128 1024}; WORKERS=${WORKERS:-default 1}
HANDLER_US=${HANDLER_US:-500}; DURATION=${DURATION:-5s}; REPEAT=${REPEAT:-3}; WARMUP=${WARMUP:-2s}
BASE_PORT=${BASE_PORT:-18200}; FUTEX_CONNS=${FUTEX_CONNS:-1 128}
BODY=$ROOT/benches/workloads/w1_greet.bin
WORK=$ROOT/target/permits-bench
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
TICK=$(getconf CLK_TCK)

# The builds: one bench_server binary per REV.
declare -A BIN
for rev in "$@"; do
  if [ "$rev" = . ]; then
    cargo build -q --release --example bench_server
    BIN[$rev]=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/bench_server
  else
    sha=$(git rev-parse --short "$rev")
    src=$WORK/src-$sha
    if [ ! -d "$src" ]; then
      mkdir -p "$src"
      git archive "$sha" | tar -x -C "$src"
    fi
    cp examples/bench_server.rs "$src/examples/bench_server.rs"
    (cd "$src" && CARGO_TARGET_DIR=$WORK/target cargo build -q --release --example bench_server)
    mkdir -p "$WORK/bin"
    cp "$WORK/target/release/examples/bench_server" "$WORK/bin/bench_server-$sha"
    BIN[$rev]=$WORK/bin/bench_server-$sha
  fi
done

cat > "$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
function init(args)
  local f = assert(io.open(args[1], "rb")); wrk.body = f:read("*a"); f:close()
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("requests=%d rps=%.1f p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
EOF

# One server per REV and worker count, on ports from BASE_PORT.
declare -A PID URL
port=$BASE_PORT
for rev in "$@"; do
  for w in $WORKERS; do
    args=(--port "$port" --seconds 86400 --handler-us "$HANDLER_US")
    [ "$w" = default ] || args+=(--workers "$w")
    "${BIN[$rev]}" "${args[@]}" 2>"$TMP/server.$port.log" &
    PIDS+=($!); PID[$rev/$w]=$!; URL[$rev/$w]="http://127.0.0.1:$port/statefun"
    port=$((port + 1))
  done
done
for key in "${!URL[@]}"; do
  code=000
  for _ in $(seq 100); do
    code=$(curl -s -o "$TMP/reply.bin" -w '%{http_code}' -H 'Content-Type: application/octet-stream' \
      --data-binary "@$BODY" "${URL[$key]}" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "${URL[$key]} never answered 200 (last: $code)" >&2; exit 1; }
  cmp -s "$TMP/reply.bin" "${BODY%.bin}.expected.bin" \
    || { echo "${URL[$key]}: the reply differs from w1_greet.expected.bin" >&2; exit 1; }
done
echo "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); handler sleeps ${HANDLER_US} us;" \
  "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); every server answers w1_greet byte-identically"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run_wrk() {  # url conns duration
  local threads=$(( $2 > 1 ? 2 : 1 ))
  wrk -t"$threads" -c"$2" -d"$3" --timeout 10s -s "$TMP/post.lua" "$1" -- "$BODY" 2>&1 \
    | grep '^requests=' || { echo "wrk failed against $1" >&2; exit 1; }
}
label() { [ "$1" = . ] && echo "working tree" || git rev-parse --short "$1"; }

if [ -n "${FUTEX:-}" ]; then
  command -v strace >/dev/null || { echo "strace not found" >&2; exit 1; }
  echo "| build | workers | connections | requests | futex calls | per request |"
  echo "|---|---|---:|---:|---:|---:|"
  for rev in "$@"; do
    for w in $WORKERS; do
      for c in $FUTEX_CONNS; do
        strace -f -c -e trace=futex -o "$TMP/strace.txt" -p "${PID[$rev/$w]}" 2>/dev/null &
        spid=$!
        sleep 1
        result=$(run_wrk "${URL[$rev/$w]}" "$c" "$DURATION")
        kill -INT "$spid"; wait "$spid" 2>/dev/null || true
        requests=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$result")
        calls=$(awk '$NF == "futex" {print $4}' "$TMP/strace.txt")
        calls=${calls:-0}
        awk -v b="$(label "$rev")" -v w="$w" -v c="$c" -v r="$requests" -v f="$calls" \
          'BEGIN { printf "| %s | %s | %d | %d | %d | %.2f |\n", b, w, c, r, f, f / r }'
      done
    done
  done
  exit 0
fi

for key in "${!URL[@]}"; do run_wrk "${URL[$key]}" 16 "$WARMUP" >/dev/null; done
for r in $(seq "$REPEAT"); do
  for c in $CONNS; do
    for w in $WORKERS; do
      for rev in "$@"; do
        key=$rev/$w
        before=$(cpu_ticks "${PID[$key]}")
        result=$(run_wrk "${URL[$key]}" "$c" "$DURATION")
        after=$(cpu_ticks "${PID[$key]}")
        requests=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$result")
        cpu_us=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$requests" \
          'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
        line="$result cpu_us_per_req=$cpu_us load=$(cut -d' ' -f1 /proc/loadavg)"
        echo "$line" >> "$TMP/runs.$(label "$rev" | tr ' ' _).w$w.c$c"
        echo "run $r: $(label "$rev"), workers $w, $c connections: $line"
      done
    done
  done
done

median() {  # field file
  grep -o "$1=[0-9.]*" "$2" | cut -d= -f2 | sort -g \
    | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}
errors() { grep -o 'errors=[0-9]*' "$1" | awk -F= '{s+=$2} END {print s+0}'; }
echo
header="| workers | connections |"; rule="|---|---:|"
for rev in "$@"; do
  header+=" $(label "$rev") req/s | CPU us/req | p50 us | errors |"; rule+="---:|---:|---:|---:|"
done
echo "$header"; echo "$rule"
for w in $WORKERS; do
  for c in $CONNS; do
    row="| $w | $c |"
    for rev in "$@"; do
      f="$TMP/runs.$(label "$rev" | tr ' ' _).w$w.c$c"
      row+=" $(median rps "$f") | $(median cpu_us_per_req "$f") | $(median p50_us "$f") | $(errors "$f") |"
    done
    echo "$row"
  done
done
