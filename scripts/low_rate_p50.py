#!/usr/bin/env python3
"""Latency of single requests at a low rate, against examples/greeter3 (3.x).

    scripts/low_rate_p50.py [--port 8000] [--rate 50] [--count 1000] [--addresses 1]

Sends `count` batches of one GreetRequest for example/greeter (with its state `seen`, so no
handshake) at `rate` requests per second, over one keep-alive connection, round robin over
`addresses` ids, and prints the p50, p90, p99 and max time from the request's first byte to
the reply's last, in microseconds. For `ServerBuilder::grow_batches`: at a low rate it must
add nothing (BENCHMARKS.md, issue 20). The request is encoded by hand (no protobuf package
needed); the reply's status and content type are checked.
"""
import argparse
import socket
import struct
import time


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def typed_value(typename, value):
    return field(1, typename.encode()) + varint(2 << 3) + b"\x01" + field(3, value)


def greet_request(user, seen):
    address = field(1, b"example") + field(2, b"greeter") + field(3, user.encode())
    state = field(1, b"seen") + field(2, typed_value("io.statefun.types/int", b"\x0d" + struct.pack("<i", seen)))
    greet = field(1, user.encode())  # example.GreetRequest { name = 1 }
    invocation = field(2, typed_value("type.googleapis.com/example.GreetRequest", greet))
    batch = field(1, address) + field(2, state) + field(3, invocation)
    return field(100, batch)  # ToFunction.invocation


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--addresses", type=int, default=1)
    args = parser.parse_args()

    sock = socket.create_connection(("127.0.0.1", args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    requests = []
    for i in range(args.addresses):
        body = greet_request("low%d" % i, 0)
        head = ("POST /statefun HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(body))
        requests.append(head.encode() + body)
    times = []
    buf = b""
    gap = 1.0 / args.rate
    next_at = time.perf_counter()
    for n in range(args.count):
        now = time.perf_counter()
        if next_at > now:
            time.sleep(next_at - now)
        next_at += gap
        started = time.perf_counter()
        sock.sendall(requests[n % args.addresses])
        status, headers, body, buf = read_response(sock, buf)
        times.append(time.perf_counter() - started)
        if status != 200 or headers.get("content-type") != "application/octet-stream" or not body:
            raise SystemExit("request %d: status %d, %r" % (n, status, body[:200]))
    times.sort()

    def pct(p):
        return times[min(len(times) - 1, int(p / 100.0 * len(times)))] * 1e6

    print("low rate: %d requests at %.0f/s to %d addresses | p50 %.0f us | p90 %.0f us | p99 %.0f us | max %.0f us"
          % (args.count, args.rate, args.addresses, pct(50), pct(90), pct(99), times[-1] * 1e6))


if __name__ == "__main__":
    main()
