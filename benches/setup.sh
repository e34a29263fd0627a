#!/usr/bin/env bash
# Installs wrk, the HTTP load generator that weft-bench's `http` suite drives, from the distribution's
# packages (Debian and Ubuntu: `apt-get install wrk`).
#
#   benches/setup.sh
#
# Safe to run again: it does nothing when `wrk` is already on PATH. It runs apt-get directly
# when run as root and through sudo otherwise, and refreshes the package lists (apt-get update)
# only when the install fails without them.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
  echo "wrk is already installed: $(command -v wrk)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here: install wrk with the system's package manager (https://github.com/wg/wrk)" >&2
  exit 1
fi

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "installing wrk needs root, or sudo: neither is available" >&2
    exit 1
  fi
}

# `env` rather than a variable assignment: sudo drops the caller's environment.
install_wrk() { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }

if ! install_wrk; then
  echo "apt-get install failed; refreshing the package lists and trying again" >&2
  as_root apt-get update -q
  install_wrk
fi
hash -r
if ! command -v wrk >/dev/null 2>&1; then
  echo "apt-get installed wrk, but it is not on PATH ($PATH)" >&2
  exit 1
fi
echo "wrk installed: $(command -v wrk)"
