#!/usr/bin/env bash
# Installs the Debian packages switchboard needs to build and test, or stops with the exact
# command to run. Usage: scripts/ensure-system-packages.sh build|test|bench
#   build: cmake (pingora builds zlib-ng with it), perl + make (vendored OpenSSL)
#   test:  the above, plus prometheus (promtool and a real Prometheus for the dashboard
#          tests), curl (the demo's printed curl lines are executed by a test) and
#          redis-server (the cluster tests start a real Redis on a loopback port)
#   bench: the build packages, plus nginx (static vendor and proxy_pass baseline), wrk (load)
#          and curl, for scripts/bench.sh, and redis-server for benches/redis_state.rs
#   deploy: python3 and python3-venv, for scripts/validate-deploy.sh (schema validators from PyPI)
set -euo pipefail

want=(cmake perl make)
case "${1:-build}" in
  build) ;;
  test) want+=(prometheus curl redis-server) ;;
  bench) want+=(nginx wrk curl redis-server) ;;
  deploy) want=(python3 python3-venv) ;;
  *) echo "usage: $0 build|test|bench|deploy" >&2; exit 2 ;;
esac

missing=()
for pkg in "${want[@]}"; do
  bin="$pkg"
  [ "$pkg" = "prometheus" ] && bin="promtool"
  if [ "$pkg" = "python3-venv" ]; then
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=("$pkg")
    continue
  fi
  # nginx lives in /usr/sbin, which is not on every user's PATH.
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = "0" ]; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  echo "installing: ${missing[*]}" >&2
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]}" >&2
  echo "run:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
