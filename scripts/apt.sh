#!/usr/bin/env bash
# Install Debian packages for pygate's set-up scripts; meant to be sourced:
#   . scripts/apt.sh; apt_install "what for" [--apt-get-flag ...] pkg [pkg ...]
# - missing packages only (a no-op when every package is installed);
# - apt-get waits for the dpkg lock (up to 10 minutes) instead of failing when another
#   install runs at the same time (CI and several checkouts on one machine do that);
# - apt's own output goes to .tools/logs/apt.log; the terminal gets one line per step,
#   and the log's tail when a step fails.
# Needs root or password-less sudo; returns 1 with a message otherwise.

_apt_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APT_LOG="${APT_LOG:-$_apt_root/.tools/logs/apt.log}"

_apt_say() { echo "[apt] $*" >&2; }

_apt_run() {  # _apt_run CMD...: run CMD with output to the log; print the log's tail on failure
  mkdir -p "$(dirname "$APT_LOG")"
  echo "=== $(date -u +%FT%TZ) $*" >>"$APT_LOG"
  if ! "$@" >>"$APT_LOG" 2>&1; then
    _apt_say "failed: $* (last lines of $APT_LOG):"
    tail -n 15 "$APT_LOG" >&2
    return 1
  fi
}

apt_install() {  # apt_install LABEL PKG...
  local label="$1"; shift
  local missing=() flags=() pkg sudo="" t0
  for pkg in "$@"; do
    case "$pkg" in -*) flags+=("$pkg"); continue ;; esac
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    _apt_say "no apt-get here: install ${missing[*]} ($label) by hand"; return 1
  fi
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      _apt_say "installing ${missing[*]} ($label) needs root: sudo apt-get install ${missing[*]}"
      return 1
    fi
  fi
  t0=$(date +%s)
  local apt=($sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)
  # One `apt-get update` per machine and hour is enough; a failed install retries it once.
  local stamp="$_apt_root/.tools/logs/apt-updated"
  if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +60 2>/dev/null)" ]; then
    _apt_run "${apt[@]}" update || return 1
    touch "$stamp"
  fi
  if ! _apt_run "${apt[@]}" install "${flags[@]}" "${missing[@]}"; then
    _apt_say "retrying after apt-get update"
    _apt_run "${apt[@]}" update && _apt_run "${apt[@]}" install "${flags[@]}" "${missing[@]}" \
      || return 1
  fi
  _apt_say "installed ${missing[*]} ($label) in $(( $(date +%s) - t0 )) s (log: $APT_LOG)"
}
