#!/usr/bin/env bash
# The local Docker set-up for machines where no image registry is reachable.
#
#   scripts/docker-images.sh            engine up (if needed) + every local image (if missing)
#   scripts/docker-images.sh engine     only make sure a Docker engine answers
#   scripts/docker-images.sh stop       stop the engine, if this script started it
#   scripts/docker-images.sh env        print the image variables for docker-compose.local.yml
#
# The engine: nothing is done when `docker info` already works. Otherwise Debian's docker.io
# (and docker-compose, debootstrap) are installed, and dockerd is started in the background with
# no bridge and no firewall rules (only loopback traffic is allowed here); its PID goes to
# .tools/docker/dockerd.pid so `stop` ends exactly that process.
#
# The images (nothing is ever pulled), each labelled with a hash of its inputs and rebuilt only
# when that hash changes, so a second run takes a few seconds:
#   pygate-local/opa        FROM scratch + the static .tools/bin/opa (what openpolicyagent/opa:*-static is)
#   pygate-local/python     Debian bookworm minbase + python3 (3.11), from debootstrap + docker import
#   pygate-local/service    the repo's Dockerfile on that base, pip installing from a host-built
#                           wheelhouse, built with --network none
#   pygate-local/nginx      Debian bookworm + nginx (stand-in for nginx:1.27-alpine)
#   pygate-local/postgres   Debian bookworm + postgresql (stand-in for postgres:16-alpine)
# The debootstrap root filesystems are cached as tarballs in .tools/rootfs/.
# Each step prints how long it took; apt's output goes to .tools/logs/apt.log.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
state=.tools/docker
mkdir -p "$state" .tools/rootfs
SUITE=bookworm
PY_PKGS=python3,python3-venv,ca-certificates
NGINX_PKGS=nginx,wget
PG_PKGS=postgresql

log() { echo "[docker-images] $*" >&2; }
timed() {  # timed LABEL CMD...: run CMD, log its duration
  local label="$1" t0; shift; t0=$(date +%s.%N)
  "$@"
  log "$label: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f s", b-a}')"
}

. scripts/apt.sh   # apt_install: waits for the dpkg lock, output to .tools/logs/apt.log

# Every package this script needs, installed once, before anything runs in parallel (three
# debootstraps each installing debootstrap lost the dpkg lock to each other on a fresh machine).
packages() {
  local want=()
  command -v dockerd >/dev/null 2>&1 || want+=(docker.io)
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 \
    || want+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || want+=(debootstrap)
  [ "${#want[@]}" -eq 0 ] || apt_install "Docker engine, compose and image builds" "${want[@]}"
}

engine() {
  if docker info >/dev/null 2>&1; then return 0; fi
  command -v dockerd >/dev/null 2>&1 || apt_install "Docker engine" docker.io
  if [ -f "$state/dockerd.pid" ] && kill -0 "$(cat "$state/dockerd.pid")" 2>/dev/null; then
    log "dockerd (pid $(cat "$state/dockerd.pid")) is starting ..."
  else
    log "starting dockerd (no bridge, no iptables) ..."
    setsid dockerd --bridge=none --iptables=false --ip6tables=false \
      >"$state/dockerd.log" 2>&1 </dev/null &
    echo $! >"$state/dockerd.pid"
  fi
  local t0; t0=$(date +%s)
  until [ -S /var/run/docker.sock ] && docker info >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$state/dockerd.pid")" 2>/dev/null; then
      log "dockerd exited; its log:"; tail -20 "$state/dockerd.log" >&2; rm -f "$state/dockerd.pid"
      return 1
    fi
    if (( $(date +%s) - t0 > 60 )); then log "dockerd not ready after 60 s"; return 1; fi
    sleep 0.3
  done
  log "engine ready in $(( $(date +%s) - t0 )) s"
}

stop_engine() {
  local pid
  [ -f "$state/dockerd.pid" ] || { log "dockerd was not started by this script; left alone"; return 0; }
  pid="$(cat "$state/dockerd.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    log "dockerd (pid $pid) stopped"
  fi
  rm -f "$state/dockerd.pid"
}

compose_tool() {  # make sure a compose command exists (v2 plugin or Debian's 1.29)
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 \
    || apt_install "Docker compose" docker-compose
}

mirror() {
  local uri
  uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  [ -n "$uri" ] || uri="$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}

# label NAME: the inputs hash recorded on the image, or nothing when the image is missing
label() { docker image inspect -f '{{index .Config.Labels "org.pygate.inputs"}}' "$1" 2>/dev/null || true; }

# rootfs NAME PACKAGES: path of a cached debootstrap tarball with PACKAGES (made when missing)
rootfs_id() { echo "$1-$SUITE-$(echo "$SUITE $2 $(mirror)" | sha256sum | cut -c1-12)"; }

rootfs() {
  local name="$1" packages="$2" tarball dir
  tarball=".tools/rootfs/$(rootfs_id "$name" "$packages").tar"
  if [ ! -f "$tarball" ]; then
    command -v debootstrap >/dev/null 2>&1 \
      || { log "debootstrap is missing: run scripts/docker-images.sh (it installs it first)"; return 1; }
    dir="$(mktemp -d "$root/.tools/rootfs/$name.XXXX")"
    local t0; t0=$(date +%s)
    debootstrap --variant=minbase --include="$packages" "$SUITE" "$dir" "$(mirror)" \
      >"$dir.log" 2>&1 \
      || { log "debootstrap failed; see $dir.log"; tail -5 "$dir.log" >&2; return 1; }
    log "debootstrap $name ($packages): $(( $(date +%s) - t0 )) s"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    timed "tar $name rootfs" tar -C "$dir" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$dir" "$dir.log"
  fi
  echo "$tarball"
}

# import NAME PACKAGES [--change ...]: a Debian image from a cached rootfs
image_name() { local name="${1##*/}"; echo "${name%%:*}"; }
import_hash() {  # import_hash IMAGE PACKAGES [--change ...]: what the image's label must say
  local image="$1" packages="$2"; shift 2
  echo "$(rootfs_id "$(image_name "$image")" "$packages") $*" | sha256sum | cut -c1-16
}

import_image() {
  local image="$1" packages="$2" tarball hash; shift 2
  hash="$(import_hash "$image" "$packages" "$@")"
  if [ "$(label "$image")" = "$hash" ]; then log "$image up to date"; return 0; fi
  tarball="$(rootfs "$(image_name "$image")" "$packages")"
  timed "docker import $image" docker import --change "LABEL org.pygate.inputs=$hash" "$@" \
    "$tarball" "$image" >/dev/null
}

build_opa() {
  local image=pygate-local/opa:latest opa hash ctx
  opa="$(cat .tools/opa-path 2>/dev/null || echo .tools/bin/opa)"
  [ -x "$opa" ] || opa="$(scripts/install-opa.sh)"
  # The image needs a static binary (FROM scratch has no libc); `go install` with CGO_ENABLED=0
  # (scripts/install-opa.sh) makes one.
  if ldd "$opa" >/dev/null 2>&1; then log "$opa is dynamically linked; need the static one"; return 1; fi
  hash="$(cat "$opa" deploy/local/opa.Dockerfile | sha256sum | cut -c1-16)"
  if [ "$(label "$image")" = "$hash" ]; then log "$image up to date"; return 0; fi
  ctx="$(mktemp -d)"
  cp "$opa" "$ctx/opa"
  timed "docker build $image" docker build -q --network none --label "org.pygate.inputs=$hash" \
    -f deploy/local/opa.Dockerfile -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_service() {
  local image=pygate-local/service:latest base=$PY_IMAGE hash base_id
  base_id="$(docker image inspect -f '{{.Id}}' "$base")"
  hash="$( { echo "$base_id"; cat Dockerfile .dockerignore pyproject.toml;
             find pygate examples -name '*.py' -o -name py.typed | LC_ALL=C sort | xargs cat; } \
           | sha256sum | cut -c1-16)"
  if [ "$(label "$image")" = "$hash" ]; then log "$image up to date"; return 0; fi
  # pip inside a container cannot reach the package index here: resolve everything on the host
  # into build/wheelhouse (plus setuptools, which builds pygate itself), then install offline.
  rm -rf build/wheelhouse
  timed "pip wheel (host wheelhouse)" .venv/bin/python -m pip wheel -q --wheel-dir build/wheelhouse \
    . "setuptools>=68" >&2
  rm -f build/wheelhouse/pygate-*.whl   # the image builds pygate from the copied source
  timed "docker build $image (--network none)" docker build -q --network none \
    --label "org.pygate.inputs=$hash" --build-arg PYTHON_IMAGE="$base" \
    --build-arg PIP_SOURCES="--no-index --find-links /src/build/wheelhouse" \
    -t "$image" . >/dev/null
}

PY_IMAGE=pygate-local/python:3.11
PY_CHANGE='CMD ["python3"]'
NGINX_IMAGE=pygate-local/nginx:latest
NGINX_CHANGE='CMD ["nginx", "-g", "daemon off;"]'
PG_IMAGE=pygate-local/postgres:latest
PG_CHANGE='ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

images() {
  # The root filesystems are independent downloads: make the missing ones in parallel.
  local pids=() pid
  if [ "$(label $PY_IMAGE)" != "$(import_hash $PY_IMAGE "$PY_PKGS" --change "$PY_CHANGE")" ]; then
    rootfs python "$PY_PKGS" >/dev/null & pids+=($!)
  fi
  if [ "$(label $NGINX_IMAGE)" != "$(import_hash $NGINX_IMAGE "$NGINX_PKGS" --change "$NGINX_CHANGE")" ]; then
    rootfs nginx "$NGINX_PKGS" >/dev/null & pids+=($!)
  fi
  if [ "$(label $PG_IMAGE)" != "$(import_hash $PG_IMAGE "$PG_PKGS" --change "$PG_CHANGE")" ]; then
    rootfs postgres "$PG_PKGS" >/dev/null & pids+=($!)
  fi
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || { log "a root filesystem could not be built (see above)"; return 1; }
  import_image $PY_IMAGE "$PY_PKGS" --change "$PY_CHANGE"
  import_image $NGINX_IMAGE "$NGINX_PKGS" --change "$NGINX_CHANGE"
  import_image $PG_IMAGE "$PG_PKGS" --change "$PG_CHANGE"
  build_opa
  build_service
  # Earlier builds of these images, now untagged, are only disk space.
  docker image prune -f --filter label=org.pygate.inputs >/dev/null
}

case "${1:-build}" in
  engine) packages; engine; compose_tool ;;
  stop) stop_engine ;;
  build)
    t0=$(date +%s)
    timed "packages" packages; engine; compose_tool; images
    log "all images ready in $(( $(date +%s) - t0 )) s"
    ;;
  env)
    echo "OPA_IMAGE=pygate-local/opa:latest"
    echo "SERVICE_IMAGE=pygate-local/service:latest"
    echo "NGINX_IMAGE=pygate-local/nginx:latest"
    echo "POSTGRES_IMAGE=pygate-local/postgres:latest"
    ;;
  *) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
