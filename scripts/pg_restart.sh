#!/usr/bin/env bash
# Stops or starts again a cluster started by scripts/pg_up.sh DIR, keeping its
# data and options (tests of a database restart).
#   scripts/pg_restart.sh DIR stop    crash-stop (pg_ctl stop -m immediate)
#   scripts/pg_restart.sh DIR start   start again on the same data directory
set -euo pipefail
DIR=$(realpath -m "$1")
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
RUN=()
[ "$(id -u)" = 0 ] && RUN=(runuser -u postgres --)
case "${2:-}" in
  stop) "${RUN[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 30 stop >/dev/null ;;
  # With the server down, "restart" starts it with the options of its last
  # start (postmaster.opts): same socket directory, port and settings.
  start) "${RUN[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 restart \
           >/dev/null 2>&1 ;;
  *) echo "usage: $0 DIR stop|start" >&2; exit 2 ;;
esac
