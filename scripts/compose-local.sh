#!/usr/bin/env bash
# Run the deployment on this machine: docker-compose.yml + docker-compose.local.yml.
#
#   scripts/docker-images.sh                       # once: engine + local images
#   scripts/compose-local.sh up -d                 # any docker-compose arguments
#   scripts/compose-local.sh ps; scripts/compose-local.sh down -v
#
# Why not `docker-compose -f docker-compose.yml -f docker-compose.local.yml` directly: the
# user's file publishes ports, the local override switches every service to host networking,
# an override cannot delete a key in Compose 1.29 (no `!reset`), and Compose 1.29's docker
# library refuses `ports` together with `network_mode: host` (the engine would ignore them).
# So the two files are merged with `docker-compose config`, `ports` is dropped from the
# host-networked services, and docker-compose runs on that rendered file
# (.pygate/compose/<project>.yml). COMPOSE_PROJECT_NAME names the project (default pygate).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
project="${COMPOSE_PROJECT_NAME:-pygate}"
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
mkdir -p "$root/.pygate/compose"
rendered="$root/.pygate/compose/$project.yml"
"${compose[@]}" --project-directory "$root" -f "$root/docker-compose.yml" \
  -f "$root/docker-compose.local.yml" config > "$rendered.tmp"
# Debian's docker-compose brings python3-yaml with /usr/bin/python3.
/usr/bin/python3 - "$rendered.tmp" <<'PY'
import sys, yaml
path = sys.argv[1]
with open(path) as f:
    doc = yaml.safe_load(f)
for svc in doc["services"].values():
    if svc.get("network_mode") == "host":
        svc.pop("ports", None)
with open(path, "w") as f:
    yaml.safe_dump(doc, f, sort_keys=False)
PY
mv "$rendered.tmp" "$rendered"
exec "${compose[@]}" --project-directory "$root" -p "$project" -f "$rendered" "$@"
