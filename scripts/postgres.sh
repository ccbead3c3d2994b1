#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests of the shared history (issue 14 part 6).
#
#   bash scripts/postgres.sh start [DIR]   install the Debian packages if missing, start a
#                                          cluster in DIR on a free loopback port, print its DSN
#   bash scripts/postgres.sh dsn [DIR]     print the DSN of the running cluster in DIR
#   bash scripts/postgres.sh stop [DIR]    stop it and delete DIR
#
# DIR defaults to $LIQMON_PG_DIR or /tmp/liqmon-pg-$UID. Idempotent: `start` on a running
# cluster prints its DSN again (well under a second); `stop` on none does nothing.
# PostgreSQL refuses to run as root: as root the cluster runs as the `postgres` user the
# Debian package creates. The cluster is for tests only: fsync off, loopback only,
# password authentication for TCP (the password is in the DSN), trust on its own socket.
# LIQMON_PG_NO_INSTALL=1: fail instead of calling apt-get when the binaries are missing.
set -euo pipefail

cmd=${1:-start}
dir=${2:-${LIQMON_PG_DIR:-/tmp/liqmon-pg-$(id -u)}}
user=liqmon
password=liqmon-test
database=liqmon

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then
    echo "$PG_BINDIR"
    return
  fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$found" ] && [ -x "$found/initdb" ]; then
    echo "$found"
  elif command -v initdb >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
  fi
}

install_packages() {
  if [ "${LIQMON_PG_NO_INSTALL:-}" = 1 ]; then
    log "PostgreSQL binaries (initdb, pg_ctl) not found and LIQMON_PG_NO_INSTALL=1: install the Debian package postgresql"
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL binaries (initdb, pg_ctl) not found: run 'apt-get install postgresql' as root, or set PG_BINDIR"
    exit 1
  fi
  log "installing the Debian package postgresql (apt-get update once, then apt-get install)"
  local started=$SECONDS apt_log
  apt_log=$(mktemp /tmp/liqmon-pg-apt.XXXXXX)
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    rm -f "$apt_log"
    log "apt-get could not install postgresql (its output above)"
    exit 1
  fi
  rm -f "$apt_log"
  log "installed in $((SECONDS - started)) s"
}

# Run a command as the cluster's owner (postgres when we are root).
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() {
  [ -f "$dir/dsn" ] && [ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  bindir=$(find_bindir)
  if [ -z "$bindir" ]; then
    install_packages
    bindir=$(find_bindir)
    [ -n "$bindir" ] || { log "the package postgresql installed no initdb under /usr/lib/postgresql/*/bin"; exit 1; }
  fi
  if running; then
    cat "$dir/dsn"
    return
  fi
  if [ "$(id -u)" = 0 ] && ! getent passwd postgres >/dev/null; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  chmod 700 "$dir"
  as_owner sh -c "umask 077 && printf '%s\n' '$password' > '$dir/pwfile'"
  as_owner "$bindir/initdb" --pgdata="$dir/data" --username="$user" --pwfile="$dir/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; log "initdb failed (log above)"; exit 1; }
  local port
  port=$(free_port)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start -o \
    "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off \
     -c synchronous_commit=off -c full_page_writes=off -c max_connections=50" >/dev/null \
    || { cat "$dir/server.log" >&2; log "pg_ctl start failed (server log above)"; exit 1; }
  as_owner "$bindir/createdb" -h "$dir" -p "$port" -U "$user" "$database"
  local dsn="postgresql://$user:$password@127.0.0.1:$port/$database"
  as_owner sh -c "printf '%s\n' '$dsn' > '$dir/dsn'"
  log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
  echo "$dsn"
}

stop() {
  bindir=$(find_bindir)
  if [ -n "$bindir" ] && [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start) start ;;
  dsn)
    bindir=$(find_bindir)
    if [ -n "$bindir" ] && running; then cat "$dir/dsn"; else log "no cluster running in $dir"; exit 1; fi
    ;;
  stop) stop ;;
  *) log "usage: bash scripts/postgres.sh start|dsn|stop [DIR]"; exit 2 ;;
esac
