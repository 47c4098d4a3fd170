#!/usr/bin/env bash
# Creates the Python reference for the 3.x workloads: a venv with the StateFun Python SDK 3.3.0 and
# pure-Python protobuf 3.20.3 (the SDK's generated code needs >= 3.20; it asks for < 4).
# Usage: benches/workloads3/setup.sh [VENV]   (default: target/py33 under the repository root;
#        a relative VENV is taken from the current directory). PY=python3.11 by default.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${1:-$ROOT/target/py33}"
PY="${PY:-python3.11}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check apache-flink-statefun==3.3.0 protobuf==3.20.3
"$VENV/bin/python" - <<'PYEOF'
from importlib.metadata import version
print("ready: apache-flink-statefun %s, protobuf %s" % (version("apache-flink-statefun"), version("protobuf")))
PYEOF
