"""A Python SDK 2.2.2 function for tests/local_runtime_python.rs, over plain http.server.

`py/greeter` counts the greetings each id got (state `seen`, an Int64Value), replies to
the caller with "hello <name> #<seen>" (a StringValue), sends the caller
"reminder for <name>" after 60 seconds, and emits the reply to the egress
`py/greetings` in a Kafka record (topic `greetings`, key = its id). The message "fail"
makes it raise, which this server answers with a 500.

It serves through `serve` of tests/support/http_app.py (on PYTHONPATH when `PythonApp`
starts it): on 127.0.0.1 at a free port, printed as the first line on stdout, until its
stdin closes (the test ended or died) or 120 seconds pass.
"""

from datetime import timedelta

from google.protobuf.wrappers_pb2 import Int64Value, StringValue
from statefun import RequestReplyHandler, StatefulFunctions, kafka_egress_record

from http_app import serve

functions = StatefulFunctions()


@functions.bind("py/greeter")
def greeter(context, message: StringValue):
    if message.value == "fail":
        raise ValueError("asked to fail")
    seen = context.state("seen").unpack(Int64Value) or Int64Value()
    seen.value += 1
    context.state("seen").pack(seen)
    reply = StringValue(value="hello %s #%d" % (message.value, seen.value))
    context.pack_and_reply(reply)
    caller = context.caller
    context.pack_and_send_after(
        timedelta(seconds=60),
        caller.typename(),
        caller.identity,
        StringValue(value="reminder for " + message.value),
    )
    record = kafka_egress_record(topic="greetings", key=context.address.identity, value=reply)
    context.pack_and_send_egress("py/greetings", record)


handler = RequestReplyHandler(functions)


if __name__ == "__main__":
    serve(handler)
