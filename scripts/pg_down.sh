#!/usr/bin/env bash
# Stops and removes a cluster started by scripts/pg_up.sh DIR.
set -uo pipefail
DIR=$(realpath -m "$1")
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
RUN=()
[ "$(id -u)" = 0 ] && RUN=(runuser -u postgres --)
[ -d "$DIR/data" ] && "${RUN[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1
rm -rf "$DIR"
exit 0
