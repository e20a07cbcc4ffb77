#!/usr/bin/env bash
# Build the in-process engine (OPA's Go engine at the pinned version as a C shared library,
# pygate/engine/golib) into .tools/lib; a fast no-op when this source is already built.
# Needs Go and gcc (cgo). The first build compiles OPA (a few minutes on 2 cores, niced).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
exec nice -n 10 .venv/bin/python -c '
import sys
from pathlib import Path
from pygate._errors import ConfigError
from pygate.engine._inprocess import build_inprocess_library
try:
    print(build_inprocess_library(Path(".tools/lib")))
except ConfigError as exc:
    sys.exit(f"error: {exc}")
'
