#!/usr/bin/env python3
"""Semantic check of a saved 3.x reply: check_reply.py REPLY.bin EXPECTED.bin

Parses both as FromFunction (the repository's proto/v3, see protocol3.py) and compares the
messages. The one normalization: a PersistedValueSpec whose expiration_spec is absent equals one
whose expiration_spec is present but empty ({NONE, 0}); Python always writes it, Java leaves it
out, and the runtime reads both as NONE. Exit 0 when equal, 1 otherwise.
"""
import os

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol3 as p3  # noqa: E402


def load(path):
    with open(path, "rb") as f:
        ff = p3.FromFunction.FromString(f.read())
    for spec in ff.incomplete_invocation_context.missing_values:
        if spec.HasField("expiration_spec") and spec.expiration_spec.ByteSize() == 0:
            spec.ClearField("expiration_spec")
    return ff


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    got, exp = load(sys.argv[1]), load(sys.argv[2])
    if got != exp:
        print("MISMATCH\n--- got:\n%s\n--- expected:\n%s" % (got, exp))
        sys.exit(1)
    print("reply OK (semantically equal to %s)" % os.path.basename(sys.argv[2]))


if __name__ == "__main__":
    main()
