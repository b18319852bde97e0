#!/usr/bin/env bash
# pg.sh — a private PostgreSQL 15 in a folder, reachable only by unix socket.
#
#   tools/pg.sh start DIR   initdb if needed, start, create db "tally"; prints the DSN
#   tools/pg.sh stop DIR    fast shutdown
#   tools/pg.sh kill DIR    SIGKILL the postmaster (fault tests)
#   tools/pg.sh dsn DIR     prints the DSN
#
# PostgreSQL refuses to run as root, so as root the cluster belongs to the
# `postgres` user that Debian's package creates. No TCP port is opened: the
# socket lives in DIR, so parallel clusters never collide.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:?usage: pg.sh start|stop|kill|dsn DIR}
dir=${2:?usage: pg.sh start|stop|kill|dsn DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data="$dir/data"
log="$dir/postgres.log"

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
dsn() { printf 'host=%s port=5432 user=tally dbname=tally\n' "$dir"; }

case "$cmd" in
start)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$PGBIN/initdb" -D "$data" -U tally --auth=trust -E UTF8 \
      --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 256MB
wal_buffers = 16MB
max_wal_size = 2GB
checkpoint_timeout = 15min
fsync = on
synchronous_commit = on
logging_collector = off
log_line_prefix = '%m [%p] %d '
CONF
  fi
  if ! as_owner "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_owner "$PGBIN/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null \
      || { tail -20 "$log" >&2; exit 1; }
  fi
  "$PGBIN/psql" -X -q "host=$dir port=5432 user=tally dbname=postgres" -tAc \
    "SELECT 1 FROM pg_database WHERE datname='tally'" | grep -q 1 \
    || "$PGBIN/createdb" -h "$dir" -p 5432 -U tally tally
  dsn
  ;;
stop)
  if [ -f "$data/postmaster.pid" ]; then
    as_owner "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  fi
  ;;
kill)
  if [ -f "$data/postmaster.pid" ]; then
    pid=$(head -1 "$data/postmaster.pid")
    kill -9 "$pid" 2>/dev/null || true
    # The postmaster stays a zombie until init reaps it (seconds on some
    # machines), and pg_ctl counts a zombie as running: wait until it is
    # gone, and its children with it, so that a start right after works.
    for _ in $(seq 300); do
      [ -e "/proc/$pid" ] || pgrep -f -- "-D $data" >/dev/null 2>&1 || break
      sleep 0.1
    done
  fi
  ;;
dsn) dsn ;;
*) echo "pg.sh: unknown command $cmd" >&2; exit 2 ;;
esac
