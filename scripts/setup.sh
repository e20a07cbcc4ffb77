#!/usr/bin/env bash
# Set up everything pygate needs on a fresh machine; fast no-op when already done.
#   .venv with pygate and its dev tools (re-installed when pyproject.toml changes)
#   the pinned OPA in .tools/bin (scripts/install-opa.sh)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv ..." >&2
  "$python" -m venv .venv
fi
stamp=.venv/.pygate-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing pygate and its dependencies into .venv ..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  .venv/bin/python -m pip install --quiet -e ".[dev]" >&2
  echo "$want" > "$stamp"
fi
opa="$(scripts/install-opa.sh)"
echo "$opa" > .tools/opa-path 2>/dev/null || { mkdir -p .tools; echo "$opa" > .tools/opa-path; }
# The in-process engine (Gate(engine="inprocess")): OPA's Go engine as a shared library, built
# once per Go source into .tools/lib. Without Go (or when the build fails, e.g. no gcc) it is
# skipped with a warning: the sidecar needs no build; its tests then skip, and fail under CI=1.
if command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ]; then
  scripts/build-inprocess.sh >/dev/null \
    || echo "warning: the in-process engine could not be built (engine='inprocess' unavailable)" >&2
else
  echo "warning: no Go, so the in-process engine is not built (engine='inprocess' unavailable)" >&2
fi
