#!/usr/bin/env python3
"""Writes the StateFun 3.x benchmark requests (<name>.bin, a serialized ToFunction) and the reply of
the Python SDK 3.3.0 to each (<name>.expected.bin, a serialized FromFunction) beside this file.

The requests are built with classes made from the repository's own protocol files
(proto/v3/*.proto via gen/protocol_v3.pb, see protocol3.py) and proto/bench.proto, not with the SDK.
The expected files are the exact bytes of `RequestReplyHandler(functions).handle_sync(request)`
(functions.py), with the pure-Python protobuf backend. Before writing, each SDK reply is parsed with
the repository's classes and compared with an independently built expected message.

Run: benches/workloads3/setup.sh && target/py33/bin/python benches/workloads3/make_requests.py
"""
import os

os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"  # before any protobuf import

import hashlib  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "gen"))

from google.protobuf.internal import api_implementation  # noqa: E402

import bench_pb2  # noqa: E402
import protocol3 as p3  # noqa: E402

BLOB_SIZE = 64 * 1024
INT_TYPENAME = "io.statefun.types/int"
WORKLOADS = ["w1_greet", "w2_batch100", "w3_bigstate", "w4_fanout", "h1_handshake"]


def typed(msg):
    """A protobuf message as a typed value (what the SDK's make_protobuf_type produces)."""
    return p3.TypedValue(typename="type.googleapis.com/" + msg.DESCRIPTOR.full_name,
                         has_value=True, value=msg.SerializeToString())


def int_value(n):
    """An io.statefun.types/int typed value (IntWrapper, sfixed32)."""
    return p3.TypedValue(typename=INT_TYPENAME, has_value=True,
                         value=p3.IntWrapper(value=n).SerializeToString())


def set_addr(a, namespace, type_, id_):
    a.namespace, a.type, a.id = namespace, type_, id_


def to_function(target_type, target_id, states, invocations):
    """states: list of (name, TypedValue or None); invocations: list of (caller_id or None, payload msg)."""
    tf = p3.ToFunction()
    batch = tf.invocation
    set_addr(batch.target, "bench", target_type, target_id)
    for name, value in states:
        pv = batch.state.add()
        pv.state_name = name
        if value is not None:
            pv.state_value.CopyFrom(value)
    for caller_id, payload in invocations:
        inv = batch.invocations.add()
        if caller_id is not None:
            set_addr(inv.caller, "bench", "caller", caller_id)
        inv.argument.CopyFrom(typed(payload))
    return tf


def blob(k):
    # deterministic, incompressible-looking 64 KiB payload for state s<k> (same as the 2.2 workloads)
    return bytes(((i * 131) + (i >> 8) * 7 + k * 17) & 0xFF for i in range(BLOB_SIZE))


def greeter_expected(names, first_count):
    ff = p3.FromFunction()
    res = ff.invocation_result
    m = res.state_mutations.add()
    m.mutation_type = p3.MODIFY
    m.state_name = "seen"
    m.state_value.CopyFrom(int_value(first_count + len(names) - 1))
    for i, name in enumerate(names):
        out = res.outgoing_messages.add()
        set_addr(out.target, "bench", "caller", "c1")
        out.argument.CopyFrom(typed(bench_pb2.Greet(name="Hello %s #%d" % (name, first_count + i))))
    return ff


def fanout_expected():
    ff = p3.FromFunction()
    res = ff.invocation_result
    for i in range(100):
        out = res.outgoing_messages.add()
        set_addr(out.target, "bench", "greeter", str(i))
        out.argument.CopyFrom(typed(bench_pb2.Greet(name="Alice")))
    eg = res.outgoing_egresses.add()
    eg.egress_namespace, eg.egress_type = "bench", "out"
    eg.argument.CopyFrom(typed(bench_pb2.Count(value=100)))
    return ff


def handshake_expected():
    ff = p3.FromFunction()
    spec = ff.incomplete_invocation_context.missing_values.add()
    spec.state_name = "seen"
    spec.type_typename = INT_TYPENAME
    spec.expiration_spec.SetInParent()  # Python always sends it; mode NONE (0) leaves it empty
    return ff


def workloads():
    """[(name, request ToFunction, independently built expected FromFunction)]"""
    seen41 = [("seen", int_value(41))]
    alice = [("c1", bench_pb2.Greet(name="Alice"))]
    names = ["user-%d" % i for i in range(100)]
    blobs = [("s%d" % k, typed(bench_pb2.Blob(data=blob(k)))) for k in range(1, 10)]
    return [
        ("w1_greet", to_function("greeter", "user-1", seen41, alice), greeter_expected(["Alice"], 42)),
        ("w2_batch100",
         to_function("greeter", "user-1", seen41, [("c1", bench_pb2.Greet(name=n)) for n in names]),
         greeter_expected(names, 42)),
        # s1..s9 are not declared by bench/greeter: the SDK ignores them, so the reply equals w1's
        ("w3_bigstate", to_function("greeter", "user-1", seen41 + blobs, alice), greeter_expected(["Alice"], 42)),
        ("w4_fanout", to_function("fanout", "f1", [], alice), fanout_expected()),
        # the runtime's first request: no states, so the SDK asks for "seen" and runs nothing
        ("h1_handshake", to_function("greeter", "user-1", [], alice), handshake_expected()),
    ]


def main():
    assert api_implementation.Type() == "python", api_implementation.Type()
    from functions import handler  # the SDK (imported late: only the expected files need it)

    for name, req, exp in workloads():
        request = req.SerializeToString()
        reply = handler.handle_sync(request)
        got = p3.FromFunction.FromString(reply)
        if got != exp:
            sys.exit("%s: the SDK reply differs from the expected message\n--- got:\n%s\n--- expected:\n%s"
                     % (name, got, exp))
        same = exp.SerializeToString() == reply
        for suffix, data in (("", request), (".expected", reply)):
            path = os.path.join(HERE, name + suffix + ".bin")
            with open(path, "wb") as f:
                f.write(data)
            print("%-26s %8d bytes  sha256 %s" % (name + suffix + ".bin", len(data), hashlib.sha256(data).hexdigest()))
        print("%-26s SDK reply == expected message: yes; == its canonical encoding: %s"
              % ("", "yes" if same else "NO"))


if __name__ == "__main__":
    main()
