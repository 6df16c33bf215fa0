#!/usr/bin/env bash
# pg-test.sh start|stop|port|dir -- throwaway PostgreSQL for tests/CI, one per checkout.
#
# Its folder and port default per checkout (derived from this checkout's path, so two
# checkouts on one machine never share them); PGTEST_DIR and PGTEST_PORT override them.
# `port` and `dir` print them: scripts and tests take the port from here. It only stops
# a server in a folder it made itself (marked), and when a server cannot be made or
# started it keeps the log and prints it.
# Works as root (server runs as the 'postgres' OS user via runuser) and as a normal user.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd -P)"
key="$(printf '%s' "$root" | cksum | cut -d' ' -f1)"
: "${PGTEST_DIR:=/tmp/pgtest-$key}" "${PGTEST_PORT:=$((55600 + key % 400))}"
: "${PGTEST_USER:=tap}" "${PGTEST_PASSWORD:=tap}" "${PGTEST_DB:=tapdb}"
# a second database: meltano's system database (state) of the shards (orchestrate/)
: "${PGTEST_STATE_DB:=meltano}"
mark="$PGTEST_DIR/made-by-pg-test.sh"
# the newest server install (initdb present: a client-only install has psql alone)
pgbin() { ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -t/ -k5 -n | tail -n1 | xargs -r dirname; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
fail() {  # what went wrong, and the log that says why (kept)
  echo "pg-test.sh: $1 (port $PGTEST_PORT, folder $PGTEST_DIR); $2 follows:" >&2
  cat "$2" >&2 || true
  exit 1
}
stop() {
  [ -e "$PGTEST_DIR" ] || return 0
  # an empty folder (e.g. from mktemp -d) holds nothing to protect: it is used as given
  if [ -d "$PGTEST_DIR" ] && [ -z "$(ls -A "$PGTEST_DIR")" ]; then rmdir "$PGTEST_DIR"; return 0; fi
  if [ ! -f "$mark" ]; then
    echo "pg-test.sh: $PGTEST_DIR was not made by pg-test.sh; left alone" >&2
    return 1
  fi
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
  stop                                     # this checkout's own leftover, if any
  mkdir -p "$PGTEST_DIR" && chmod 700 "$PGTEST_DIR"
  touch "$mark"
  printf '%s\n' "$PGTEST_PASSWORD" > "$PGTEST_DIR/pw"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$PGTEST_DIR"
  cd /                                     # postgres user may not be able to read the cwd
  as_pg "$b/initdb" -D "$PGTEST_DIR/data" -U "$PGTEST_USER" --pwfile="$PGTEST_DIR/pw" \
        --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PGTEST_DIR/initdb.log" 2>&1 \
    || fail "initdb failed" "$PGTEST_DIR/initdb.log"
  rm -f "$PGTEST_DIR/pw"
  as_pg "$b/pg_ctl" -D "$PGTEST_DIR/data" -l "$PGTEST_DIR/server.log" -w -t 60 -o \
    "-p $PGTEST_PORT -k $PGTEST_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || fail "the server did not start" "$PGTEST_DIR/server.log"
  PGPASSWORD="$PGTEST_PASSWORD" "$b/psql" -h 127.0.0.1 -p "$PGTEST_PORT" -U "$PGTEST_USER" \
    -d postgres -qAt \
    -c "CREATE DATABASE \"$PGTEST_DB\"" -c "CREATE DATABASE \"$PGTEST_STATE_DB\""
  echo "postgresql://$PGTEST_USER:$PGTEST_PASSWORD@127.0.0.1:$PGTEST_PORT/$PGTEST_DB"
  ;;
stop) stop ;;
port) echo "$PGTEST_PORT" ;;
dir) echo "$PGTEST_DIR" ;;
*) echo "usage: $0 start|stop|port|dir" >&2; exit 2 ;;
esac
