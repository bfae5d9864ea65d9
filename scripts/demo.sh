#!/usr/bin/env bash
# Quick start 1: sandbox vendors + gateway on loopback (API 127.0.0.1:8080, admin :9090).
# Prints a dev token and curl lines. Extra arguments go to `switchboard demo`
# (e.g. --api 127.0.0.1:18080 --admin 127.0.0.1:19090).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-system-packages.sh build
exec cargo run --quiet -- demo "$@"
