#!/bin/sh
# Entrypoint of the Debian PostgreSQL stand-in (docker-compose.local.yml): does what the
# upstream postgres image's entrypoint does for this deployment, with Debian's paths.
# On an empty $PGDATA it creates the cluster with POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB (password auth over TCP); then it runs `postgres ARGS` as the postgres user.
set -eu
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
bin=/usr/lib/postgresql/15/bin
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
[ "${1:-}" = postgres ] && shift

as_pg() { runuser -u postgres -- "$@"; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" > "$pwfile"
  chown postgres "$pwfile"
  # UTF8 like the upstream image (a minbase system has no locale, and initdb would pick
  # SQL_ASCII, for which psycopg hands back bytes instead of text).
  as_pg "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  # First start on the socket only (like upstream), to create the database.
  as_pg "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$db" != postgres ]; then as_pg "$bin/createdb" -U "$user" "$db"; fi
  as_pg "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres stand-in: cluster initialised (user $user, database $db)"
fi
exec runuser -u postgres -- "$bin/postgres" -D "$PGDATA" "$@"
