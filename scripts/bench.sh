#!/usr/bin/env bash
# The whole benchmark in one command, every figure from the same run:
#
#   scripts/bench.sh            (about 15 minutes on 2 cores; QUICK=1 for a shorter, rougher run)
#
# 1. sets up the Python reference (StateFun Python SDK 2.2.2) from ../shared/bench into
#    target/bench-ref (pure-Python protobuf on CPython 3.11, and the C++ backend on
#    CPython 3.10 when python3.10 is there);
# 2. runs the Python handler benchmark (py_handler_bench.py) with each backend, and the
#    Python SDK 3.3.0's on the 3.x workloads (benches/workloads3/py_handler_bench.py);
# 3. runs `cargo bench` (handle() against the floor, and the scaling benches);
# 4. counts instructions under callgrind (scripts/callgrind.sh);
# 5. runs wrk (http_bench.sh of the reference: 16 connections and 1, keep-alive, w1_greet)
#    against gunicorn with 2 workers, the crate's own server and the tiny_http adapter;
# 6. writes the tables to target/bench-results/<time>/table.md (scripts/bench_table.py).
#
# Needs: cargo, python3 (3.11) with venv, valgrind, wrk, curl. Loopback only; every server
# is stopped by http_bench.sh (and bench_server stops by itself after --seconds).
# Env: SHARED=../shared/bench, CARGO_TARGET_DIR (default target), QUICK=1, SKIP_HTTP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REF=$ROOT/target/bench-ref
OUT=$ROOT/target/bench-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
for tool in cargo python3 valgrind wrk curl; do
  command -v "$tool" > /dev/null || { echo "$tool is missing (apt-get install -y valgrind wrk curl)" >&2; exit 1; }
done
if [ -n "${QUICK:-}" ]; then
  CRITERION_ARGS=(--warm-up-time 1 --measurement-time 2); export DURATION=${DURATION:-4s} REPEAT=${REPEAT:-1}
  PY_ARGS=(--rounds 3 --min-round 0.5); export ITER=${ITER:-50}
else
  CRITERION_ARGS=(--warm-up-time 2 --measurement-time 5); PY_ARGS=(--rounds 5 --min-round 1.0)
fi

echo "== 1. Python reference in $REF"
if [ ! -x "$REF/.venv/bin/python" ]; then
  rm -rf "$REF"; cp -r "$SHARED" "$REF"; chmod -R u+w "$REF"
  "$REF/setup.sh"
fi
if command -v python3.10 > /dev/null && [ ! -x "$REF/.venv310/bin/python" ]; then
  # The C++ protobuf backend of protobuf 3.20.3 has wheels up to CPython 3.10 only.
  python3.10 -m venv "$REF/.venv310" && "$REF/.venv310/bin/pip" install -q --disable-pip-version-check \
    apache-flink-statefun==2.2.2 protobuf==3.20.3 || echo "no C++ backend: pip failed" >&2
fi

{
  echo "date: $(date -u +%FT%TZ)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
  echo "kernel: $(uname -sr)"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
  echo "load average at start: $(cut -d" " -f1-3 /proc/loadavg)"
  echo "rustc: $(rustc -V)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "python: $("$REF/.venv/bin/python" -V 2>&1)"
  echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "valgrind: $(valgrind --version)"
} | tee "$OUT/machine.txt"

echo "== 2. Python handler benchmark"
"$REF/.venv/bin/python" "$REF/py_handler_bench.py" "${PY_ARGS[@]}" --json "$OUT/python.json"
if [ -x "$REF/.venv310/bin/python" ]; then
  PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=cpp "$REF/.venv310/bin/python" "$REF/py_handler_bench.py" \
    "${PY_ARGS[@]}" --json "$OUT/python_cpp.json"
fi
# The 3.x workloads against the Python SDK 3.3.0 (handle_sync, pure-Python protobuf).
[ -x target/py33/bin/python ] || benches/workloads3/setup.sh target/py33
target/py33/bin/python benches/workloads3/py_handler_bench.py "${PY_ARGS[@]}" --json "$OUT/python3.json"

echo "== 3. cargo bench"
export CRITERION_HOME=$OUT/criterion
cargo bench --bench handler -- "${CRITERION_ARGS[@]}" 2>&1 | tee "$OUT/criterion_handler.txt"
cargo bench --bench scaling -- "${CRITERION_ARGS[@]}" 2>&1 | tee "$OUT/criterion_scaling.txt"

echo "== 4. instruction counts"
OUT=$OUT/callgrind.txt scripts/callgrind.sh > /dev/null
cat "$OUT/callgrind.txt"

if [ -z "${SKIP_HTTP:-}" ]; then
  echo "== 5. HTTP"
  cargo build --release --example bench_server
  SERVER=$CARGO_TARGET_DIR/release/examples/bench_server
  export OUTDIR=$OUT/http
  LABEL=gunicorn "$REF/http_bench.sh" ".venv/bin/gunicorn -w 2 -b 127.0.0.1:8000 flask_app:app" 8000
  LABEL=statefun_sync "$REF/http_bench.sh" "$SERVER --port 8080 --seconds 900" 8080
  LABEL=tiny_http_adapter "$REF/http_bench.sh" "$SERVER --port 8081 --seconds 900 --tiny-http" 8081
fi

echo "== 6. tables"
python3 scripts/bench_table.py "$OUT" | tee "$OUT/table.md"
echo "results in $OUT"
