#!/usr/bin/env bash
# Install the pinned OPA into .tools/bin with `go install` (static, CGO_ENABLED=0).
# Reused when already there. An `opa` named by PYGATE_OPA_BIN or found on PATH wins,
# unless PYGATE_OPA_FORCE_PINNED=1. Prints the path of the opa that pygate will use.
set -euo pipefail
OPA_VERSION="${PYGATE_OPA_VERSION:-1.22.2}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="$root/.tools/bin"

if [ "${PYGATE_OPA_FORCE_PINNED:-0}" != 1 ]; then
  if [ -n "${PYGATE_OPA_BIN:-}" ] && [ -x "$PYGATE_OPA_BIN" ]; then echo "$PYGATE_OPA_BIN"; exit 0; fi
  if command -v opa >/dev/null 2>&1; then command -v opa; exit 0; fi
fi
if [ -x "$bin_dir/opa" ] && "$bin_dir/opa" version 2>/dev/null | grep -qx "Version: $OPA_VERSION"; then
  echo "$bin_dir/opa"; exit 0
fi

go_bin="$(command -v go || true)"
[ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go
if [ -z "$go_bin" ]; then
  echo "error: installing OPA needs Go (https://go.dev/dl) or an opa binary on PATH / in PYGATE_OPA_BIN" >&2
  exit 1
fi
mkdir -p "$bin_dir"
echo "installing OPA $OPA_VERSION into $bin_dir with go install (about 70 s on 2 cores) ..." >&2
start=$(date +%s)
CGO_ENABLED=0 GOBIN="$bin_dir" GOFLAGS=-mod=mod "$go_bin" install \
  "github.com/open-policy-agent/opa@v$OPA_VERSION" >&2
echo "OPA $OPA_VERSION installed in $(( $(date +%s) - start )) s" >&2
echo "$bin_dir/opa"
