#!/usr/bin/env bash
# Durable-coordinator benchmark, everything measured in the same run.
#   bench/durable.sh [--seconds S] [--warmup W] [--scale [N]] [--profile] [saga-bench flags...]
# On a fresh Debian 12 machine, as root: installs the packages (scripts/deps.sh),
# builds Release, starts a throwaway PostgreSQL 15 with default durability
# (fsync on, synchronous_commit on, full_page_writes on), runs pgbench's
# single-row INSERT on it (-c 8 -j 2 -T 10), then saga-bench durable, which
# starts saga-coordinator itself and measures throughput and cost, recovery
# after kill -9, and with --scale the same again with N executions (default
# 1,000,000) parked in a 1-day Wait state. --profile adds pg_stat_statements
# (per-execution statement counts, times and WAL) to the report.
# Prints human-readable lines, then one JSON line (the last line).
# BUILD_DIR (default build/bench) and PG_DIR (default /tmp/saga-durable-bench.$$)
# can be overridden.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=20
WARMUP=5
SCALE=0
PROFILE=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --scale)
      if [ $# -gt 1 ] && [[ "$2" =~ ^[0-9]+$ ]]; then SCALE=$2; shift 2; else SCALE=1000000; shift; fi ;;
    --profile) PROFILE=1; shift ;;
    *) EXTRA+=("$1"); shift ;;
  esac
done
BUILD_DIR=${BUILD_DIR:-build/bench}
PG_DIR=${PG_DIR:-/tmp/saga-durable-bench.$$}

bash scripts/deps.sh
cmake -G Ninja -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$BUILD_DIR" saga-coordinator saga-bench >/dev/null

cleanup() { bash scripts/pg_down.sh "$PG_DIR"; }
trap cleanup EXIT
PG_OPTS=()
[ "$PROFILE" = 1 ] && PG_OPTS+=(-c shared_preload_libraries=pg_stat_statements)
CONNINFO=$(bash scripts/pg_up.sh "$PG_DIR" "" "${PG_OPTS[@]}")
export PGHOST=$PG_DIR PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
psql() { "$PGBIN/psql" "$@"; }
echo "PostgreSQL $(psql -Atc 'SHOW server_version') in $PG_DIR: fsync=$(psql -Atc 'SHOW fsync'), synchronous_commit=$(psql -Atc 'SHOW synchronous_commit'), full_page_writes=$(psql -Atc 'SHOW full_page_writes'), shared_buffers=$(psql -Atc 'SHOW shared_buffers'); $(nproc) cores"

# pgbench baseline (toolchain.md section 5): single-row INSERT into a table
# with a bigserial primary key, 8 clients, 2 threads, 10 s.
psql -qc "CREATE TABLE ins_test (id bigserial PRIMARY KEY, aid integer, payload text, created timestamptz)"
cat >"$PG_DIR/insert.sql" <<'EOF'
\set aid random(1, 1000000)
INSERT INTO ins_test(aid,payload,created) VALUES (:aid,'payload-0123456789abcdefghijklmnopqrstuvwxyz',now());
EOF
PGBENCH_OUT=$("$PGBIN/pgbench" -n -f "$PG_DIR/insert.sql" -c 8 -j 2 -T 10 2>&1)
TPS=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$PGBENCH_OUT")
[ -n "$TPS" ] || { echo "pgbench failed:"; echo "$PGBENCH_OUT"; exit 1; }
echo "pgbench single-row INSERT (-c 8 -j 2 -T 10): $TPS TPS"
psql -qc "DROP TABLE ins_test" -c "CHECKPOINT"

ARGS=(--coordinator "$BUILD_DIR/coordinator/saga-coordinator" --database-url "$CONNINFO"
      --seconds "$SECS" --warmup "$WARMUP" --pgbench-tps "$TPS" --log "$BUILD_DIR/durable-coordinator.log")
[ "$SCALE" != 0 ] && ARGS+=(--scale "$SCALE")
[ "$PROFILE" = 1 ] && ARGS+=(--pg-stat-statements)
"$BUILD_DIR/bench/saga-bench" durable "${ARGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
