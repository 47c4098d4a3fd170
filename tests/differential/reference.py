"""The Python half of tests/differential.rs: runs requests through the Stateful
Functions Python SDK 2.2.2 (apache-flink-statefun==2.2.2).

Usage: reference.py < REQUESTS > REPLIES

Stdin holds requests (serialized ToFunction), each preceded by its length as a 4-byte
little-endian integer. For each one, stdout gets, in the same framing, either
b"\\x00" + the reply bytes of RequestReplyHandler, or b"\\x01" + the error it raised
("<exception type>: <message>"). Nothing else may be written to stdout
(`run_reference` in tests/support/differential.rs is the other end).

The functions are written as a user would, with the SDK's own API. What they do is
driven by the message: a google.protobuf.Value holding a list of operations, each a list
whose first element names the operation. The Rust half interprets the same operations
with the crate's API; keep the two interpreters in step.
"""

import os
import sys
import typing
from datetime import timedelta

from google.protobuf.any_pb2 import Any
from google.protobuf.struct_pb2 import Value
from google.protobuf.wrappers_pb2 import StringValue

from statefun import (
    RequestReplyHandler,
    StatefulFunctions,
    kafka_egress_record,
    kinesis_egress_record,
)

# The framing loop is shared with the other reference.py: tests/support/framing.py (no
# bytecode cache left in the source tree).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from framing import serve_framed  # noqa: E402

# Where the read-only operations ("get", "unpack", "address", "caller") report what they saw.
PROBE = "probe/out"
# Sent by "get" and "unpack" when the state has no value.
NONE_TYPE_URL = "probe/None"


def none_marker():
    marker = Any()
    marker.type_url = NONE_TYPE_URL
    return marker


def any_of(value):
    """An Any, written in a script as [type_url, hex of the value bytes]."""
    parts = value.list_value.values
    message = Any()
    message.type_url = parts[0].string_value
    message.value = bytes.fromhex(parts[1].string_value)
    return message


def run_script(context, script):
    for op_value in script.list_value.values:
        op = op_value.list_value.values

        def s(i):
            return op[i].string_value

        def delay(i):
            return timedelta(microseconds=int(op[i].number_value))

        name = s(0)
        if name == "send":
            context.send(s(1), s(2), any_of(op[3]))
        elif name == "pack_send":
            context.pack_and_send(s(1), s(2), op[3])
        elif name == "reply":
            context.reply(any_of(op[1]))
        elif name == "pack_reply":
            context.pack_and_reply(op[1])
        elif name == "send_after":
            context.send_after(delay(1), s(2), s(3), any_of(op[4]))
        elif name == "pack_send_after":
            context.pack_and_send_after(delay(1), s(2), s(3), op[4])
        elif name == "egress":
            context.send_egress(s(1), any_of(op[2]))
        elif name == "pack_egress":
            context.pack_and_send_egress(s(1), op[2])
        elif name == "kafka":
            record = kafka_egress_record(topic=s(2), key=s(3), value=op[4])
            context.pack_and_send_egress(s(1), record)
        elif name == "kinesis":
            record = kinesis_egress_record(
                stream=s(2), partition_key=s(3), explicit_hash_key=s(4), value=op[5]
            )
            context.pack_and_send_egress(s(1), record)
        elif name == "set":
            context[s(1)] = any_of(op[2])
        elif name == "pack_set":
            context.state(s(1)).pack(op[2])
        elif name == "delete":
            del context[s(1)]
        elif name == "get":
            value = context[s(1)]
            context.send(PROBE, "get", none_marker() if value is None else value)
        elif name == "unpack":
            value = context.state(s(1)).unpack(Value)
            if value is None:
                context.send(PROBE, "unpack", none_marker())
            else:
                context.pack_and_send(PROBE, "unpack", value)
        elif name == "address":
            context.pack_and_send(PROBE, "address", StringValue(value=repr(context.address)))
        elif name == "caller":
            context.pack_and_send(PROBE, "caller", StringValue(value=repr(context.caller)))
        elif name in ("fail", "panic"):
            raise RuntimeError(s(1))
        else:
            raise ValueError("the test sent an unknown operation %r" % name)


def untyped(context, message):
    """diff/untyped: takes any message; runs it if it is a script, else does nothing."""
    if message.Is(Value.DESCRIPTOR):
        script = Value()
        message.Unpack(script)
        run_script(context, script)


def typed(context, message: Value):
    """diff/typed: takes only scripts."""
    run_script(context, message)


def union(context, message: typing.Union[Value, StringValue]):
    """diff/union: runs scripts, and sends strings to the egress probe/strings."""
    if isinstance(message, Value):
        run_script(context, message)
    else:
        context.pack_and_send_egress("probe/strings", message)


def main():
    functions = StatefulFunctions()
    functions.register("diff/untyped", untyped)
    functions.register("diff/nested/fn", untyped)
    functions.register("diff/typed", typed)
    functions.register("diff/union", union)
    handler = RequestReplyHandler(functions)
    serve_framed(handler)


if __name__ == "__main__":
    main()
