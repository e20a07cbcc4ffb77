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

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no apt-get here; install Chromium and set PYGATE_CHROMIUM" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "install-chromium: apt-get needs root; run: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
echo "installing Debian's chromium with apt-get (about a minute) ..." >&2
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
$sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium >&2
echo "chromium installed in $(( $(date +%s) - start )) s" >&2
find_chromium
