#!/usr/bin/env python3
"""Is the Python SDK 3.3.0's reply encoding canonical?

For each <name>.expected.bin beside this file:
  1. parse it with the repository's classes (protocol3.py, from proto/v3/*.proto) and re-serialize;
     also with the SDK's own generated classes (statefun.request_reply_pb2);
  2. walk the wire bytes field by field, guided by the descriptors, and check that every message
     has its fields in field-number order (a repeated field's elements consecutive), and that no
     proto3 implicit-presence scalar carries its default value (0, "", false, empty bytes).
Then prints the annotated hex of w1_greet.expected.bin and h1_handshake.expected.bin
(--dump NAME ... for others; --dump-request NAME ... for requests), and, with --probes, how the SDK encodes a few things the workloads
do not use (int 0, DELETE, delayed messages, cancellations, expiration specs).

Run: target/py33/bin/python benches/workloads3/encoding_check.py [--probes] [--dump NAME ...]
                                                                  [--dump-request NAME ...]
"""
import os

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import argparse  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "gen"))

from google.protobuf.descriptor import FieldDescriptor as FD  # noqa: E402
from google.protobuf.internal import api_implementation  # noqa: E402

import bench_pb2  # noqa: E402
import protocol3 as p3  # noqa: E402

WORKLOADS = ["w1_greet", "w2_batch100", "w3_bigstate", "w4_fanout", "h1_handshake"]
WIRE = {0: "VARINT", 1: "I64", 2: "LEN", 5: "I32"}


def value_descriptor(typename):
    """The message a TypedValue.value holds, from its typename (None if unknown)."""
    if typename.startswith("type.googleapis.com/bench."):
        return bench_pb2.DESCRIPTOR.message_types_by_name[typename.rsplit(".", 1)[1]]
    wrappers = {"int": "IntWrapper", "long": "LongWrapper", "float": "FloatWrapper",
                "double": "DoubleWrapper", "string": "StringWrapper", "bool": "BooleanWrapper"}
    if typename.startswith("io.statefun.types/"):
        return p3.POOL.FindMessageTypeByName("io.statefun.sdk.types." + wrappers[typename.split("/")[1]])
    return None


def varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def hexs(b):
    return " ".join("%02x" % x for x in b)


def show(field, raw, value):
    if field.type == FD.TYPE_STRING:
        return repr(raw.decode("utf-8"))
    if field.type == FD.TYPE_BYTES:
        return "%d bytes" % len(raw)
    if field.type == FD.TYPE_ENUM:
        v = field.enum_type.values_by_number.get(value)
        return "%s (%d)" % (v.name if v else "?", value)
    if field.type == FD.TYPE_BOOL:
        return "true" if value else "false"
    return str(value)


def decode_fixed(field, raw):
    import struct
    fmt = {FD.TYPE_SFIXED32: "<i", FD.TYPE_FIXED32: "<I", FD.TYPE_FLOAT: "<f",
           FD.TYPE_SFIXED64: "<q", FD.TYPE_FIXED64: "<Q", FD.TYPE_DOUBLE: "<d"}[field.type]
    return struct.unpack(fmt, raw)[0]


def walk(buf, desc, depth, lines, problems, path):
    """Annotates buf (one message of type desc) into lines; appends canonical-form violations to problems."""
    pos, last, seen_numbers, typename = 0, 0, set(), None
    while pos < len(buf):
        start = pos
        key, pos = varint(buf, pos)
        num, wt = key >> 3, key & 7
        field = desc.fields_by_number.get(num)
        name = "%s.%s" % (desc.name, field.name) if field else "%s.<unknown %d>" % (desc.name, num)
        where = "%s/%s" % (path, field.name if field else num)
        if num < last or (num == last and not (field and field.label == FD.LABEL_REPEATED)):
            problems.append("%s: field %d after field %d" % (where, num, last))
        if num != last and num in seen_numbers:
            problems.append("%s: repeated field %d not contiguous" % (where, num))
        seen_numbers.add(num)
        last = num
        if wt == 0:
            value, pos = varint(buf, pos)
            raw = None
        elif wt in (1, 5):
            size = 8 if wt == 1 else 4
            raw, pos = buf[pos:pos + size], pos + size
            value = decode_fixed(field, raw) if field else None
        elif wt == 2:
            size, hdr_end = varint(buf, pos)
            raw, pos = buf[hdr_end:hdr_end + size], hdr_end + size
            value = None
        else:
            problems.append("%s: wire type %d" % (where, wt))
            break
        label = "%s (%d, %s)" % (name, num, WIRE[wt])
        if field is None:
            lines.append((depth, hexs(buf[start:pos]), label + " UNKNOWN"))
            problems.append("%s: unknown field" % where)
            continue
        implicit = (field.label != FD.LABEL_REPEATED and field.type != FD.TYPE_MESSAGE
                    and field.containing_oneof is None)
        if field.type == FD.TYPE_MESSAGE:
            lines.append((depth, hexs(buf[start:hdr_end]), "%s, %d bytes%s" % (label, size, " (empty message)" if not size else "")))
            walk(raw, field.message_type, depth + 1, lines, problems, where)
        else:
            if wt == 2:
                value = raw
                shown = show(field, raw, None)
                if field.type == FD.TYPE_BYTES:
                    inner = value_descriptor(typename) if (desc.name == "TypedValue" and typename) else None
                    if inner is not None:
                        shown += " = serialized %s" % inner.full_name
                    lines.append((depth, hexs(buf[start:hdr_end]), "%s = %s" % (label, shown)))
                    if inner is not None:
                        walk(raw, inner, depth + 1, lines, problems, where)
                    elif len(raw) <= 32:
                        lines.append((depth + 1, hexs(raw), "(raw)"))
                    else:
                        lines.append((depth + 1, hexs(raw[:16]) + " ...", "(raw, %d bytes)" % len(raw)))
                else:
                    lines.append((depth, hexs(buf[start:pos]), "%s = %s" % (label, shown)))
                if field.name == "typename":
                    typename = raw.decode("utf-8")
            else:
                lines.append((depth, hexs(buf[start:pos]), "%s = %s" % (label, show(field, raw, value))))
            if implicit and not value:
                problems.append("%s: default value %r written" % (where, value))


def annotate(data, desc):
    lines, problems = [], []
    walk(data, desc, 0, lines, problems, desc.name)
    return lines, problems


def print_annotated(title, data, desc):
    lines, _ = annotate(data, desc)
    print("\n%s (%d bytes):\n%s\n" % (title, len(data), " ".join("%02x" % b for b in data)))
    width = max(len("  " * d + h) for d, h, _ in lines if len(h) <= 60) + 2
    for depth, h, label in lines:
        left = "  " * depth + h
        if len(left) > width:
            print(left)
            print(" " * width + label)
        else:
            print(left.ljust(width) + label)


def probes():
    """A few encodings outside the workloads, made by the SDK itself."""
    from datetime import timedelta
    from statefun import (IntType, RequestReplyHandler, StatefulFunctions, ValueSpec, message_builder)

    fns = StatefulFunctions()
    specs = [ValueSpec(name="a", type=IntType),
             ValueSpec(name="b", type=IntType, expire_after_write=timedelta(seconds=2)),
             ValueSpec(name="c", type=IntType, expire_after_call=timedelta(milliseconds=1500))]

    @fns.bind("probe/f", specs=specs)
    def f(context, message):
        context.storage.a = 0        # int 0: value is empty bytes
        del context.storage.b        # DELETE
        context.send_after(timedelta(milliseconds=250),
                           message_builder(target_typename="probe/g", target_id="x", int_value=7))
        context.send_after(timedelta(milliseconds=250),
                           message_builder(target_typename="probe/g", target_id="x", int_value=7), "tok")
        context.cancel_delayed_message("tok")

    h = RequestReplyHandler(fns)

    def req(states):
        tf = p3.ToFunction()
        b = tf.invocation
        b.target.namespace, b.target.type, b.target.id = "probe", "f", "1"
        for n in states:
            b.state.add().state_name = n
        inv = b.invocations.add()
        inv.argument.typename, inv.argument.has_value = "io.statefun.types/int", True
        return tf.SerializeToString()

    hs = h.handle_sync(req([]))
    print_annotated("probe: handshake for a (no expiration), b (expire_after_write 2 s), c (expire_after_call 1.5 s)",
                    hs, p3.FromFunction.DESCRIPTOR)
    run = h.handle_sync(req(["a", "b", "c"]))
    print_annotated("probe: a = 0, del b, send_after 250 ms without and with token, cancel 'tok'",
                    run, p3.FromFunction.DESCRIPTOR)
    for title, data in (("handshake", hs), ("run", run)):
        _, problems = annotate(data, p3.FromFunction.DESCRIPTOR)
        same = p3.FromFunction.FromString(data).SerializeToString() == data
        print("probe %s: re-serialized identical: %s; canonical-form problems: %s"
              % (title, "yes" if same else "NO", problems or "none"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", nargs="*", default=["w1_greet", "h1_handshake"])
    ap.add_argument("--dump-request", nargs="*", default=[], help="also annotate these requests (<name>.bin)")
    ap.add_argument("--probes", action="store_true")
    args = ap.parse_args()
    from statefun.request_reply_pb2 import FromFunction as SdkFromFunction

    print("# protobuf backend: %s" % api_implementation.Type())
    print("%-14s %8s %22s %22s %s" % ("reply", "bytes", "re-serialized (ours)", "re-serialized (SDK's)", "wire walk"))
    all_ok = True
    for name in WORKLOADS:
        with open(os.path.join(HERE, name + ".expected.bin"), "rb") as f:
            data = f.read()
        ours = p3.FromFunction.FromString(data).SerializeToString() == data
        sdks = SdkFromFunction.FromString(data).SerializeToString() == data
        _, problems = annotate(data, p3.FromFunction.DESCRIPTOR)
        all_ok &= ours and sdks and not problems
        print("%-14s %8d %22s %22s %s" % (name, len(data), "identical" if ours else "DIFFERENT",
                                          "identical" if sdks else "DIFFERENT",
                                          "canonical" if not problems else "; ".join(problems)))
    for name in args.dump:
        with open(os.path.join(HERE, name + ".expected.bin"), "rb") as f:
            print_annotated(name + ".expected.bin", f.read(), p3.FromFunction.DESCRIPTOR)
    for name in args.dump_request:
        with open(os.path.join(HERE, name + ".bin"), "rb") as f:
            print_annotated(name + ".bin", f.read(), p3.ToFunction.DESCRIPTOR)
    if args.probes:
        probes()
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
