#!/bin/bash
# Usage: out_of_tree.sh BUILD_DIR PROJECT_DIR WORK_DIR
# Installs the worker component of BUILD_DIR into WORK_DIR/prefix, then
# configures, builds and runs PROJECT_DIR against it, as a user would.
set -euo pipefail
build=$1 project=$2 work=$3
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
  -DCMAKE_BUILD_TYPE=Release >"$work/configure.log"
cmake --build "$work/build" -j1 >"$work/build.log"
"$work/build/tiny_worker" --self-test
