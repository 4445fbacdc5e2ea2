#!/usr/bin/env bash
# Runs every test: installs what is missing (Debian 12, as root), builds,
# runs the whole suite with ctest, then builds and runs it again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Exits non-zero on any failure.
#   scripts/test.sh            everything
#   SAGA_SKIP_SANITIZE=1 scripts/test.sh    only the normal build
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/deps.sh
JOBS=${JOBS:-$(nproc)}

echo "== build (RelWithDebInfo)"
cmake -G Ninja -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build/release -j "$JOBS"
echo "== tests"
ctest --test-dir build/release --output-on-failure -j "$JOBS"

if [ "${SAGA_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== build (ASan+UBSan)"
  cmake -G Ninja -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DSAGA_SANITIZE=ON >/dev/null
  ninja -C build/asan -j "$JOBS"
  echo "== tests under ASan+UBSan"
  # tests/lsan.supp: leaks inside OpenSSL under gRPC's TLS, not ours (see there).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=1" \
    ctest --test-dir build/asan --output-on-failure -j "$JOBS"
fi
