#!/usr/bin/env bash
# Graphile Worker peer benchmark on an existing PostgreSQL.
#   bench/graphile/run.sh CONNINFO [--jobs N | --seconds S] [--adders 8] [--concurrency 8] ...
# CONNINFO is a libpq key=value string (e.g. "host=/tmp/x port=5432 user=postgres
# dbname=postgres") or a postgres:// URI; the user must be allowed to create
# databases. The benchmark creates its own database (graphile_bench) and drops it.
# Installs graphile-worker 0.17.3 + pg 8.23.1 (package-lock.json) into a
# temporary folder with `npm ci`, runs bench.mjs there, deletes the folder.
# Progress goes to stderr; stdout gets one JSON line (see bench.mjs).
# Exit status: bench.mjs's; 3 = peer unavailable (no node/npm, Node < 18, or
# the packages could not be installed); 2 = usage.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "[graphile run.sh] $*" >&2; }

if [ $# -lt 1 ] || [ -z "$1" ] || [ "${1#-}" != "$1" ]; then
  echo "usage: $0 CONNINFO [bench.mjs options]" >&2
  exit 2
fi
CONNINFO="$1"
shift

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "$tool not found: Graphile Worker peer benchmark unavailable (install Node.js >= 18 with npm)"
    exit 3
  fi
done
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "${NODE_MAJOR:-0}" -lt 18 ]; then
  log "Node.js $(node --version 2>/dev/null) is too old (graphile-worker 0.17.3 needs >= 18): peer benchmark unavailable"
  exit 3
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/graphile-bench.XXXXXX")" || { log "mktemp failed"; exit 3; }
CHILD=""
cleanup() {
  if [ -n "$CHILD" ]; then
    kill -TERM "$CHILD" 2>/dev/null
    wait "$CHILD" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp "$HERE/package.json" "$HERE/bench.mjs" "$HERE/worker.mjs" "$TMP/"
if [ -f "$HERE/package-lock.json" ]; then
  cp "$HERE/package-lock.json" "$TMP/"
  INSTALL=(npm ci)
else
  INSTALL=(npm install)
fi
log "installing graphile-worker into $TMP (${INSTALL[*]})"
# Local install only; output kept for the error case. Long steps run in the
# background and are waited for, so that INT/TERM reach the trap at once.
(cd "$TMP" && exec "${INSTALL[@]}" --no-audit --no-fund --no-update-notifier --loglevel=error) \
  >"$TMP/npm.log" 2>&1 &
CHILD=$!
wait "$CHILD"
rc=$?
CHILD=""
if [ $rc -ne 0 ] || [ ! -d "$TMP/node_modules/graphile-worker" ]; then
  grep -v 'Unknown user config' "$TMP/npm.log" | tail -n 20 >&2
  log "${INSTALL[*]} failed (exit $rc): Graphile Worker peer benchmark unavailable"
  exit 3
fi

(cd "$TMP" && exec node bench.mjs --conninfo "$CONNINFO" "$@") &
CHILD=$!
wait "$CHILD"
rc=$?
CHILD=""
exit $rc
