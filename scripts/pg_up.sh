#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 cluster in DIR (unix socket only, or TCP
# with PORT) and prints its libpq conninfo. Works as root (runs the server
# as the postgres user) and as a normal user.
#   scripts/pg_up.sh DIR [PORT] [extra postgres -c options...]
set -euo pipefail
DIR=$(realpath -m "$1"); shift
PORT=${1:-}; [ $# -gt 0 ] && shift
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
rm -rf "$DIR"; mkdir -p "$DIR"
RUN=()
if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; chmod 755 "$DIR"; RUN=(runuser -u postgres --); fi
"${RUN[@]}" "$PGBIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 -N >"$DIR/initdb.log" 2>&1
opts="-k $DIR -c max_connections=200"
if [ -n "$PORT" ]; then opts="$opts -c listen_addresses=127.0.0.1 -p $PORT"; else opts="$opts -c listen_addresses="; fi
"${RUN[@]}" "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 -o "$opts $*" start >/dev/null
if [ -n "$PORT" ]; then
  echo "host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
else
  echo "host=$DIR port=5432 user=postgres dbname=postgres"
fi
