#!/usr/bin/env bash
# Judges the corpus (or any folder of cases) with both the reference
# interpreter and `sagactl test-run`, using ../shared/asl-oracle.
#   scripts/oracle-check.sh [CASES_DIR]
# Needs Node and npm; copies the oracle to a temporary folder. Not part of
# scripts/test.sh (the project must not need ../shared to pass its tests).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cases=$(realpath "${1:-tests/conformance/cases}")
oracle_src=$(realpath ../shared/asl-oracle)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$oracle_src" "$tmp/oracle"
(cd "$tmp/oracle" && npm ci --no-audit --no-fund >/dev/null 2>&1)
[ -x build/release/coordinator/sagactl ] || { cmake -G Ninja -S . -B build/release >/dev/null && ninja -C build/release sagactl; }
echo "== reference interpreter vs expected (deviations listed in tests/conformance/ORACLE_DEVIATIONS.md)"
"$tmp/oracle/check-all.sh" "$cases" || true
echo "== sagactl test-run vs expected"
SAGACTL=$PWD/build/release/coordinator/sagactl "$tmp/oracle/check-all.sh" "$cases" "$tmp/oracle/run-with-sagactl.sh"
