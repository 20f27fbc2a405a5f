#!/bin/bash
# Entry point of the local PostgreSQL stand-in (deploy/local-images/postgres). Written for this
# image; it follows the documented interface of the official postgres image:
#
#   POSTGRES_PASSWORD        the superuser's password (required unless POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER            the superuser (default postgres)
#   POSTGRES_DB              a database created on the first start (default: POSTGRES_USER)
#   POSTGRES_*_FILE          read the value from a file (Docker secrets)
#   POSTGRES_INITDB_ARGS     extra initdb arguments
#   POSTGRES_HOST_AUTH_METHOD  pg_hba method for network connections (default scram-sha-256)
#   /docker-entrypoint-initdb.d/*.sql, *.sql.gz, *.sh   run once, after the cluster is created
#
# Started as root, it makes PGDATA the postgres user's and re-executes itself as postgres;
# the server never runs as root. The first-start initialisation runs on a private socket with
# no TCP listener, so neither a health check nor a client sees the half-made cluster.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# NAME or NAME_FILE (its contents), not both; DEFAULT otherwise.
from_env_or_file() {
  local name=$1 default=${2:-} file_var="${1}_FILE"
  if [ -n "${!name:-}" ] && [ -n "${!file_var:-}" ]; then
    die "both $name and $file_var are set; set one"
  fi
  if [ -n "${!file_var:-}" ]; then
    export "$name"="$(<"${!file_var}")"
  elif [ -z "${!name:-}" ]; then
    export "$name"="$default"
  fi
  unset "$file_var"
}

run_init_files() {
  local file
  for file in /docker-entrypoint-initdb.d/*; do
    [ -e "$file" ] || continue
    case "$file" in
      *.sh)
        log "running $file"
        if [ -x "$file" ]; then "$file"; else bash "$file"; fi
        ;;
      *.sql)
        log "running $file"
        psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet -f "$file"
        ;;
      *.sql.gz)
        log "running $file"
        gunzip -c "$file" | psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet
        ;;
      *) log "ignoring $file" ;;
    esac
  done
}

initialise() {
  from_env_or_file POSTGRES_PASSWORD
  from_env_or_file POSTGRES_USER postgres
  from_env_or_file POSTGRES_DB "$POSTGRES_USER"
  from_env_or_file POSTGRES_INITDB_ARGS
  local auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "$POSTGRES_PASSWORD" ] && [ "$auth" != trust ]; then
    die "the database is not initialised and POSTGRES_PASSWORD is empty: set it (or, for a" \
      "throwaway database only, POSTGRES_HOST_AUTH_METHOD=trust)"
  fi

  log "creating the cluster in $PGDATA (superuser $POSTGRES_USER)"
  local work
  work="$(mktemp -d)"
  # The password reaches initdb through a file only this user can read, never argv.
  (umask 077 && printf '%s\n' "$POSTGRES_PASSWORD" >"$work/pw")
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS holds several words on purpose
  initdb --username="$POSTGRES_USER" --pwfile="$work/pw" --auth-local=trust \
    --auth-host="$auth" --encoding=UTF8 --locale=C.UTF-8 $POSTGRES_INITDB_ARGS >/dev/null
  rm -f "$work/pw"
  # Listen on the container's network, password-checked from anywhere on it.
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

  # A temporary server on a private socket directory, no TCP: invisible until ready.
  mkdir -m 700 "$work/socket"
  pg_ctl -D "$PGDATA" -w -s -o "-c listen_addresses='' -c unix_socket_directories='$work/socket'" \
    -l "$work/server.log" start || { cat "$work/server.log" >&2; die "the new cluster did not start"; }
  export PGHOST="$work/socket" PGUSER="$POSTGRES_USER" PGDATABASE=postgres
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  export PGDATABASE="$POSTGRES_DB"
  run_init_files
  pg_ctl -D "$PGDATA" -w -s -m fast stop
  unset PGHOST PGUSER PGDATABASE
  rm -rf "$work"
  log "initialised: database $POSTGRES_DB, owner $POSTGRES_USER"
}

# `postgres [options]` or just options: the server. Anything else is run as it is.
if [ "${1:-}" = postgres ]; then
  shift
elif [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres {} +
  chmod 700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  export HOME=/var/lib/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initialise
fi
unset POSTGRES_PASSWORD
exec postgres "$@"
