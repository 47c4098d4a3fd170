#!/usr/bin/env bash
# Whether handle() costs as much per request byte at the body limit as at 1 MiB, on every
# hostile request shape of benches/workloads/shapes.rs (issue 21): instructions per request
# byte under callgrind, and time per MB from a plain run of the release build.
#
#   scripts/complexity.sh [SHAPE...]      (default: every shape)
#
# Each shape is built at each size, on each protocol, in the `complexity` bench binary
# (STATEFUN_BENCH_SHAPE mode, no criterion). Under callgrind, --toggle-collect on
# RequestReplyHandler::handle counts the instructions of handle() alone: building the
# request and the handler, which costs about as much again, is left out without a second
# run (a 32 MiB request under callgrind takes a minute or more). The first call of
# handle() also pays for first-time costs (the allocator's first pages, a few hundred
# instructions), nothing next to a megabyte. The plain run times ITER_TIME calls and keeps
# the fastest, the figure least disturbed by other jobs on the machine.
#
# Prints, per shape and protocol, the instructions per byte at each size, the ratio of the
# figure at the largest size to the one at the smallest ("flat" when at most 1.2), the
# time per MB (10^6 bytes) at each size and the worst of them; then the request at the
# largest size (its distinct states and invocations, and whether the bench had to raise the
# handler's max_invocations to hold them).
#
# Env: SIZES (MiB, default "1 2 4 8 16 32"), VERSIONS (default "2.2 3.x"), ITER (calls
# under callgrind, default 1), ITER_TIME (calls timed, default 5), NO_CALLGRIND=1 or
# NO_TIME=1 to skip either, STATEFUN_BENCH_METRICS=1 to have the handler count in a
# metrics registry, CARGO_TARGET_DIR, BIN=path to use a bench binary already built (for
# example one of another commit), OUT=file to append the table to.
set -euo pipefail
cd "$(dirname "$0")/.."

read -ra SIZES <<< "${SIZES:-1 2 4 8 16 32}"
read -ra VERSIONS <<< "${VERSIONS:-2.2 3.x}"
SHAPES=("$@")
[ ${#SHAPES[@]} -gt 0 ] || SHAPES=(repeated merged_then_repeated merged unknown_top
  unknown_batch unknown_state unknown_invocation unknown_state_value unknown_argument
  deep_groups invocations long_state_names long_address long_typenames)
[ -n "${NO_CALLGRIND:-}" ] || command -v valgrind >/dev/null \
  || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 1; }

if [ -z "${BIN:-}" ]; then
  BIN=$(cargo bench --bench complexity --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
fi
[ -x "$BIN" ] || { echo "could not build the complexity bench binary" >&2; exit 1; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

# The instructions of handle() per call: shape version size.
handle_ir() {
  local iter=${ITER:-1}
  STATEFUN_BENCH_SHAPE="$1 $2 $3M $iter" valgrind --tool=callgrind \
    --toggle-collect='statefun_sync::handler::RequestReplyHandler::handle' \
    --callgrind-out-file="$TMP/cg.out" "$BIN" > "$TMP/line" 2> "$TMP/valgrind.log" \
    || { cat "$TMP/valgrind.log" >&2; exit 1; }
  local total
  total=$(grep -E '^(summary|totals):' "$TMP/cg.out" | head -1 | awk '{print $2}')
  echo $((total / iter))
}

# The line of a plain run: shape version bytes states invocations limits min_ns median_ns.
timed() {
  STATEFUN_BENCH_SHAPE="$1 $2 $3M ${ITER_TIME:-5}" "$BIN"
}

{
  printf '# instructions per request byte of handle() and ms per MB; %s, %s, metrics %s\n' \
    "$(valgrind --version 2>/dev/null || echo 'no valgrind')" "$(date -u +%FT%TZ)" \
    "${STATEFUN_BENCH_METRICS:-0}"
  printf '%-21s %-4s' shape ver
  for s in "${SIZES[@]}"; do printf ' %8s' "Ir/B@${s}M"; done
  printf ' %6s' "ratio"
  for s in "${SIZES[@]}"; do printf ' %9s' "ms/MB@${s}M"; done
  printf ' %7s  %s\n' worst 'at the largest size'
  for shape in "${SHAPES[@]}"; do
    for v in "${VERSIONS[@]}"; do
      printf '%-21s %-4s' "$shape" "$v"
      first=""; last=""
      for s in "${SIZES[@]}"; do
        if [ -n "${NO_CALLGRIND:-}" ]; then printf ' %8s' -; continue; fi
        ir=$(handle_ir "$shape" "$v" "$s")
        bytes=$(awk '{print $3}' "$TMP/line")
        perbyte=$(awk -v i="$ir" -v b="$bytes" 'BEGIN {printf "%.2f", i / b}')
        printf ' %8s' "$perbyte"
        [ -n "$first" ] || first=$perbyte
        last=$perbyte
      done
      if [ -n "$first" ]; then
        printf ' %6s' "$(awk -v a="$first" -v b="$last" 'BEGIN {printf "%.2f", b / a}')"
      else
        printf ' %6s' -
      fi
      worst=-; line=""
      for s in "${SIZES[@]}"; do
        if [ -n "${NO_TIME:-}" ]; then printf ' %9s' -; continue; fi
        line=$(timed "$shape" "$v" "$s")
        permb=$(awk '{printf "%.2f", $7 / 1e6 / ($3 / 1e6)}' <<< "$line")
        printf ' %9s' "$permb"
        worst=$(awk -v a="$worst" -v b="$permb" 'BEGIN {print (a == "-" || b > a ? b : a)}')
      done
      [ -n "$line" ] || line=$(cat "$TMP/line" 2>/dev/null || true)
      printf ' %7s  %s\n' "$worst" \
        "$(awk '{printf "%d bytes, %d states, %d invocations, %s limits", $3, $4, $5, $6}' <<< "$line")"
    done
  done
} | tee -a "${OUT:-/dev/null}"
