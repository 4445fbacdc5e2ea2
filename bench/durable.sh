#!/usr/bin/env bash
# Durable-coordinator benchmark, everything measured in the same run.
#   bench/durable.sh [--seconds S] [--warmup W] [--scale [N]] [--profile] [--no-graphile]
#                    [saga-bench flags, e.g. --saga --latency --starters 16]
# On a fresh Debian 12 machine, as root: installs the packages (scripts/deps.sh),
# builds Release, starts a throwaway PostgreSQL 15 with default durability
# (fsync on, synchronous_commit on, full_page_writes on), runs pgbench's
# single-row INSERT on it (-c 8 -j 2 -T 10), then saga-bench durable, which
# starts saga-coordinator itself and measures throughput and cost, recovery
# after kill -9, and with --scale the same again with N executions (default
# 1,000,000) parked in a 1-day Wait state. --profile adds pg_stat_statements
# (per-execution statement counts, times and WAL) to the report.
# Prints human-readable lines, a "goals:" line (each goal of the workers issue
# met or MISSED, in this run), then one JSON line (the last line).
# BUILD_DIR (default build/bench) and PG_DIR (default /tmp/saga-durable-bench.$$)
# can be overridden.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=20
WARMUP=5
SCALE=0
PROFILE=0
GRAPHILE=1
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --scale)
      if [ $# -gt 1 ] && [[ "$2" =~ ^[0-9]+$ ]]; then SCALE=$2; shift 2; else SCALE=1000000; shift; fi ;;
    --profile) PROFILE=1; shift ;;
    --no-graphile) GRAPHILE=0; shift ;;
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
OURS=$("$BUILD_DIR/bench/saga-bench" durable "${ARGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"} | tee /dev/stderr | tail -1)

# The peer (issue #4): Graphile Worker adding and processing trivial jobs on
# the same PostgreSQL, right after our run (--no-graphile skips it).
if [ "$GRAPHILE" = 1 ]; then
  GW=$(bash bench/graphile/run.sh "$CONNINFO" --jobs 20000 2>/dev/null | tail -1) || GW=""
  if [ -n "$GW" ]; then
    /usr/bin/python3 - "$OURS" "$GW" <<'PY'
import json, sys
ours, gw = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ex = ours["throughput"]["executions_per_sec"]
jobs = gw["graphile_e2e_jobs_per_sec"]
print(f"Graphile Worker {gw['versions']['graphile_worker']} on the same PostgreSQL: {jobs:.0f} jobs/s end to end, "
      f"add->start p50 {gw['graphile_latency_ms_p50']:.2f} ms, p99 {gw['graphile_latency_ms_p99']:.2f} ms at {gw['paced_rate']:.0f} jobs/s")
print(f"1-task executions/s per Graphile jobs/s: {ex / jobs:.2f}")
lat = ours.get("latency")
if lat:
    print(f"dispatch latency p50/p99: ours {lat['p50_ms']:.2f}/{lat['p99_ms']:.2f} ms at {lat['rate']:.0f}/s "
          f"(scheduled -> handler {lat['scheduled_p50_ms']:.2f}/{lat['scheduled_p99_ms']:.2f} ms), "
          f"Graphile {gw['graphile_latency_ms_p50']:.2f}/{gw['graphile_latency_ms_p99']:.2f} ms at {gw['paced_rate']:.0f}/s")
    parts = lat.get("parts_ms")
    if parts:
        print("  scheduled -> handler in parts, p50/p99: coordinator (commit, hand-off) "
              f"{parts['coordinator'][0]:.2f}/{parts['coordinator'][1]:.2f} ms, network "
              f"{parts['network'][0]:.2f}/{parts['network'][1]:.2f} ms, worker "
              f"{parts['worker'][0]:.2f}/{parts['worker'][1]:.2f} ms")
goals = dict(ours.get("goals", {}))
goals["executions_per_graphile_job_1x"] = ex >= jobs
names = {"executions_per_sec_2000": "1-task executions >= 2,000/s",
         "executions_per_graphile_job_1x": "1-task executions/s >= Graphile's jobs/s",
         "saga_transitions_per_sec_5000": "order saga >= 5,000 transitions/s",
         "dispatch_p50_2ms": "dispatch latency at half load p50 <= 2 ms",
         "dispatch_p99_10ms": "dispatch latency at half load p99 <= 10 ms",
         "wal_per_transition_2KiB": "WAL <= 2 KiB per transition",
         "recovery_2s": "recovery after kill -9 <= 2 s"}
order = [k for k in names if k in goals] + [k for k in goals if k not in names]
print("goals: " + "; ".join(f"{names.get(k, k)}: {'met' if goals[k] else 'MISSED'}" for k in order))
print(json.dumps({"saga": ours, "graphile": gw, "executions_per_graphile_job": ex / jobs, "goals": goals}))
PY
  else
    echo "Graphile Worker: not measured (bench/graphile/run.sh failed: needs node and npm)"
  fi
fi
