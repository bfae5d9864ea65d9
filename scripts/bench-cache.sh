#!/usr/bin/env bash
# Cache benchmark: cached vs uncached GET of one contact through the gateway, against the
# Libredesk sandbox on loopback, measured with wrk in one run.
#   scripts/bench-cache.sh [seconds per run] [connections] [vendor latency ms]
# "uncached" sends `Cache-Control: no-cache`, so every request goes to the vendor (sandbox);
# "cached" is the same request served from moka. Two scenarios: a sandbox that answers at
# once (the gateway's own overhead, both paths bound by loopback TCP), and a sandbox that
# answers after the given latency (default 50 ms; real vendors take hundreds).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-32}"
LATENCY="${3:-50}"
scripts/ensure-system-packages.sh build
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else echo "run: sudo apt-get install -y wrk" >&2; exit 1; fi
fi
cargo build --release --quiet
BIN=target/release/switchboard
API=127.0.0.1:18480
ADMIN=127.0.0.1:18490
TOKEN=$("$BIN" token --config config/demo.yaml --tenant demo --scope "contacts:read" --ttl 1h)
PID=
LOG=$(mktemp)
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -f "$LOG"; }
trap cleanup EXIT

start_demo() { # vendor latency in ms
  RUST_LOG="${RUST_LOG:-warn}" "$BIN" demo --api "$API" --admin "$ADMIN" --sandbox-latency-ms "$1" >"$LOG" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do curl -sf "http://$ADMIN/readyz" >/dev/null && return; sleep 0.1; done
  echo "gateway did not start:"; cat "$LOG"; exit 1
}

run() { # label, extra header
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" ${2:+-H "$2"} "$URL" >/tmp/bench-run.txt
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' /tmp/bench-run.txt)
  p99=$(awk '$1=="99%" {print $2}' /tmp/bench-run.txt)
  errors=$(awk '/Non-2xx|Socket errors/ {print}' /tmp/bench-run.txt)
  printf '  %-9s %12s req/s   p99 %9s   %s\n' "$1" "$rps" "$p99" "${errors:-no errors}" >&2
  echo "$rps"
}

echo "wrk: ${DURATION}s per run, $CONNS connections, 2 threads; GET one Libredesk contact"
for latency in 0 "$LATENCY"; do
  start_demo "$latency"
  # The demo prints Libredesk's contact link; IDs of ["demo","libredesk",…] start with this prefix.
  ID=$(grep -o "/v1/contacts/ct_WyJkZW1vIiwibGlicmVkZXNr[A-Za-z0-9_-]*" "$LOG" | head -1)
  [ -n "$ID" ] || { echo "no Libredesk contact link in the demo output"; cat "$LOG"; exit 1; }
  URL="http://$API$ID"
  curl -sf "$URL" -H "Authorization: Bearer $TOKEN" >/dev/null
  echo "sandbox latency ${latency} ms:"
  uncached=$(run uncached "Cache-Control: no-cache")
  cached=$(run cached "")
  awk -v c="$cached" -v u="$uncached" 'BEGIN { printf "  cached / uncached throughput: %.2fx\n", c / u }'
  curl -s "http://$ADMIN/metrics" | grep -E '^switchboard_cache_requests_total' | sed 's/^/  /'
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
done
