#!/usr/bin/env bash
# Install Debian's `chromium` (headless rendering check of `pygate audit report`).
# Idempotent: a no-op when a chromium is already there. Prints the binary's path.
# PYGATE_CHROMIUM names a browser to use instead. Needs root (or sudo) for apt-get;
# exits 1 with a message when it cannot install, and the render test then skips saying so.
set -euo pipefail

find_chromium() {
  if [ -n "${PYGATE_CHROMIUM:-}" ] && [ -x "$PYGATE_CHROMIUM" ]; then echo "$PYGATE_CHROMIUM"; return 0; fi
  for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}

if find_chromium; then exit 0; fi

. "$(dirname "$0")/apt.sh"
apt_install "Chromium for the report render test" --no-install-recommends chromium || exit 1
find_chromium
