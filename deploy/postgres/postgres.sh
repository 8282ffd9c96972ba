#!/usr/bin/env bash
# A private PostgreSQL cluster for depdetect's tests and demo, next to (never
# instead of) any system cluster: own data dir, own port, loopback only.
#
#   postgres.sh install        apt-get install postgresql if the server is missing
#   postgres.sh start          initdb once, start, create role and databases
#   postgres.sh wait [secs]    wait until it accepts connections (default 60)
#   postgres.sh stop           fast shutdown
#   postgres.sh status         exit 0 only if running and accepting connections
#   postgres.sh url [--libpq]  SQLAlchemy URL (postgresql+psycopg://...), or a
#                              plain libpq URL with --libpq
#   postgres.sh psql [args]    psql into the depdetect database
#
# Environment (all optional):
#   DEPDETECT_PG_STATE_DIR  <repo>/var/postgres   data dir, socket, log
#   DEPDETECT_PG_PORT       55432                 (5432 is left to a system cluster)
#   DEPDETECT_PG_BIN        newest /usr/lib/postgresql/*/bin
#   DEPDETECT_PG_DURABLE    unset: fsync off (a throwaway cluster, much faster);
#                           1: PostgreSQL's crash-safe defaults
#
# Role depdetect (password depdetect, CREATEDB) owns databases depdetect and
# depdetect_test. TCP logins need the password (scram-sha-256); the unix socket
# in the state dir trusts local users (the superuser is "postgres").
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

STATE_DIR="${DEPDETECT_PG_STATE_DIR:-$REPO_ROOT/var/postgres}"
PORT="${DEPDETECT_PG_PORT:-55432}"
HOST=127.0.0.1
APP_USER=depdetect
APP_PASSWORD=depdetect
DATABASES=(depdetect depdetect_test)
SUPERUSER=postgres

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pg_bin_dir() {  # prints the server bin dir, fails if none is installed
  if [[ -n "${DEPDETECT_PG_BIN:-}" ]]; then
    [[ -x "$DEPDETECT_PG_BIN/initdb" ]] || die "no initdb in DEPDETECT_PG_BIN=$DEPDETECT_PG_BIN"
    echo "$DEPDETECT_PG_BIN"
    return 0
  fi
  local dir
  # initdb/pg_ctl are not on PATH on Debian (only wrappers for clusters).
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
    sort -V | while read -r d; do [[ -x "$d/initdb" && -x "$d/postgres" ]] && echo "$d"; done |
    tail -n 1)"
  [[ -n "$dir" ]] || return 1
  echo "$dir"
}

cmd_install() {
  if pg_bin_dir >/dev/null 2>&1 && command -v psql >/dev/null; then
    log "PostgreSQL server present: $(pg_bin_dir)"
    return 0
  fi
  [[ "$(id -u)" -eq 0 ]] || die "PostgreSQL is not installed; run as root or: sudo apt-get install -y postgresql"
  export DEBIAN_FRONTEND=noninteractive
  log "installing PostgreSQL with apt-get"
  # Package lists may be missing or stale on a fresh machine: update only then.
  if ! apt-get install -y -q postgresql; then
    apt-get update -q
    apt-get install -y -q postgresql
  fi
  pg_bin_dir >/dev/null || die "apt-get installed postgresql but no server binaries were found"
}

# --- where the cluster lives -------------------------------------------------------
# The server refuses to run as root, so as root it runs as the `postgres` OS
# user, which must reach the state dir. A checkout under /root (mode 700) is out
# of its reach: then the cluster lives under /var/tmp, keyed by the state dir.

as_server_user() {
  if [[ "$(id -u)" -eq 0 ]]; then
    id "$SUPERUSER" >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash "$SUPERUSER"
    runuser -u "$SUPERUSER" -- "$@"
  else
    "$@"
  fi
}

pg_root() {  # prints the dir holding data/, the socket and the log
  local root="$STATE_DIR"
  if [[ "$(id -u)" -eq 0 ]] && id "$SUPERUSER" >/dev/null 2>&1; then
    mkdir -p "$root"
    chown "$SUPERUSER:" "$root"
    if ! runuser -u "$SUPERUSER" -- test -w "$root" -a -x "$root"; then
      root="/var/tmp/depdetect-postgres-$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)"
      mkdir -p "$root"
      chown "$SUPERUSER:" "$root"
      chmod 700 "$root"
      echo "$root" >"$STATE_DIR/ROOT-IS-ELSEWHERE"
    fi
  else
    mkdir -p "$root"
  fi
  # Unix socket paths are limited to 107 bytes.
  if ((${#root} + 20 > 107)); then
    die "state dir path too long for a unix socket: $root (set DEPDETECT_PG_STATE_DIR)"
  fi
  echo "$root"
}

pg_ctl_() { as_server_user "$BIN/pg_ctl" -D "$ROOT/data" "$@"; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

is_running() { pg_ctl_ status >/dev/null 2>&1; }

is_ready() { "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" -t 2 >/dev/null 2>&1; }

setup() {  # resolves BIN and ROOT for the commands that need a cluster
  BIN="$(pg_bin_dir)" || die "PostgreSQL server not installed: run '$0 install'"
  ROOT="$(pg_root)"
}

write_conf() {
  # Rewritten on every start, so port/dir changes apply; postgresql.conf only
  # includes it.
  {
    echo "# Written by deploy/postgres/postgres.sh on every start; edits are lost."
    echo "listen_addresses = '$HOST'"
    echo "port = $PORT"
    echo "unix_socket_directories = '$ROOT'"
    echo "max_connections = 100"
    echo "log_min_messages = warning"
    echo "log_connections = off"
    if [[ "${DEPDETECT_PG_DURABLE:-}" != 1 ]]; then
      echo "# Throwaway test/demo cluster: trade crash safety for speed."
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
    fi
  } >"$ROOT/data/depdetect.conf"
  chown "$(stat -c %u:%g "$ROOT/data")" "$ROOT/data/depdetect.conf"
}

init_cluster() {
  [[ -f "$ROOT/data/PG_VERSION" ]] && return 0
  log "initdb in $ROOT/data"
  as_server_user "$BIN/initdb" -D "$ROOT/data" -U "$SUPERUSER" -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >"$ROOT/initdb.log" 2>&1 ||
    { cat "$ROOT/initdb.log" >&2; die "initdb failed"; }
  echo "include_if_exists = 'depdetect.conf'" >>"$ROOT/data/postgresql.conf"
}

psql_super() {  # SQL on stdin, as the superuser over the unix socket
  as_server_user "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$ROOT" -p "$PORT" -U "$SUPERUSER" -d postgres "$@"
}

create_app_objects() {
  # Idempotent: role and databases are created only when absent.
  psql_super <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_USER') THEN
    CREATE ROLE $APP_USER LOGIN CREATEDB PASSWORD '$APP_PASSWORD';
  END IF;
END
\$\$;
SQL
  local db
  for db in "${DATABASES[@]}"; do
    psql_super <<SQL
SELECT 'CREATE DATABASE $db OWNER $APP_USER'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')
\gexec
SQL
  done
}

cmd_start() {
  cmd_install
  setup
  if is_running; then
    log "already running on $HOST:$PORT (data $ROOT/data)"
  else
    port_open "$PORT" && die "port $PORT is taken by another server (set DEPDETECT_PG_PORT)"
    init_cluster
    write_conf
    [[ -f "$ROOT/postgres.log" ]] && mv -f "$ROOT/postgres.log" "$ROOT/postgres.log.1"
    # pg_ctl daemonises the server itself (setsid), so it outlives this shell.
    if ! pg_ctl_ start -w -t 60 -l "$ROOT/postgres.log" -s >/dev/null; then
      tail -n 30 "$ROOT/postgres.log" >&2 || true
      die "PostgreSQL did not start (log: $ROOT/postgres.log)"
    fi
    log "started on $HOST:$PORT (data $ROOT/data, log $ROOT/postgres.log)"
  fi
  cmd_wait 60 >/dev/null
  create_app_objects
  log "ready: $(cmd_url)"
}

cmd_wait() {
  local timeout="${1:-60}"
  [[ "$timeout" =~ ^[0-9]+$ ]] || die "usage: $0 wait [timeout_s]"
  setup
  local deadline=$((SECONDS + timeout))
  until is_ready; do
    if ((SECONDS >= deadline)); then
      log "not ready after ${timeout}s; last lines of $ROOT/postgres.log:"
      tail -n 30 "$ROOT/postgres.log" >&2 || true
      exit 1
    fi
    is_running || die "PostgreSQL is not running (run '$0 start')"
    sleep 0.5
  done
  log "accepting connections on $HOST:$PORT"
}

cmd_stop() {
  setup
  if ! is_running; then
    log "not running"
    return 0
  fi
  # fast: roll back open transactions and disconnect clients, no waiting on them.
  if ! pg_ctl_ stop -m fast -w -t 30 -s; then
    log "fast shutdown timed out: immediate"
    pg_ctl_ stop -m immediate -w -t 30 -s
  fi
  log "stopped"
}

cmd_status() {
  setup
  if is_running && is_ready; then
    echo "postgres: up on $HOST:$PORT, data $ROOT/data ($("$BIN/postgres" --version))"
    echo "url: $(cmd_url)"
    return 0
  fi
  if is_running; then echo "postgres: starting (not accepting connections yet)"; else echo "postgres: down"; fi
  return 1
}

cmd_url() {
  local scheme="postgresql+psycopg"
  [[ "${1:-}" == --libpq ]] && scheme=postgresql
  echo "$scheme://$APP_USER:$APP_PASSWORD@$HOST:$PORT/${DATABASES[0]}"
}

cmd_psql() {
  local psql
  psql="$(command -v psql || true)"
  [[ -n "$psql" ]] || { setup; psql="$BIN/psql"; }
  exec "$psql" "$(cmd_url --libpq)" "$@"
}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) cmd_install ;;
    start) cmd_start ;;
    wait) cmd_wait "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) cmd_url "$@" ;;
    psql) cmd_psql "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
