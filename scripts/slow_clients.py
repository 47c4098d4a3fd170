#!/usr/bin/env python3
"""Slow clients against the memory for request bodies (`max_body_memory`), on greeter3.

    scripts/slow_clients.py [PORT]

Builds `greeter3` and `client` (release), starts greeter3 on 127.0.0.1:PORT (default
18080) with its defaults (256 MiB for bodies, 32 MiB per body, a 30 s read timeout), and
opens eight connections that each declare a 32 MiB body and send 100 bytes of it a
second (coming back when the server closes them). Two seconds later it times one small
request, `client --v3` (the greeter and its state handshake), and prints how long it
took. While bodies were charged at their declared length, the eight held the whole
budget and the small request waited for a read timeout; SECURITY.md has the figures.
"""
import os
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 18080
ADDR = ("127.0.0.1", PORT)
HEAD = (
    b"POST /statefun HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 33554432\r\n\r\n"
)


def trickle(stop):
    """Declares 32 MiB, then sends 100 bytes a second; reconnects once closed."""
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = socket.create_connection(ADDR)
                conn.sendall(HEAD)
            conn.sendall(b"\0" * 100)
        except OSError:
            conn = None
            continue
        stop.wait(1)


def main():
    subprocess.run(
        ["cargo", "build", "-q", "--release", "--example", "greeter3", "--example", "client"],
        cwd=ROOT,
        check=True,
    )
    examples = os.path.join(ROOT, "target", "release", "examples")
    server = subprocess.Popen(
        [os.path.join(examples, "greeter3"), "--addr", f"127.0.0.1:{PORT}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()
    try:
        time.sleep(1)
        for _ in range(8):
            threading.Thread(target=trickle, args=(stop,), daemon=True).start()
        time.sleep(2)
        started = time.monotonic()
        small = subprocess.run(
            [os.path.join(examples, "client"), "--v3", "--addr", f"127.0.0.1:{PORT}"],
            capture_output=True,
            text=True,
        )
        elapsed = time.monotonic() - started
        outcome = "answered" if small.returncode == 0 else f"failed ({small.stderr.strip()})"
        print(f"with eight slow clients, a small request was {outcome} after {elapsed:.2f} s")
    finally:
        stop.set()
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
