#!/usr/bin/env bash
# Cache benchmark: cached vs uncached GET of one contact through the gateway, against the
# Libredesk sandbox on loopback, measured with wrk in one run.
#   scripts/bench-cache.sh [seconds per run] [connections]
# "uncached" sends `Cache-Control: no-cache`, so every request goes to the vendor (sandbox);
# "cached" is the same request served from moka. Prints throughput and p99 of both and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-32}"
scripts/ensure-system-packages.sh build
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else echo "run: sudo apt-get install -y wrk" >&2; exit 1; fi
fi
cargo build --release --quiet
BIN=target/release/switchboard
API=127.0.0.1:18480
ADMIN=127.0.0.1:18490
LOG=$(mktemp)
"$BIN" demo --api "$API" --admin "$ADMIN" >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://$ADMIN/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://$ADMIN/readyz" >/dev/null || { echo "gateway did not start:"; cat "$LOG"; exit 1; }
TOKEN=$("$BIN" token --config config/demo.yaml --tenant demo --scope "contacts:read" --ttl 1h)
# Ada Lovelace, seeded in the Libredesk sandbox (see src/sandbox/libredesk.rs, seed).
# The demo prints Libredesk's contact link; IDs of ["demo","libredesk",…] start with this prefix.
ID=$(grep -o "/v1/contacts/ct_WyJkZW1vIiwibGlicmVkZXNr[A-Za-z0-9_-]*" "$LOG" | head -1)
[ -n "$ID" ] || { echo "no Libredesk contact link in the demo output"; cat "$LOG"; exit 1; }
URL="http://$API$ID"
curl -sf "$URL" -H "Authorization: Bearer $TOKEN" >/dev/null

run() { # name, extra header
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" ${2:+-H "$2"} "$URL" >"/tmp/bench-$1.txt"
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "/tmp/bench-$1.txt")
  p99=$(awk '$1=="99%" {print $2}' "/tmp/bench-$1.txt")
  local errors
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "/tmp/bench-$1.txt")
  printf '%-9s %12s req/s   p99 %8s   %s\n' "$1" "$rps" "$p99" "${errors:-no errors}"
  echo "$rps" >"/tmp/bench-$1.rps"
}
echo "wrk: ${DURATION}s, $CONNS connections, 2 threads, GET one contact ($URL)"
run uncached "Cache-Control: no-cache"
run cached ""
awk -v c="$(cat /tmp/bench-cached.rps)" -v u="$(cat /tmp/bench-uncached.rps)" \
  'BEGIN { printf "cached / uncached throughput: %.2fx (target >= 3x)\n", c / u }'
curl -s "http://$ADMIN/metrics" | grep -E '^switchboard_cache_requests_total' || true
