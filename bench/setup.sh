#!/bin/sh
# Installs what the benchmark needs beyond the virtualenv: ngIRCd (the reference server),
# only when it is missing. matplotlib comes with `pip install -e '.[dev,bench]'` (Makefile).
set -eu
if command -v ngircd >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y ngircd
