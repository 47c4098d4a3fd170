#!/usr/bin/env bash
# wrk over TLS against the bench server, beside plain HTTP in the same run.
#
#   scripts/tls_bench.sh
#
# Builds `bench_server` (release), makes a throw-away CA and a server certificate with
# openssl, starts two bench servers (plain HTTP and TLS, w1_greet's functions), and runs,
# alternating the two, REPEAT times: wrk -t2 -c16 and wrk -t1 -c1 on keep-alive
# connections. Prints the medians of req/s, p50 and p99 for each, and TLS/plain ratios.
# wrk's own TLS (OpenSSL) resumes no sessions across its connections, and every
# connection stays open for the whole run, so this measures TLS on keep-alive
# connections; the cost of handshakes is `cargo bench --bench tls`.
# Env: DURATION=10s REPEAT=3 WARMUP=3s PLAIN_PORT=18090 TLS_PORT=18091
# Needs wrk, openssl, curl, and ../shared/bench (the requests and post_body.lua).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk openssl curl; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install -y $tool" >&2; exit 1; }
done
BENCH=../shared/bench
BODY=$BENCH/requests/w1_greet.bin
DURATION=${DURATION:-10s}; REPEAT=${REPEAT:-3}; WARMUP=${WARMUP:-3s}
PLAIN_PORT=${PLAIN_PORT:-18090}; TLS_PORT=${TLS_PORT:-18091}

cargo build -q --release --example bench_server
TMP=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

# A CA and a P-256 server certificate for 127.0.0.1, as cert-manager would issue.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=bench CA" -keyout "$TMP/ca.key" -out "$TMP/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$TMP/tls.key" -out "$TMP/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$TMP/ext"
openssl x509 -req -in "$TMP/tls.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" -CAcreateserial \
  -days 1 -extfile "$TMP/ext" -out "$TMP/tls.crt" 2>/dev/null

target/release/examples/bench_server --port "$PLAIN_PORT" --seconds 3600 2>"$TMP/plain.log" &
PIDS+=($!)
target/release/examples/bench_server --port "$TLS_PORT" --seconds 3600 \
  --tls-cert "$TMP/tls.crt" --tls-key "$TMP/tls.key" 2>"$TMP/tls.log" &
PIDS+=($!)

PLAIN_URL="http://127.0.0.1:$PLAIN_PORT/statefun"
TLS_URL="https://127.0.0.1:$TLS_PORT/statefun"
for url in "$PLAIN_URL" "$TLS_URL"; do
  code=000
  for _ in $(seq 100); do
    code=$(curl -s --cacert "$TMP/ca.crt" -o "$TMP/reply.bin" -w '%{http_code}' \
      -H 'Content-Type: application/octet-stream' --data-binary "@$BODY" "$url" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "$url never answered 200 (last: $code)" >&2; exit 1; }
  cmp -s "$TMP/reply.bin" "${BODY%.bin}.expected.bin" \
    || { echo "$url: the reply differs from w1_greet.expected.bin" >&2; exit 1; }
done
echo "# both servers answer w1_greet byte-identically; $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"

run_wrk() {  # url threads conns duration
  wrk -t"$2" -c"$3" -d"$4" --timeout 5s -s "$BENCH/post_body.lua" "$1" -- "$BODY" 2>&1 \
    | grep '^WRK_RESULT' || { echo "wrk failed against $1" >&2; exit 1; }
}
run_wrk "$PLAIN_URL" 2 16 "$WARMUP" >/dev/null
run_wrk "$TLS_URL" 2 16 "$WARMUP" >/dev/null
for r in $(seq "$REPEAT"); do
  for c in 16 1; do
    t=$((c > 1 ? 2 : 1))
    echo "plain c$c run $r: $(run_wrk "$PLAIN_URL" "$t" "$c" "$DURATION" | tee -a "$TMP/plain.c$c")"
    echo "tls   c$c run $r: $(run_wrk "$TLS_URL" "$t" "$c" "$DURATION" | tee -a "$TMP/tls.c$c")"
  done
done

median() {  # field file
  grep -o "$1=[0-9.]*" "$2" | cut -d= -f2 | sort -g \
    | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}
errors() { grep -o 'err_[a-z]*=[0-9]*' "$1" | awk -F= '{s+=$2} END {print s+0}'; }
echo
echo "| connections | server | req/s | p50 us | p99 us | errors |"
echo "|---:|---|---:|---:|---:|---:|"
for c in 16 1; do
  for side in plain tls; do
    f="$TMP/$side.c$c"
    echo "| $c | $side | $(median rps "$f") | $(median p50_us "$f") | $(median p99_us "$f") | $(errors "$f") |"
  done
  awk -v p="$(median rps "$TMP/plain.c$c")" -v t="$(median rps "$TMP/tls.c$c")" -v c="$c" \
    'BEGIN { printf "# %s connections: plain/TLS throughput %.2fx\n", c, p / t }'
done
