"""Serves a Stateful Functions Python SDK handler over plain http.server, for the tests
that run a Python function as a remote function (`PythonApp` in tests/support/python.rs,
which puts this directory on PYTHONPATH).

`serve(handle)` answers every POST with `handle(body)` (200, application/octet-stream);
an exception becomes a 500 whose text body is "<exception type>: <message>", which the
runtime retries. It serves on 127.0.0.1 at a free port, prints the port as the first
line on stdout, and exits when its stdin closes (the test ended or died) or after 120
seconds, whichever comes first.
"""

import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


def serve(handle):
    """Serves `handle` (request bytes -> reply bytes) until stdin closes or 120 s pass."""

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                reply = handle(body)
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

    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    print(server.server_address[1], flush=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    watchdog = threading.Timer(120, lambda: os._exit(0))
    watchdog.daemon = True
    watchdog.start()
    server.serve_forever()
