#!/usr/bin/env python3
"""In-process benchmark of the StateFun 3.3.0 Python SDK RequestReplyHandler.

For each workload beside this file: checks that handle_sync(<w>.bin) returns exactly the bytes of
<w>.expected.bin, and checks the reply's content (parsed with the repository's classes, protocol3.py);
then measures calls/s: each round runs N calls, N chosen so a round takes >= --min-round s;
the median of --rounds rounds is reported.

--mode sync (default) times `handler.handle_sync(request)`, which is `asyncio.run(handle_async(..))`,
so every call creates and closes an event loop. --mode async times `await handler.handle_async(request)`
inside one running loop (what an aiohttp deployment pays).

Usage: target/py33/bin/python benches/workloads3/py_handler_bench.py [--rounds 5] [--min-round 1.0]
         [--seconds S] [--mode sync|async] [--json out.json] [workload ...]
--seconds S: about S seconds of timed rounds per workload (sets --min-round to S / --rounds).
Backend: PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python (the default here; protobuf 3.20.3 has no
C++ wheel for CPython 3.11).
"""
import os

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "gen"))

from google.protobuf import __version__ as pb_version  # noqa: E402
from google.protobuf.internal import api_implementation  # noqa: E402

import protocol3 as p3  # noqa: E402
from bench_pb2 import Count, Greet  # noqa: E402
from functions import handler  # noqa: E402

WORKLOADS = ["w1_greet", "w2_batch100", "w3_bigstate", "w4_fanout", "h1_handshake"]
GREET = "type.googleapis.com/bench.Greet"
COUNT = "type.googleapis.com/bench.Count"
INT = "io.statefun.types/int"


def payload(tv, typename, cls):
    assert tv.typename == typename and tv.has_value, tv
    return cls.FromString(tv.value)


def check_greeter(res, names, first_count):
    assert len(res.state_mutations) == 1, res.state_mutations
    mut = res.state_mutations[0]
    assert mut.state_name == "seen" and mut.mutation_type == p3.MODIFY, mut
    assert payload(mut.state_value, INT, p3.IntWrapper).value == first_count + len(names) - 1
    assert len(res.outgoing_messages) == len(names)
    for i, (out, name) in enumerate(zip(res.outgoing_messages, names)):
        t = out.target
        assert (t.namespace, t.type, t.id) == ("bench", "caller", "c1"), t
        assert payload(out.argument, GREET, Greet).name == "Hello %s #%d" % (name, first_count + i)
    assert not res.outgoing_egresses and not res.delayed_invocations


def check_fanout(res):
    assert not res.state_mutations and not res.delayed_invocations
    assert len(res.outgoing_messages) == 100
    for i, out in enumerate(res.outgoing_messages):
        t = out.target
        assert (t.namespace, t.type, t.id) == ("bench", "greeter", str(i)), t
        assert payload(out.argument, GREET, Greet).name == "Alice"
    assert len(res.outgoing_egresses) == 1
    eg = res.outgoing_egresses[0]
    assert (eg.egress_namespace, eg.egress_type) == ("bench", "out")
    assert payload(eg.argument, COUNT, Count).value == 100


def check_handshake(ff):
    assert ff.WhichOneof("response") == "incomplete_invocation_context", ff
    (spec,) = ff.incomplete_invocation_context.missing_values
    assert spec.state_name == "seen" and spec.type_typename == INT, spec
    assert spec.expiration_spec.mode == p3.EXPIRE_NONE and spec.expiration_spec.expire_after_millis == 0


def validate(name, request, expected):
    reply = handler.handle_sync(request)
    ff = p3.FromFunction.FromString(reply)
    if name == "h1_handshake":
        check_handshake(ff)
    else:
        assert ff.WhichOneof("response") == "invocation_result", ff
        res = ff.invocation_result
        if name == "w2_batch100":
            check_greeter(res, ["user-%d" % i for i in range(100)], 42)
        elif name == "w4_fanout":
            check_fanout(res)
        else:
            check_greeter(res, ["Alice"], 42)
    assert ff == p3.FromFunction.FromString(expected), "reply differs from %s.expected.bin" % name
    assert reply == expected, "reply is not byte-identical to %s.expected.bin" % name
    return len(reply)


def timer(request, mode):
    """A function n -> seconds taken by n handler calls."""
    if mode == "sync":
        def run(n):
            call = handler.handle_sync
            t0 = time.perf_counter()
            for _ in range(n):
                call(request)
            return time.perf_counter() - t0
        return run, None

    loop = asyncio.new_event_loop()

    async def calls(n):
        call = handler.handle_async
        t0 = time.perf_counter()
        for _ in range(n):
            await call(request)
        return time.perf_counter() - t0

    return (lambda n: loop.run_until_complete(calls(n))), loop


def bench(request, mode, rounds, min_round):
    run, loop = timer(request, mode)
    try:
        n = 1
        while True:  # calibrate: a call count whose round takes >= min_round
            dt = run(n)
            if dt >= min_round:
                break
            n = max(n * 2, int(n * min_round * 1.1 / max(dt, 1e-9)))
        per_call = sorted(run(n) / n for _ in range(rounds))
    finally:
        if loop is not None:
            loop.close()
    return n, per_call


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-round", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, help="timed seconds per workload (sets --min-round = S / --rounds)")
    ap.add_argument("--mode", choices=["sync", "async"], default="sync")
    ap.add_argument("--json")
    ap.add_argument("workloads", nargs="*", default=WORKLOADS)
    args = ap.parse_args()
    if args.seconds is not None:
        args.min_round = args.seconds / args.rounds

    from importlib.metadata import version
    env = {
        "python": platform.python_version(),
        "protobuf": pb_version,
        "protobuf_impl": api_implementation.Type(),
        "statefun": version("apache-flink-statefun"),
        "mode": args.mode,
    }
    print("# CPython %(python)s, protobuf %(protobuf)s (%(protobuf_impl)s), apache-flink-statefun %(statefun)s,"
          " handle_%(mode)s" % env)
    print("# median of %d rounds, each >= %.2fs; every reply checked byte for byte against <w>.expected.bin"
          % (args.rounds, args.min_round))
    hdr = "%-13s %9s %9s %11s %10s %10s %10s" % (
        "workload", "req_B", "reply_B", "calls/s", "us/call", "min_us", "max_us")
    print(hdr)
    print("-" * len(hdr))
    results = []
    for name in args.workloads:
        with open(os.path.join(HERE, name + ".bin"), "rb") as f:
            request = f.read()
        with open(os.path.join(HERE, name + ".expected.bin"), "rb") as f:
            expected = f.read()
        reply_len = validate(name, request, expected)
        n, per_call = bench(request, args.mode, args.rounds, args.min_round)
        med = statistics.median(per_call)
        row = dict(workload=name, request_bytes=len(request), reply_bytes=reply_len,
                   reply_bytes_identical=True, calls_per_round=n,
                   calls_per_s=1.0 / med, us_per_call=med * 1e6,
                   min_us=per_call[0] * 1e6, max_us=per_call[-1] * 1e6)
        results.append(row)
        print("%-13s %9d %9d %11.0f %10.1f %10.1f %10.1f" % (
            name, len(request), reply_len, row["calls_per_s"], row["us_per_call"],
            row["min_us"], row["max_us"]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
