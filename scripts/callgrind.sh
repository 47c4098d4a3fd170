#!/usr/bin/env bash
# Instruction counts of handle() and of the protobuf floor, per call, under callgrind.
#
#   scripts/callgrind.sh [REQUEST...]      (default: the four workloads and the scaling requests)
#
# REQUEST is a workload (w1_greet, w2_batch100, w3_bigstate, w4_fanout; v3_w1_greet ...
# v3_w4_fanout and v3_h1_handshake for 3.x), batch<N> or
# state<N>[K|M] (see benches/workloads/functions.rs). Each request runs in the `handler`
# bench binary (STATEFUN_BENCH_RUN mode, no criterion) N and 2N times; the difference of
# the two totals divided by N is the cost of one call, without the set-up (building the
# request, binding the functions). Instruction counts do not depend on machine noise.
# Env: ITER=N (default 200; 20 for state16M), CARGO_TARGET_DIR, OUT=file to append the table to,
# STATEFUN_BENCH_METRICS=1 to have the handler count in a metrics registry (see
# benches/handler.rs), NO_DEFAULT_FEATURES=1 to build the bench without the crate's default
# features (so without `metrics` compiled in), FEATURES=... to add features.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 1; }

REQUESTS=("$@")
[ ${#REQUESTS[@]} -gt 0 ] || REQUESTS=(w1_greet w2_batch100 w3_bigstate w4_fanout
  v3_w1_greet v3_w2_batch100 v3_w3_bigstate v3_w4_fanout v3_h1_handshake
  batch1 batch10 batch100 batch1000 state1K state64K state1M state16M)

BIN=$(cargo bench --bench handler ${NO_DEFAULT_FEATURES:+--no-default-features} \
  ${FEATURES:+--features "$FEATURES"} --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$BIN" ] || { echo "could not build the handler bench binary" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

total_ir() {  # request mode iterations
  STATEFUN_BENCH_RUN="$1 $2 $3" valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
    "$BIN" > /dev/null 2> "$TMP/valgrind.log" || { cat "$TMP/valgrind.log" >&2; exit 1; }
  grep -E '^(summary|totals):' "$TMP/cg.out" | head -1 | awk '{print $2}'
}

per_call() {  # request mode iterations
  local n=$3 a b
  a=$(total_ir "$1" "$2" "$n"); b=$(total_ir "$1" "$2" $((2 * n)))
  echo $(((b - a) / n))
}

{
  printf '# instructions per call (callgrind, %s), %s\n' "$(valgrind --version)" "$(date -u +%FT%TZ)"
  printf '%-12s %14s %14s %7s %16s\n' request handle_Ir floor_Ir ratio handle_Ir/invoc
  for r in "${REQUESTS[@]}"; do
    n=${ITER:-200}; [ "$r" = state16M ] && n=${ITER:-20}
    h=$(per_call "$r" handle "$n"); f=$(per_call "$r" floor "$n")
    invocations=1; [[ $r =~ ^batch([0-9]+)$ ]] && invocations=${BASH_REMATCH[1]}
    [ "$r" = w2_batch100 ] && invocations=100
    printf '%-12s %14d %14d %7s %16d\n' "$r" "$h" "$f" \
      "$(awk -v h="$h" -v f="$f" 'BEGIN {printf "%.2f", h / f}')" $((h / invocations))
  done
} | tee -a "${OUT:-/dev/null}"
