#!/usr/bin/env bash
# Engine benchmark against the reference interpreter, measured in the same run.
#   bench/engine_vs_reference.sh [SECONDS]
# Builds saga-bench (Release), installs aws-local-stepfunctions into a
# temporary folder (nothing is committed), runs both on the 10-state
# Pass/Choice chain with ~1 KiB of payload, and prints both figures and the
# ratio. Both run single-threaded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER_RUN=${1:-5}
bash scripts/deps.sh
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get install -y -qq nodejs npm >/dev/null
fi
cmake -G Ninja -S . -B build/bench -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build/bench saga-bench >/dev/null
DEF=bench/cases/pass_choice_chain.asl.json
IN=bench/cases/pass_choice_chain.input.json
ours=$(build/bench/bench/saga-bench engine --definition "$DEF" --input "$IN" --seconds "$SECONDS_PER_RUN")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --no-audit --no-fund aws-local-stepfunctions@3.0.0 >/dev/null 2>&1)
cp bench/reference_bench.mjs "$tmp/"
ref=$(cd "$tmp" && node reference_bench.mjs "$OLDPWD/$DEF" "$OLDPWD/$IN" "$SECONDS_PER_RUN")
node -e '
const ours = JSON.parse(process.argv[1]), ref = JSON.parse(process.argv[2]);
console.log("case: 10-state Pass/Choice chain, ~1 KiB payload, one core");
console.log("saga engine:           " + ours.executions_per_sec + " executions/s, " + ours.transitions_per_sec + " transitions/s");
console.log("aws-local-stepfunctions: " + ref.executions_per_sec + " executions/s, " + ref.executions_per_sec * ours.transitions_per_execution + " transitions/s");
console.log("ratio (executions/s):  " + (ours.executions_per_sec / ref.executions_per_sec).toFixed(1) + "x");
console.log(JSON.stringify({saga: ours, reference: ref, ratio: ours.executions_per_sec / ref.executions_per_sec}));
' "$ours" "$ref"
