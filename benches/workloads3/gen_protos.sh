#!/usr/bin/env bash
# Regenerates gen/ from the .proto files with protoc 3.21.6 (bundled in grpcio-tools 1.49.1):
#   gen/bench_pb2.py      Python classes for proto/bench.proto (package bench)
#   gen/protocol_v3.pb    FileDescriptorSet of ../../proto/v3/{request-reply,types,egress}.proto,
#                         loaded into a private descriptor pool by protocol3.py (the SDK registers
#                         its own io.statefun.sdk.* protos in the default pool, so ours must not).
# Usage: benches/workloads3/gen_protos.sh [GEN_VENV]   (default: target/py33-gen under the repo root)
# Only needed when a .proto changes; the generated files are committed.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${1:-$ROOT/target/py33-gen}"
PY="${PY:-python3.11}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check grpcio-tools==1.49.1
PROTOC=("$VENV/bin/python" -m grpc_tools.protoc)
"${PROTOC[@]}" --version
"${PROTOC[@]}" -I "$HERE/proto" --python_out="$HERE/gen" bench.proto
"${PROTOC[@]}" -I "$ROOT/proto/v3" --descriptor_set_out="$HERE/gen/protocol_v3.pb" \
  request-reply.proto types.proto egress.proto
sha256sum "$HERE/gen/bench_pb2.py" "$HERE/gen/protocol_v3.pb"
