"""The two benchmark functions (see README.md), written with the StateFun 3.3.0 Python SDK.

`handler.handle_sync(request_bytes)` is the reference reply of each workload.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

from statefun import (  # noqa: E402
    IntType, RequestReplyHandler, StatefulFunctions, ValueSpec,
    egress_message_builder, make_protobuf_type, message_builder)

from bench_pb2 import Count, Greet  # noqa: E402

GREET_TYPE = make_protobuf_type(Greet)  # type.googleapis.com/bench.Greet
COUNT_TYPE = make_protobuf_type(Count)  # type.googleapis.com/bench.Count

functions = StatefulFunctions()


@functions.bind(typename="bench/greeter", specs=[ValueSpec(name="seen", type=IntType)])
def greeter(context, message):
    if not message.is_type(GREET_TYPE):
        raise TypeError("bench/greeter expects %s, got %s" % (GREET_TYPE.typename, message.value_typename()))
    name = message.as_type(GREET_TYPE).name
    count = context.storage.seen or 0  # None when the state has no value
    count += 1
    context.storage.seen = count
    caller = context.caller  # SdkAddress; typename = "<namespace>/<type>"
    context.send(message_builder(target_typename=caller.typename, target_id=caller.id,
                                 value=Greet(name="Hello %s #%d" % (name, count)), value_type=GREET_TYPE))


@functions.bind(typename="bench/fanout")
def fanout(context, message):
    if not message.is_type(GREET_TYPE):
        raise TypeError("bench/fanout expects %s, got %s" % (GREET_TYPE.typename, message.value_typename()))
    name = message.as_type(GREET_TYPE).name
    for i in range(100):
        context.send(message_builder(target_typename="bench/greeter", target_id=str(i),
                                     value=Greet(name=name), value_type=GREET_TYPE))
    context.send_egress(egress_message_builder(target_typename="bench/out", value=Count(value=100),
                                               value_type=COUNT_TYPE))


handler = RequestReplyHandler(functions)
