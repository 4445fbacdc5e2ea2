#!/bin/bash
# Usage: out_of_tree.sh BUILD_DIR PROJECT_DIR WORK_DIR [EXTRA_CXX_FLAGS]
# Installs the worker component of BUILD_DIR into WORK_DIR/prefix, then
# configures, builds and runs PROJECT_DIR against it, as a user would.
# EXTRA_CXX_FLAGS: what the installed library needs at link time too (the
# sanitizer flags of an ASan build tree).
set -euo pipefail
build=$1 project=$2 work=$3 flags=${4:-}
trap 'st=$?; [ $st = 0 ] || for f in "$work"/*.log; do echo "== $f"; tail -40 "$f"; done; exit $st' EXIT
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build" --component worker --prefix "$work/prefix" >"$work/install.log"
test -f "$work/prefix/include/saga/worker/worker.h"
test -f "$work/prefix/lib/cmake/SagaWorker/SagaWorkerConfig.cmake"
if [ -e "$work/prefix/include/saga/v1" ]; then
  echo "generated proto headers must not be installed" >&2
  exit 1
fi
cmake -S "$project" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
  >"$work/configure.log"
cmake --build "$work/build" -j1 >"$work/build.log" 2>&1
"$work/build/tiny_worker" --self-test
