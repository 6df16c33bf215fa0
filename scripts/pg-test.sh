#!/usr/bin/env bash
# pg-test.sh start|stop -- throwaway PostgreSQL for tests/CI.
# Works as root (server runs as the 'postgres' OS user via runuser) and as a normal user.
set -euo pipefail
: "${PGTEST_DIR:=/tmp/pgtest}" "${PGTEST_PORT:=55432}" "${PGTEST_USER:=tap}"
: "${PGTEST_PASSWORD:=tap}" "${PGTEST_DB:=tapdb}"
# the newest server install (initdb present: a client-only install has psql alone)
pgbin() { ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -t/ -k5 -n | tail -n1 | xargs -r dirname; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
stop() {
  local b; b="$(pgbin)"
  if [ -n "$b" ] && [ -f "$PGTEST_DIR/data/postmaster.pid" ]; then
    (cd / && as_pg "$b/pg_ctl" -D "$PGTEST_DIR/data" -m fast -w stop >/dev/null) || true
  fi
  rm -rf "$PGTEST_DIR"
}
case "${1:-start}" in
start)
  if [ -z "$(pgbin)" ]; then              # fresh machine: install server + client
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  fi
  b="$(pgbin)"
  stop                                     # leftovers from an earlier run
  mkdir -p "$PGTEST_DIR" && chmod 700 "$PGTEST_DIR"
  printf '%s\n' "$PGTEST_PASSWORD" > "$PGTEST_DIR/pw"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$PGTEST_DIR"
  cd /                                     # postgres user may not be able to read the cwd
  as_pg "$b/initdb" -D "$PGTEST_DIR/data" -U "$PGTEST_USER" --pwfile="$PGTEST_DIR/pw" \
        --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PGTEST_DIR/initdb.log" 2>&1
  rm -f "$PGTEST_DIR/pw"
  as_pg "$b/pg_ctl" -D "$PGTEST_DIR/data" -l "$PGTEST_DIR/server.log" -w -t 60 -o \
    "-p $PGTEST_PORT -k $PGTEST_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
  PGPASSWORD="$PGTEST_PASSWORD" "$b/psql" -h 127.0.0.1 -p "$PGTEST_PORT" -U "$PGTEST_USER" \
    -d postgres -qAtc "CREATE DATABASE \"$PGTEST_DB\""
  echo "postgresql://$PGTEST_USER:$PGTEST_PASSWORD@127.0.0.1:$PGTEST_PORT/$PGTEST_DB"
  ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
