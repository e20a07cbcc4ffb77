#!/usr/bin/env bash
# A private PostgreSQL for pygate's audit log, on 127.0.0.1 only; idempotent.
#   scripts/postgres.sh [start]   install Debian's postgresql if missing, create the cluster in
#                                 .tools/pg (first run), start it, create user and database
#                                 "pygate", print the URL (the only thing on stdout)
#   scripts/postgres.sh url       print the URL if the server is running (exit 1 if not)
#   scripts/postgres.sh status    exit 0 if running
#   scripts/postgres.sh stop      stop the server (data is kept)
# Environment: PYGATE_PG_DIR (default .tools/pg, or /var/tmp/pygate-pg-* when the postgres
# user cannot reach the checkout), PYGATE_PG_PORT (default: stable per checkout, the last port
# used (remembered in $PYGATE_PG_DIR/port) or one derived from the checkout's path). The database password is a fixed demo value and the
# server only listens on 127.0.0.1; do not reuse this cluster for anything else.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cmd="${1:-start}"
user=pygate password=pygate db=pygate

# The cluster lives in .tools/pg. As root it belongs to the postgres user, who must be able to
# reach it: when the checkout is not searchable by others (e.g. under /root), use /var/tmp.
resolve_dir() {
  dir="${PYGATE_PG_DIR:-$root/.tools/pg}"
  if [ -z "${PYGATE_PG_DIR:-}" ] && [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 \
     && ! runuser -u postgres -- test -x "$root"; then
    dir="/var/tmp/pygate-pg-$(echo "$root" | sha256sum | cut -c1-12)"
  fi
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  data="$dir/data" run="$dir/run" log="$dir/server.log"
}

say() { echo "postgres.sh: $*" >&2; }

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

install_pg() {
  [ -n "$(pgbin)" ] && [ -x "$(pgbin)/pg_ctl" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    say "PostgreSQL is not installed and this is not root: apt-get install postgresql"; exit 1
  fi
  . "$root/scripts/apt.sh"
  apt_install "PostgreSQL for the audit tests" postgresql || exit 1
  # Only the binaries are wanted: stop the default cluster the package may have started on
  # the fixed port 5432 (ours runs on a port of its own).
  pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1, $2}' | while read -r v c; do
    pg_ctlcluster "$v" "$c" stop || true
  done
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to the postgres user.
as_owner() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

running() { [ -n "$(pgbin)" ] && [ -d "$data" ] && as_owner "$(pgbin)/pg_ctl" -D "$data" status >/dev/null 2>&1; }

port() { cat "$dir/port"; }

url() { echo "postgresql://$user:$password@127.0.0.1:$(port)/$db"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_free() { python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null; }

# The port is stable per checkout, so a URL handed out earlier stays valid across restarts:
# PYGATE_PG_PORT, else the port this cluster used last, else one derived from the checkout's
# path (20000-29999); a free port only when that one is taken by something else.
choose_port() {
  if [ -n "${PYGATE_PG_PORT:-}" ]; then echo "$PYGATE_PG_PORT"; return; fi
  local p
  for p in "$(cat "$dir/port" 2>/dev/null || true)" \
           "$(( 20000 + 0x$(echo "$root" | sha256sum | cut -c1-6) % 10000 ))"; do
    if [ -n "$p" ] && port_free "$p"; then echo "$p"; return; fi
  done
  free_port
}

start() {
  install_pg
  resolve_dir
  local bin; bin="$(pgbin)"
  if running; then url; return 0; fi
  mkdir -p "$run"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir" "$run"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    say "creating the cluster in $data ..."
    rm -rf "$data"
    local pwfile; pwfile="$(mktemp)"; echo "$password" > "$pwfile"; chmod 644 "$pwfile"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --pwfile="$pwfile" -E UTF8 >/dev/null
    rm -f "$pwfile"
  fi
  local p; p="$(choose_port)"
  echo "$p" > "$dir/port"
  as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 30 start \
    -o "-c listen_addresses=127.0.0.1 -p $p -k $run -c max_connections=200" >/dev/null \
    || { say "PostgreSQL did not start; see $log"; tail -20 "$log" >&2 || true; exit 1; }
  local psql=("$bin/psql" -h "$run" -p "$p" -U postgres -v ON_ERROR_STOP=1 -qtA)
  if [ "$(as_owner "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$user'")" != 1 ]; then
    as_owner "${psql[@]}" -d postgres -c "CREATE ROLE $user LOGIN PASSWORD '$password'" >/dev/null
  fi
  if [ "$(as_owner "${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    as_owner "${psql[@]}" -d postgres -c "CREATE DATABASE $db OWNER $user" >/dev/null
  fi
  say "PostgreSQL $(basename "$(dirname "$bin")") running on 127.0.0.1:$p (data: $data)"
  url
}

case "$cmd" in
  start) start ;;
  url) resolve_dir; running && url ;;
  status) resolve_dir; running ;;
  stop)
    resolve_dir
    if running; then as_owner "$(pgbin)/pg_ctl" -D "$data" -m fast -w stop >/dev/null; say "stopped"
    else say "not running"; fi ;;
  *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
