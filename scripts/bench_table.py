#!/usr/bin/env python3
"""Writes the benchmark tables (Markdown) from one scripts/bench.sh run.

    python3 scripts/bench_table.py target/bench-results/<time>

Reads machine.txt, python.json, python_cpp.json, criterion/ (estimates.json, median),
callgrind.txt and http/summary.txt from that directory; a missing part is left out.
"""
import json
import os
import re
import sys

WORKLOADS = ["w1_greet", "w2_batch100", "w3_bigstate", "w4_fanout"]


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return None


def criterion_ns(out, *parts):
    est = load_json(os.path.join(out, "criterion", *parts, "new", "estimates.json"))
    return est["median"]["point_estimate"] if est else None


def callgrind(out):
    rows = {}
    try:
        with open(os.path.join(out, "callgrind.txt")) as f:
            for line in f:
                p = line.split()
                if len(p) >= 4 and p[1].isdigit():
                    rows[p[0]] = (int(p[1]), int(p[2]))
    except OSError:
        pass
    return rows


def http(out):
    rows = {}
    try:
        with open(os.path.join(out, "http", "summary.txt")) as f:
            for line in f:
                m = re.match(r"SUMMARY (\S+) (c16|c1)\s.*rps=([\d.]+) p50_us=(\d+) p99_us=(\d+) errors_total=(\d+)", line)
                if m:
                    rows[(m.group(1), m.group(2))] = dict(
                        rps=float(m.group(3)), p50=int(m.group(4)), p99=int(m.group(5)), errors=int(m.group(6)))
    except OSError:
        pass
    return rows


def fmt(x, digits=0):
    return "n/a" if x is None else f"{x:,.{digits}f}"


def ratio(a, b, digits=1):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:,.{digits}f}x"


def main(out):
    print(f"# Benchmark run {os.path.basename(os.path.normpath(out))}\n")
    try:
        with open(os.path.join(out, "machine.txt")) as f:
            print("".join("    " + line for line in f))
    except OSError:
        pass

    py = {r["workload"]: r for r in (load_json(os.path.join(out, "python.json")) or {}).get("results", [])}
    cpp = {r["workload"]: r for r in (load_json(os.path.join(out, "python_cpp.json")) or {}).get("results", [])}
    ir = callgrind(out)

    print("## Handler level: calls/s (criterion median) and instructions per call (callgrind)\n")
    print("| workload | Python SDK, pure-Python protobuf | Python SDK, C++ protobuf | this crate, `handle()` "
          "| vs pure Python | vs C++ | floor | time handle/floor | Ir handle | Ir floor | Ir handle/floor |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w in WORKLOADS:
        h, f = criterion_ns(out, w, "handle"), criterion_ns(out, w, "floor")
        h_cps = 1e9 / h if h else None
        f_cps = 1e9 / f if f else None
        p = py.get(w, {}).get("calls_per_s")
        c = cpp.get(w, {}).get("calls_per_s")
        hi, fi = ir.get(w, (None, None))
        print(f"| {w} | {fmt(p)} | {fmt(c)} | {fmt(h_cps)} | {ratio(h_cps, p, 0)} | {ratio(h_cps, c, 0)} "
              f"| {fmt(f_cps)} | {ratio(h, f, 2)} | {fmt(hi)} | {fmt(fi)} | {ratio(hi, fi, 2)} |")

    print("\n## Scaling: batch size (w2-style, greetings from one caller)\n")
    print("| invocations | handle ns/invocation | floor ns/invocation | time handle/floor "
          "| Ir handle/invocation | Ir floor/invocation | Ir handle/floor |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in [1, 10, 100, 1000]:
        h, f = criterion_ns(out, "batch", "handle", str(n)), criterion_ns(out, "batch", "floor", str(n))
        hi, fi = ir.get(f"batch{n}", (None, None))
        print(f"| {n} | {fmt(h and h / n, 1)} | {fmt(f and f / n, 1)} | {ratio(h, f, 2)} "
              f"| {fmt(hi and hi / n)} | {fmt(fi and fi / n)} | {ratio(hi, fi, 2)} |")

    print("\n## Scaling: untouched state (w3-style, nine states the greeter does not touch)\n")
    print("| each state | request | handle ns | floor ns | time handle/floor | Ir handle | Ir floor | Ir handle/floor |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, size in [("1K", 1 << 10), ("64K", 64 << 10), ("1M", 1 << 20), ("16M", 16 << 20)]:
        h, f = criterion_ns(out, "untouched_state", "handle", label), criterion_ns(out, "untouched_state", "floor", label)
        hi, fi = ir.get(f"state{label}", (None, None))
        print(f"| {label}iB | {9 * size / 2**20:,.2f} MiB | {fmt(h)} | {fmt(f)} | {ratio(h, f, 2)} "
              f"| {fmt(hi)} | {fmt(fi)} | {ratio(hi, fi, 2)} |")

    rows = http(out)
    if rows:
        print("\n## HTTP level: w1_greet, wrk keep-alive (median of the runs)\n")
        print("| server | 16 conn. req/s | vs gunicorn | p50 us | p99 us | 1 conn. req/s | p50 us | p99 us | errors |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        base = rows.get(("gunicorn", "c16"), {}).get("rps")
        names = {"gunicorn": "Flask + gunicorn, 2 sync workers",
                 "statefun_sync": "this crate, `serve()`'s server",
                 "tiny_http_adapter": "this crate, tiny_http adapter (2 threads)"}
        for label in ["gunicorn", "statefun_sync", "tiny_http_adapter"]:
            a, b = rows.get((label, "c16")), rows.get((label, "c1"))
            if not a or not b:
                continue
            print(f"| {names[label]} | {fmt(a['rps'])} | {ratio(a['rps'], base, 1)} | {a['p50']} | {a['p99']} "
                  f"| {fmt(b['rps'])} | {b['p50']} | {b['p99']} | {a['errors'] + b['errors']} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
