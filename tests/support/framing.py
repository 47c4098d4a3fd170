"""The framing loop of the differential tests' reference.py scripts (2.2 and 3.x), the
other end of `run_reference` in tests/support/differential.rs.

Stdin holds requests, each preceded by its length as a 4-byte little-endian integer. For
each one, stdout gets, in the same framing, either b"\\x00" + the bytes `handle(request)`
returned, or b"\\x01" + the error it raised ("<exception type>: <message>").

The scripts import it after putting this directory (tests/support) first on sys.path.
"""

import struct
import sys


def serve_framed(handle):
    """Answers every framed request on stdin with `handle`, framed on stdout."""
    data = sys.stdin.buffer.read()
    out = sys.stdout.buffer
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        request = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
        try:
            result = b"\x00" + handle(request)
        except Exception as e:  # every error is an answer here
            result = b"\x01" + ("%s: %s" % (type(e).__name__, e)).encode("utf-8", "replace")
        out.write(struct.pack("<I", len(result)))
        out.write(result)
    out.flush()
