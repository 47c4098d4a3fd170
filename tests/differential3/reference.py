"""The Python half of tests/differential3.rs: runs requests through the Stateful
Functions Python SDK 3.3.0 (apache-flink-statefun==3.3.0, protobuf==3.20.3), the 3.x
protocol.

Usage: reference.py < REQUESTS > REPLIES

Stdin holds requests (serialized ToFunction), each preceded by its length as a 4-byte
little-endian integer. For each one, stdout gets, in the same framing, either
b"\\x00" + the bytes RequestReplyHandler.handle_sync returned, or b"\\x01" + the error it
raised ("<exception type>: <message>"). Nothing else may be written to stdout.

The functions are written as a user would, with the SDK's own API. What they do is
driven by the message: a google.protobuf.Value (make_protobuf_type) holding a list of
operations, each a list whose first element names the operation. A message of another
type is reported instead, or, by diff3/forward, sent on as it came. The Rust half
interprets the same operations with the crate's API (`run_script` in differential3.rs);
keep the two interpreters in step.

A value without a value (a script's ["none", kind]) cannot go through message_builder or
egress_message_builder, which raise ValueError for `value=None`: it is sent as the SDK's
own Message / EgressMessage around `to_typed_value(type, None)`, a TypedValue with the
typename alone, as a received message's `typed_value` is sent on.
"""

import json
import os
import sys
from datetime import timedelta

from google.protobuf.struct_pb2 import Value

from statefun import (
    BoolType,
    DoubleType,
    EgressMessage,
    FloatType,
    IntType,
    LongType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    make_json_type,
    make_protobuf_type,
    message_builder,
    simple_type,
)
from statefun.utils import to_typed_value

# The framing loop is shared with the other reference.py: tests/support/framing.py (no
# bytecode cache left in the source tree).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from framing import serve_framed  # noqa: E402

# The scripts, and the protobuf-typed state: type.googleapis.com/google.protobuf.Value.
SCRIPT_TYPE = make_protobuf_type(Value)
# The JSON-typed state and values.
JSON_TYPE = make_json_type("diff3.types/Doc")
# Where "get", "address", "caller" and messages of the built-in types report what they saw.
PROBE = "probe/out"
# Where messages of any other type are reported, as "<typename> <hex of the bytes>".
ECHO = "probe/echo"
# Sent by "get" for a state without a value.
NONE_TYPE = simple_type("probe/None", serialize_fn=lambda _: b"", deserialize_fn=lambda _: None)

# Where diff3/forward sends every message that is not a script, as it came: to this
# function (id "1") and to this egress.
FORWARDED = "probe/forwarded"

BUILTINS = {t.typename: t for t in (IntType, LongType, FloatType, DoubleType, BoolType, StringType)}

# The types of a script's value kinds, but "raw", whose typename the script gives.
KINDS = {
    "int": IntType,
    "long": LongType,
    "float": FloatType,
    "double": DoubleType,
    "bool": BoolType,
    "string": StringType,
    "proto": SCRIPT_TYPE,
    "json": JSON_TYPE,
}

# Every state name a script may use, with its type (whichever function declares it).
STATE_TYPES = {
    "int_v": IntType,
    "long_v": LongType,
    "float_v": FloatType,
    "double_v": DoubleType,
    "bool_v": BoolType,
    "str_v": StringType,
    "proto_v": SCRIPT_TYPE,
    "json_v": JSON_TYPE,
    # diff3/names: names str.isidentifier() and str.islower() accept, beyond ASCII.
    "zähler": LongType,
    "計数x": IntType,
    "_x": StringType,
    "\U0001d465": DoubleType,  # 𝑥, four bytes of UTF-8
    "x\u0301": BoolType,  # x and a combining acute accent
}

# A script's ["none", kind]: no value of that kind's type.
NO_VALUE = object()


def raw_type(typename):
    return simple_type(typename, serialize_fn=bytes, deserialize_fn=bytes)


def typed(value):
    """A script's typed value, [kind, ...], as (Python value, Type); the value is NO_VALUE
    for ["none", kind] and ["none", "raw", typename]."""
    parts = value.list_value.values
    kind = parts[0].string_value
    if kind == "none":
        of = parts[1].string_value
        if of == "raw":
            return NO_VALUE, raw_type(parts[2].string_value)
        if of in KINDS:
            return NO_VALUE, KINDS[of]
        raise ValueError("the test sent no value of an unknown kind %r" % of)
    if kind == "int":
        return int(parts[1].number_value), IntType
    if kind == "long":
        return int(parts[1].string_value), LongType
    if kind == "float":
        return parts[1].number_value, FloatType
    if kind == "double":
        return parts[1].number_value, DoubleType
    if kind == "bool":
        return parts[1].bool_value, BoolType
    if kind == "string":
        return parts[1].string_value, StringType
    if kind == "proto":
        message = Value()
        message.CopyFrom(parts[1])
        return message, SCRIPT_TYPE
    if kind == "json":
        return json.loads(parts[1].string_value), JSON_TYPE
    if kind == "raw":
        return bytes.fromhex(parts[2].string_value), raw_type(parts[1].string_value)
    raise ValueError("the test sent an unknown value kind %r" % kind)


def delay(value):
    """A script's delay: a number of microseconds, or a string of whole milliseconds (past
    what a float counts exactly, and past what a timedelta holds). A negative number is a
    negative timedelta, which send_after sends as it is."""
    if value.WhichOneof("kind") == "string_value":
        return timedelta(milliseconds=int(value.string_value))
    return timedelta(microseconds=int(value.number_value))


def message_to(typename, id, value, value_type):
    """A Message to `typename`/`id`: `value`, or no value of `value_type`."""
    if value is NO_VALUE:
        typed_value = to_typed_value(value_type, None)
        return Message(target_typename=typename, target_id=id, typed_value=typed_value)
    return message_builder(typename, id, value=value, value_type=value_type)


def egress_message(typename, value, value_type):
    """An EgressMessage to `typename`: `value`, or no value of `value_type`."""
    if value is NO_VALUE:
        return EgressMessage(typename=typename, typed_value=to_typed_value(value_type, None))
    return egress_message_builder(typename, value, value_type)


def probe(context, id, value, value_type):
    context.send(message_builder(PROBE, id, value=value, value_type=value_type))


def probe_none(context, id):
    """Reports a read that gave no value."""
    probe(context, id, b"", NONE_TYPE)


def run_script(context, message, script):
    """Performs `script`'s operations; `message` is the message that carried it."""
    for op_value in script.list_value.values:
        op = op_value.list_value.values

        def s(i):
            return op[i].string_value

        name = s(0)
        if name == "get":
            value = getattr(context.storage, s(1))
            if value is None:
                probe_none(context, "get")
            else:
                # A name no spec has reads, and gets here, only as an attribute of the
                # storage itself: `_typename`, the function's typename, a string (`_cells`,
                # a dict, fails to send as one).
                probe(context, "get", value, STATE_TYPES.get(s(1), StringType))
        elif name == "set":
            setattr(context.storage, s(1), typed(op[2])[0])
        elif name == "remove":
            delattr(context.storage, s(1))
        elif name == "send":
            value, value_type = typed(op[3])
            context.send(message_to(s(1), s(2), value, value_type))
        elif name in ("reply", "send_to_caller"):
            # The 3.x SDK has no reply: a function sends to its caller.
            value, value_type = typed(op[1])
            caller = context.caller
            context.send(message_to(caller.typename, caller.id, value, value_type))
        elif name == "send_after":
            value, value_type = typed(op[4])
            context.send_after(delay(op[1]), message_to(s(2), s(3), value, value_type))
        elif name == "send_after_token":
            value, value_type = typed(op[4])
            message_out = message_to(s(2), s(3), value, value_type)
            context.send_after(delay(op[1]), message_out, cancellation_token=s(5))
        elif name == "cancel":
            context.cancel_delayed_message(s(1))
        elif name == "egress":
            value, value_type = typed(op[2])
            context.send_egress(egress_message(s(1), value, value_type))
        elif name == "forward":
            typed_value = message.typed_value
            context.send(Message(target_typename=s(1), target_id=s(2), typed_value=typed_value))
        elif name == "forward_egress":
            context.send_egress(EgressMessage(typename=s(1), typed_value=message.typed_value))
        elif name == "address":
            a = context.address
            probe(context, "address", "%s|%s|%s" % (a.namespace, a.name, a.id), StringType)
        elif name == "caller":
            c = context.caller
            text = "none" if c is None else "%s|%s|%s" % (c.namespace, c.name, c.id)
            probe(context, "caller", text, StringType)
        elif name in ("fail", "panic"):
            raise RuntimeError(s(1))
        else:
            raise ValueError("the test sent an unknown operation %r" % name)


def interpreter(context, message):
    """Every function but diff3/forward: runs scripts, reports any other message, and
    what it read (`as_type`, `raw_value`), value or none."""
    if message.is_type(SCRIPT_TYPE):
        script = message.as_type(SCRIPT_TYPE)
        if script is None:
            probe_none(context, "message")
        else:
            run_script(context, message, script)
        return
    typename = message.value_typename()
    builtin = BUILTINS.get(typename)
    if builtin is not None:
        value = message.as_type(builtin)
        if value is None:
            probe_none(context, "message")
        else:
            probe(context, "message", value, builtin)
    else:
        raw = message.raw_value()
        text = "%s %s" % (typename, "none" if raw is None else raw.hex())
        context.send_egress(egress_message_builder(ECHO, text, StringType))


def forwarder(context, message):
    """diff3/forward: runs scripts that have a value; sends every other message on as it
    came, without reading it: to FORWARDED, to the egress FORWARDED, and to the caller."""
    if message.is_type(SCRIPT_TYPE) and message.raw_value() is not None:
        run_script(context, message, message.as_type(SCRIPT_TYPE))
        return
    typed_value = message.typed_value
    context.send(Message(target_typename=FORWARDED, target_id="1", typed_value=typed_value))
    context.send_egress(EgressMessage(typename=FORWARDED, typed_value=typed_value))
    caller = context.caller
    if caller is not None:
        context.send(
            Message(target_typename=caller.typename, target_id=caller.id, typed_value=typed_value)
        )


def functions():
    functions = StatefulFunctions()
    functions.register(
        "diff3/builtins",
        interpreter,
        [
            ValueSpec("int_v", IntType, expire_after_call=timedelta(hours=1)),
            ValueSpec("long_v", LongType, expire_after_write=timedelta(milliseconds=1500)),
            ValueSpec("float_v", FloatType),
            ValueSpec("double_v", DoubleType, expire_after_call=timedelta(0)),
            ValueSpec("bool_v", BoolType, expire_after_write=timedelta(days=1)),
            ValueSpec("str_v", StringType),
        ],
    )
    functions.register(
        "diff3/proto",
        interpreter,
        [
            ValueSpec("proto_v", SCRIPT_TYPE, expire_after_write=timedelta(minutes=1)),
            ValueSpec("int_v", IntType),
        ],
    )
    functions.register(
        "diff3/json",
        interpreter,
        [
            ValueSpec("json_v", JSON_TYPE, expire_after_call=timedelta(milliseconds=10)),
            ValueSpec("str_v", StringType, expire_after_write=timedelta(seconds=5)),
        ],
    )
    functions.register(
        "diff3/names",
        interpreter,
        [
            ValueSpec("zähler", LongType, expire_after_write=timedelta(seconds=2)),
            ValueSpec("計数x", IntType),
            ValueSpec("_x", StringType, expire_after_call=timedelta(milliseconds=250)),
            ValueSpec("\U0001d465", DoubleType),
            ValueSpec("x\u0301", BoolType, expire_after_call=timedelta(days=7)),
        ],
    )
    functions.register("diff3/stateless", interpreter)
    functions.register("diff3.app/nested/fn", interpreter)
    functions.register("diff3/forward", forwarder)
    return functions


def main():
    handler = RequestReplyHandler(functions())
    serve_framed(handler.handle_sync)


if __name__ == "__main__":
    main()
