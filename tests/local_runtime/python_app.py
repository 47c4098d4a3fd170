"""A Python SDK 2.2.2 function for tests/local_runtime_python.rs, over plain http.server.

`py/greeter` counts the greetings each id got (state `seen`, an Int64Value), replies to
the caller with "hello <name> #<seen>" (a StringValue), sends the caller
"reminder for <name>" after 60 seconds, and emits the reply to the egress
`py/greetings` in a Kafka record (topic `greetings`, key = its id). The message "fail"
makes it raise, which this server answers with a 500.

It serves on 127.0.0.1 at a free port, prints the port as the first line on stdout, and
exits when its stdin closes (the test ended or died) or after 120 seconds, whichever
comes first.
"""

import os
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

from google.protobuf.wrappers_pb2 import Int64Value, StringValue
from statefun import RequestReplyHandler, StatefulFunctions, kafka_egress_record

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


class Endpoint(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            reply = handler(body)
            status, content_type = 200, "application/octet-stream"
        except Exception as error:  # the runtime retries a 500
            reply = ("%s: %s" % (type(error).__name__, error)).encode()
            status, content_type = 500, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format, *args):
        pass


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    print(server.server_address[1], flush=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    watchdog = threading.Timer(120, lambda: os._exit(0))
    watchdog.daemon = True
    watchdog.start()
    server.serve_forever()
