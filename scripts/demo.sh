#!/usr/bin/env bash
# The order saga end to end on this machine (Debian 12, as root):
#   - installs what is missing (scripts/deps.sh) and builds, Release, in
#     build/demo: saga-coordinator, sagactl and the five order services;
#   - starts a throwaway PostgreSQL 15 in .demo/pg (unix socket only), the
#     coordinator on 127.0.0.1:7233 (or the next free port) and the services
#     order-validate, -payments, -inventory, -shipping, -notify (logs in
#     .demo/logs/);
#   - creates the state machines Order (examples/order/order.asl.json, plain
#     ASL) and OrderSaga (order-saga.asl.json, with Compensation);
#   - runs OrderSaga on examples/order/input.json (SUCCEEDED) and on
#     input-declined.json (the card declines 1250.00 EUR: compensation, then
#     FAILED with Order.Failed), printing each history and what the services
#     did, then the same two orders on Order in one line each;
#   - prints sagactl commands to try and keeps everything running until
#     Ctrl-C, which stops the services, the coordinator and PostgreSQL.
#
# Environment:
#   DEMO_NONINTERACTIVE=1  run the executions, stop everything, exit 0 when every
#                          execution ended as expected (else 1): for tests and CI
#   DEMO_BUILD_DIR=DIR     use the binaries of an existing build tree (no
#                          deps.sh, no build)
#   DEMO_STATE_DIR=DIR     state folder (default .demo in the project)
#   DEMO_PORT=N            coordinator port exactly (0: any free port); default
#                          the first free one from 7233
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NONINTERACTIVE=${DEMO_NONINTERACTIVE:-0}
STATE=$(realpath -m "${DEMO_STATE_DIR:-$ROOT/.demo}")
LOGS=$STATE/logs
SERVICES=(validate payments inventory shipping notify)
ORDER_DIR=$ROOT/examples/order

say() { printf '%s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# --- Build --------------------------------------------------------------------
if [ -n "${DEMO_BUILD_DIR:-}" ]; then
  BUILD=$(realpath "$DEMO_BUILD_DIR")
else
  bash "$ROOT/scripts/deps.sh"
  BUILD=$ROOT/build/demo
  say "== building (Release) in ${BUILD#"$ROOT"/}"
  # Warnings are not errors here: a newer compiler must not stop the demo.
  cmake -G Ninja -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSAGA_WERROR=OFF >/dev/null
  ninja -C "$BUILD" -j "$(nproc)" saga-coordinator sagactl "${SERVICES[@]/#/order-}"
fi
COORDINATOR=$BUILD/coordinator/saga-coordinator
SAGACTL=$BUILD/coordinator/sagactl
for bin in "$COORDINATOR" "$SAGACTL" "${SERVICES[@]/#/$BUILD/examples/order/order-}"; do
  [ -x "$bin" ] || die "missing $bin (build it, or unset DEMO_BUILD_DIR)"
done

# --- Helpers ------------------------------------------------------------------

# Whether PID is a live (not zombie) process.
alive() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}

# wait_for DESCRIPTION SECONDS PID COMMAND...: polls COMMAND until it
# succeeds; fails when PID (if not empty) died or the deadline passed.
wait_for() {
  local what=$1 seconds=$2 pid=$3; shift 3
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if [ -n "$pid" ] && ! alive "$pid"; then
      printf 'demo: %s: the process exited\n' "$what" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      printf 'demo: %s: not within %s s\n' "$what" "$seconds" >&2
      return 1
    fi
    sleep 0.1
  done
}


# sagactl prints JSON; no jq here, so a small awk walker reads it. It collects
# the members of every object at nesting depth `level` (strings unquoted,
# objects and arrays as raw text) and hands each object to done().
JSON_AWK='
    function unquote(v) {
      if (substr(v, 1, 1) != "\"") return v
      v = substr(v, 2, length(v) - 2)
      gsub(/\\"/, "\"", v); gsub(/\\n/, " ", v); gsub(/\\\//, "/", v); gsub(/\\\\/, "\\", v)
      return v
    }
    function short(v, max) { return length(v) > max ? substr(v, 1, max - 3) "..." : v }
    function secs(ts) { return substr(ts, 12, 2) * 3600 + substr(ts, 15, 2) * 60 + substr(ts, 18, 6) }
    function emit(   t, d, type, line) {
      type = ev["type"]
      t = secs(ev["timestamp"])
      if (t0 == "") t0 = t
      t -= t0
      if (t < 0) t += 86400
      d = ""
      if ("compensatedState" in ev) d = "undo " ev["compensatedState"] ": "
      if (type ~ /Scheduled$/) d = d ev["resource"] " " short(ev["input"], 60)
      else if (type ~ /Started$/ && ("workerName" in ev)) d = d "by " ev["workerName"]
      else if (type ~ /Succeeded$/ && ("output" in ev) && type != "ExecutionSucceeded") d = d "-> " short(ev["output"], 60)
      else if ("error" in ev) d = d ev["error"] (ev["cause"] != "" ? ": " short(ev["cause"], 90) : "")
      sub(/: $/, "", d)
      line = sprintf("%4s %8.3fs  %-24s %-20s %s", ev["id"], t, type, ev["stateName"], d)
      sub(/ +$/, "", line)
      print line
    }
    function done() {
      if (level == 3) emit()
      else if (want in ev) print ev[want]
    }
    BEGIN { RS = "\001"; t0 = "" }
    {
      s = $0; n = length(s); depth = 0; instr = 0; esc = 0; expect = 0; inkey = 0; key = ""
      for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        if (instr) {
          if (esc) esc = 0
          else if (c == "\\") esc = 1
          else if (c == "\"") { instr = 0; if (inkey) { key = substr(s, kstart, i - kstart); inkey = 0 } }
          continue
        }
        if (c == "\"") { instr = 1; if (depth == level && expect) { inkey = 1; kstart = i + 1; expect = 0 }; continue }
        if (c == ":" && depth == level) { vstart = i + 1; continue }
        if ((c == "," || c == "}") && depth == level) {
          if (key != "") {
            v = substr(s, vstart, i - vstart)
            gsub(/^[ \t\r\n]+|[ \t\r\n]+$/, "", v)
            ev[key] = unquote(v)
          }
          expect = 1; key = ""
          if (c == "}") { done(); split("", ev); depth-- }
          continue
        }
        if (c == "{" || c == "[") { depth++; if (depth == level) expect = 1; continue }
        if (c == "}" || c == "]") depth--
      }
    }
'

# json_get KEY: a top-level member of the JSON object on stdin.
json_get() { awk -v level=1 -v want="$1" "$JSON_AWK"; }

# format_history: sagactl get-execution-history output on stdin, one line per
# event: id, seconds since the start, type, state, short details (resource and
# input, worker, output, error, the state a compensation undoes).
format_history() { awk -v level=3 "$JSON_AWK"; }

ctl() { "$SAGACTL" --address "$ADDRESS" "$@"; }

# --- State folder, leftovers of an earlier run ----------------------------------
mkdir -p "$STATE" "$LOGS"
if [ -f "$STATE/demo.pid" ]; then
  other=$(cat "$STATE/demo.pid")
  if [ "$other" != $$ ] && alive "$other" && grep -q demo.sh "/proc/$other/cmdline" 2>/dev/null; then
    die "a demo is already running with state in $STATE (pid $other): stop it with Ctrl-C or kill $other"
  fi
fi
echo $$ >"$STATE/demo.pid"
# Processes of an earlier demo that was killed (pid and executable per line).
if [ -f "$STATE/pids" ]; then
  while read -r pid exe; do
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ]; then
      say "demo: stopping $(basename "$exe") (pid $pid) left by an earlier run"
      kill -TERM "$pid" 2>/dev/null || true
      wait_for "$(basename "$exe") (pid $pid) to stop" 15 "" bash -c "! [ -e /proc/$pid ]" ||
        kill -KILL "$pid" 2>/dev/null || true
    fi
  done <"$STATE/pids"
fi
[ -f "$STATE/pgdir" ] && bash "$ROOT/scripts/pg_down.sh" "$(cat "$STATE/pgdir")"
: >"$STATE/pids"

# --- Stopping: on exit, Ctrl-C or SIGTERM -------------------------------------------
SERVICE_PIDS=()
COORDINATOR_PID=
CTL_PID=
PGDIR=
STOPPED_CLEANLY=1

# stop_processes PID...: SIGTERM, wait up to 20 s, then SIGKILL; reaps them.
stop_processes() {
  local pid rc
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + 20))
  for pid in "$@"; do
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid"; then
      printf 'demo: pid %s did not stop within 20 s: killed\n' "$pid" >&2
      kill -KILL "$pid" 2>/dev/null || true
      STOPPED_CLEANLY=0
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    if [ "$rc" != 0 ]; then
      printf 'demo: pid %s exited with status %s\n' "$pid" "$rc" >&2
      STOPPED_CLEANLY=0
    fi
  done
}

cleanup() {
  local rc=$?
  trap '' INT TERM
  trap - EXIT
  [ -n "$CTL_PID" ] && kill -TERM "$CTL_PID" 2>/dev/null
  if [ ${#SERVICE_PIDS[@]} -gt 0 ] || [ -n "$COORDINATOR_PID" ] || [ -n "$PGDIR" ]; then
    say "== stopping the services, the coordinator and PostgreSQL"
  fi
  [ ${#SERVICE_PIDS[@]} -gt 0 ] && stop_processes "${SERVICE_PIDS[@]}"
  [ -n "$COORDINATOR_PID" ] && stop_processes "$COORDINATOR_PID"
  if [ -n "$PGDIR" ]; then
    bash "$ROOT/scripts/pg_down.sh" "$PGDIR"
    rm -f "$STATE/pgdir"
  fi
  rm -f "$STATE/pids" "$STATE/demo.pid"
  if [ "$STOPPED_CLEANLY" != 1 ]; then
    say "demo: not everything stopped cleanly (logs in $LOGS)"
    [ "$rc" = 0 ] && rc=1
  else
    say "demo: stopped"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 0' INT TERM   # Ctrl-C ends the demo: cleanup runs on exit

# Children run in sessions of their own so that Ctrl-C reaches only this
# script, which then stops them in order: services, coordinator, database.

# --- PostgreSQL ---------------------------------------------------------------
# Unix socket only, in the state folder; a short folder in /tmp when that path
# is too long for a socket (108 bytes) or the postgres user cannot reach it.
PGDIR=$STATE/pg
if [ ${#PGDIR} -gt 80 ] ||
   { [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$STATE" 2>/dev/null; }; then
  PGDIR=$(mktemp -d /tmp/saga-demo-pg.XXXXXX)
fi
echo "$PGDIR" >"$STATE/pgdir"
say "== PostgreSQL 15 in $PGDIR"
DSN=$(setsid bash "$ROOT/scripts/pg_up.sh" "$PGDIR") || die "PostgreSQL did not start (see $PGDIR/*.log)"

# --- Coordinator --------------------------------------------------------------
start_coordinator() {  # PORT: starts it and waits for its "listening on" line
  : >"$LOGS/coordinator.log"
  setsid "$COORDINATOR" --listen "127.0.0.1:$1" --database-url "$DSN" >>"$LOGS/coordinator.log" 2>&1 &
  COORDINATOR_PID=$!
  echo "$COORDINATOR_PID $COORDINATOR" >>"$STATE/pids"
  if wait_for "saga-coordinator to listen on port $1" 60 "$COORDINATOR_PID" \
       grep -q "listening on" "$LOGS/coordinator.log"; then
    return 0
  fi
  stop_processes "$COORDINATOR_PID" 2>/dev/null || true
  COORDINATOR_PID=
  STOPPED_CLEANLY=1
  return 1
}
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -n "${DEMO_PORT:-}" ]; then
  start_coordinator "$DEMO_PORT" || die "saga-coordinator did not start: $(tail -3 "$LOGS/coordinator.log")"
else
  port=7233 started=0
  while [ "$port" -lt 7253 ]; do
    if ! port_in_use "$port" && start_coordinator "$port"; then started=1; break; fi
    port=$((port + 1))
  done
  [ "$started" = 1 ] || die "saga-coordinator did not start on ports 7233-7252: $(tail -3 "$LOGS/coordinator.log")"
fi
ADDRESS=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$LOGS/coordinator.log" | head -1)
say "== saga-coordinator on $ADDRESS (log: $LOGS/coordinator.log)"

# --- Services -----------------------------------------------------------------
for s in "${SERVICES[@]}"; do
  exe=$BUILD/examples/order/order-$s
  setsid "$exe" --address "$ADDRESS" >"$LOGS/$s.log" 2>&1 &
  SERVICE_PIDS+=($!)
  echo "$! $exe" >>"$STATE/pids"
done
for i in "${!SERVICES[@]}"; do
  wait_for "order-${SERVICES[$i]} to connect" 30 "${SERVICE_PIDS[$i]}" \
    grep -q "] connected to" "$LOGS/${SERVICES[$i]}.log" || die "see $LOGS/${SERVICES[$i]}.log"
done
say "== services connected: ${SERVICES[*]/#/order-} (logs: $LOGS/*.log)"

# --- State machines -------------------------------------------------------------
ctl create-state-machine --name Order --definition "$ORDER_DIR/order.asl.json" >/dev/null
ctl create-state-machine --name OrderSaga --definition "$ORDER_DIR/order-saga.asl.json" >/dev/null
say "== state machines: Order (order.asl.json, plain ASL), OrderSaga (order-saga.asl.json, with Compensation)"

# --- Executions -----------------------------------------------------------------
FAILURES=0

# mark_logs: the line count of every service log, to print what is new later.
declare -A SEEN
mark_logs() { for s in "${SERVICES[@]}"; do SEEN[$s]=$(wc -l <"$LOGS/$s.log"); done; }
new_log_lines() {
  for s in "${SERVICES[@]}"; do tail -n +"$((SEEN[$s] + 1))" "$LOGS/$s.log"; done
}

# run MACHINE NAME INPUT_FILE EXPECT_STATUS EXPECT_ERROR VERBOSE
run() {
  local machine=$1 name=$2 input=$3 want_status=$4 want_error=$5 verbose=$6
  local out=$STATE/$machine-$name.json events=$STATE/$machine-$name.events rc=0
  mark_logs
  # In the background: a trapped Ctrl-C interrupts `wait` at once.
  timeout 120 "$SAGACTL" --address "$ADDRESS" start-execution --state-machine "$machine" \
    --name "$name" --input "@$input" --wait >"$out" 2>"$events" &
  CTL_PID=$!
  wait "$CTL_PID" || rc=$?
  CTL_PID=
  local status error cause output
  status=$(json_get status <"$out")
  error=$(json_get error <"$out")
  cause=$(json_get cause <"$out")
  output=$(json_get output <"$out")
  if [ "$verbose" = 1 ]; then
    say "   execution: arn:saga:states:::execution:$machine:$name"
    say "   history:"
    { ctl get-execution-history "arn:saga:states:::execution:$machine:$name" || true; } |
      format_history | sed 's/^/   /'
    say "   what the services did:"
    new_log_lines | sed 's/^/     /'
    say "   status: ${status:-?}"
    [ "$status" = SUCCEEDED ] && say "   output: $output"
    [ -n "$error" ] && [ "$error" != null ] && say "   error:  $error: $cause"
  else
    local detail=""
    [ -n "$error" ] && [ "$error" != null ] && detail="  ($error: $cause)"
    say "   $machine:$name -> ${status:-?}$detail"
  fi
  if [ "$rc" != 0 ]; then
    say "   UNEXPECTED: sagactl start-execution --wait failed (status $rc): $(tail -2 "$events")"
    FAILURES=$((FAILURES + 1))
  elif [ "$status" != "$want_status" ] || { [ -n "$want_error" ] && [ "$error" != "$want_error" ]; }; then
    say "   UNEXPECTED: wanted $want_status${want_error:+ with $want_error}"
    FAILURES=$((FAILURES + 1))
  fi
}

say ""
say "== OrderSaga, happy path: examples/order/input.json (99.50 EUR)"
run OrderSaga happy "$ORDER_DIR/input.json" SUCCEEDED "" 1
say ""
say "== OrderSaga, declined payment: examples/order/input-declined.json (1250.00 EUR, over the"
say "   1000.00 EUR card limit): the Compensate state rolls back what completed"
run OrderSaga declined "$ORDER_DIR/input-declined.json" FAILED Order.Failed 1
say ""
say "== Order (plain ASL, hand-wired undo states), the same two orders"
run Order happy "$ORDER_DIR/input.json" SUCCEEDED "" 0
run Order declined "$ORDER_DIR/input-declined.json" FAILED Order.Failed 0

if [ "$FAILURES" != 0 ]; then
  say ""
  say "demo: $FAILURES execution(s) did not end as expected; the end of each log:"
  for f in "$LOGS"/*.log; do
    say "-- $f"
    tail -n 5 "$f"
  done
  exit 1
fi

if [ "$NONINTERACTIVE" = 1 ]; then
  say ""
  say "demo: every execution ended as expected"
  exit 0
fi

cat <<EOF

== Try next (the coordinator, the services and PostgreSQL keep running):
  S="$SAGACTL --address $ADDRESS"
  \$S list-executions --state-machine OrderSaga
  \$S describe-execution arn:saga:states:::execution:OrderSaga:declined
  \$S get-execution-history arn:saga:states:::execution:OrderSaga:declined
  \$S start-execution --state-machine Order --input @$ORDER_DIR/input-declined.json --wait
  # 12 items find no truck: the saga refunds the payment and releases the stock
  \$S start-execution --state-machine OrderSaga --wait \\
      --input '{"orderId":"ord-1003","total":36,"items":[{"sku":"MUG","qty":12}],"customer":"cy@example.com"}'
  # an out-of-stock item, an invalid order
  \$S start-execution --state-machine OrderSaga --wait \\
      --input '{"orderId":"ord-1004","total":10,"items":[{"sku":"SOLDOUT-1","qty":1}],"customer":"di@example.com"}'
  \$S start-execution --state-machine OrderSaga --wait --input '{"orderId":"ord-1005","items":[]}'
  tail -f $LOGS/*.log

Press Ctrl-C to stop everything.
EOF

# Until Ctrl-C (the trap exits) or a process dies.
while true; do
  done_pid=
  wait -n -p done_pid "${SERVICE_PIDS[@]}" "$COORDINATOR_PID" || true
  if [ -n "$done_pid" ]; then
    say "demo: pid $done_pid stopped unexpectedly (logs in $LOGS)"
    exit 1
  fi
done
