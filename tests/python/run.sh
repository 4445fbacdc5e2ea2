#!/usr/bin/env bash
# Runs tests/python/worker_test.py: generates the saga.v1 Python code from
# proto/ into a temporary directory and runs the test with Debian's python3
# (python3-grpcio, python3-protobuf; scripts/deps.sh installs them).
#   tests/python/run.sh --coordinator-bin PATH --sagactl PATH --cxx-worker PATH \
#                       [--pg-conninfo CONNINFO]      (default: $SAGA_TEST_PG)
# Exit code: the test's.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
proto=$(cd "$here/../../proto" && pwd)
python=/usr/bin/python3
plugin=/usr/bin/grpc_python_plugin
if [ ! -x "$plugin" ] || ! command -v protoc >/dev/null; then
  echo "tests/python/run.sh: needs protoc and $plugin (protobuf-compiler, protobuf-compiler-grpc)" >&2
  exit 1
fi
if ! "$python" -c 'import grpc, google.protobuf' 2>/dev/null; then
  echo "tests/python/run.sh: $python cannot import grpc and google.protobuf" \
       "(apt-get install python3-grpcio python3-protobuf, or scripts/deps.sh)" >&2
  exit 1
fi
gen=$(mktemp -d "${TMPDIR:-/tmp}/saga-pygen.XXXXXX")
trap 'rm -rf "$gen"' EXIT
protoc --python_out="$gen" --grpc_out="$gen" --plugin=protoc-gen-grpc="$plugin" \
  -I "$proto" saga/v1/saga.proto
status=0
PYTHONPATH="$gen:$here${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1 \
  "$python" "$here/worker_test.py" "$@" || status=$?
exit "$status"
