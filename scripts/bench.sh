#!/usr/bin/env bash
# The gateway benchmark (issue 11): switchboard against nginx proxy_pass, in one run, on loopback.
#
#   scripts/bench.sh [--quick] [--duration SECONDS] [--rounds N] [--connections N]
#                    [--slow-latency-ms MS] [--no-slow]
#
# What it starts (all on 127.0.0.1, all stopped on exit):
#   - nginx (bench/nginx.conf.template) as the vendor: Libredesk answers as static files
#     (bench/bodies/libredesk/: one conversation, a page of 30), and as the peer: plain
#     proxy_pass with a keep-alive upstream in front of that same vendor;
#   - `switchboard run --config bench/switchboard.yaml`: production defaults, the shipped
#     routes (conversations.get cached, lists not), a Libredesk connection to the vendor;
#   - the floor under switchboard: pingora's own proxy with nothing of switchboard in it
#     (examples/bare_proxy.rs: no token, route, metrics or log; the same thread count), in
#     front of that same vendor, and answering `GET /direct` itself (the floor under a
#     cache hit);
#   - wrk -t1 -cN, one path at a time, ROUNDS alternating rounds (switchboard, nginx,
#     bare pingora, switchboard, ...), then medians. Bare pingora proxies the vendor's page
#     as is (no translation): the floor under the page row.
# Paths: GET one conversation uncached (`Cache-Control: no-cache`: every request calls the
# vendor), the same from the cache (nginx has no cache: its figure is the uncached one), and
# GET a page of 30 conversations (never cached), and the uncached conversation's very vendor
# call through /v1/passthrough/ (compared with nginx's figure for that call). Then, unless
# --no-slow, a slow vendor:
# `switchboard demo --config bench/slow-demo.yaml --sandbox-latency-ms MS` (the demo without
# its limits; nginx cannot answer late), one conversation
# uncached, for p99. RSS of the switchboard process: idle after start, and after the runs.
#
# Defaults: 10 s per run, 3 rounds, 32 connections, 50 ms slow vendor (about 4 minutes).
# --quick: 2 s, 1 round (a smoke test of the script, not a measurement).
# Environment: BENCH_DURATION, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_SLOW_LATENCY_MS as the
# flags; BENCH_PORT_BASE (default 18400; uses base+1, +2, +80, +81, +90, +91);
# BENCH_KEEP=1 keeps the work folder (configs, logs, wrk outputs); NGINX, WRK: binaries;
# SWITCHBOARD_BIN, BARE_PROXY_BIN: release binaries already built (else `cargo build
# --release --bin switchboard --example bare_proxy` first);
# BENCH_PERF=DIR: record a `perf record -g` profile of the gateway during each of its runs
# into DIR/<path>-<round>.data (linux-perf; read with `perf report -i FILE`).
set -euo pipefail
cd "$(dirname "$0")/.."
COMMAND="scripts/bench.sh${*:+ $*}"

DURATION="${BENCH_DURATION:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
CONNS="${BENCH_CONNECTIONS:-32}"
SLOW_MS="${BENCH_SLOW_LATENCY_MS:-50}"
SLOW=1
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) DURATION=2; ROUNDS=1 ;;
    --duration) DURATION="${2:?--duration needs seconds}"; shift ;;
    --rounds) ROUNDS="${2:?--rounds needs a number}"; shift ;;
    --connections) CONNS="${2:?--connections needs a number}"; shift ;;
    --slow-latency-ms) SLOW_MS="${2:?--slow-latency-ms needs milliseconds}"; shift ;;
    --no-slow) SLOW=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
for n in "$DURATION" "$ROUNDS" "$CONNS" "$SLOW_MS"; do
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || { echo "not a positive number: $n" >&2; exit 2; }
done

scripts/ensure-system-packages.sh bench
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
WRK="${WRK:-$(command -v wrk)}"
if [ -n "${SWITCHBOARD_BIN:-}" ] && [ -n "${BARE_PROXY_BIN:-}" ]; then
  BIN="$SWITCHBOARD_BIN"
  BARE_BIN="$BARE_PROXY_BIN"
else
  echo "building switchboard and the bare pingora proxy (release)..." >&2
  cargo build --release --quiet --bin switchboard --example bare_proxy
  BIN="${SWITCHBOARD_BIN:-${CARGO_TARGET_DIR:-target}/release/switchboard}"
  BARE_BIN="${BARE_PROXY_BIN:-${CARGO_TARGET_DIR:-target}/release/examples/bare_proxy}"
fi

BASE="${BENCH_PORT_BASE:-18400}"
VENDOR_PORT=$((BASE + 1))
PEER_PORT=$((BASE + 2))
BARE_PORT=$((BASE + 3))
API="127.0.0.1:$((BASE + 80))"
ADMIN="127.0.0.1:$((BASE + 90))"
DEMO_API="127.0.0.1:$((BASE + 81))"
DEMO_ADMIN="127.0.0.1:$((BASE + 91))"
for port in "$VENDOR_PORT" "$PEER_PORT" "$BARE_PORT" "${API##*:}" "${ADMIN##*:}" "${DEMO_API##*:}" "${DEMO_ADMIN##*:}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; pick other ports with BENCH_PORT_BASE=..." >&2
    exit 1
  fi
done

# ----- processes, cleanup -------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench.XXXXXX")"
NGINX_PID=
BARE_PID=
GATEWAY_PID=
DEMO_PID=
stop() { # pid, signal: stop one process this script started and wait for it (10 s, then KILL)
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
  kill "-$2" "$1" 2>/dev/null || true
  local tries=0
  while kill -0 "$1" 2>/dev/null && [ "$tries" -lt 100 ]; do
    sleep 0.1
    tries=$((tries + 1))
  done
  if kill -0 "$1" 2>/dev/null; then
    echo "pid $1 still running 10 s after SIG$2: killed" >&2
    kill -KILL "$1" 2>/dev/null || true
  fi
  wait "$1" 2>/dev/null || true
}
cleanup() {
  stop "$GATEWAY_PID" INT
  stop "$DEMO_PID" INT
  stop "$BARE_PID" INT
  stop "$NGINX_PID" TERM
  if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # url, what, log: poll until the URL answers (deadline 30 s)
  local deadline=$((SECONDS + 30))
  until curl -sf -o /dev/null "$1"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "$2 did not come up at $1; its log:" >&2
      tail -n 30 "$3" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
}

rss_mb() { # pid, field (VmRSS | VmHWM) → MB with one decimal
  awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# ----- the vendor and the peer: nginx ---------------------------------------------------------
VENDOR_CREDENTIALS="${BENCH_LIBREDESK_API_KEY:-bench-key}:${BENCH_LIBREDESK_API_SECRET:-bench-secret}"
CONVERSATION_UUID="$(grep -o '"uuid":"[^"]*"' bench/bodies/libredesk/conversation.json | head -1 | cut -d'"' -f4)"
mkdir -p "$WORK/vendor" "$WORK/tmp"
cp bench/bodies/libredesk/conversation.json bench/bodies/libredesk/conversations_page.json "$WORK/vendor/"
# nginx started by root runs its workers as nobody: they must be able to read the bodies.
chmod -R a+rX "$WORK"
sed -e "s|@WORK@|$WORK|g" -e "s|@VENDOR_PORT@|$VENDOR_PORT|g" -e "s|@PEER_PORT@|$PEER_PORT|g" \
  -e "s|@WORKERS@|$(nproc)|g" -e "s|@VENDOR_CREDENTIALS@|$VENDOR_CREDENTIALS|g" \
  -e "s|@CONVERSATION_UUID@|$CONVERSATION_UUID|g" \
  bench/nginx.conf.template >"$WORK/nginx.conf"
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" -g 'daemon off;' \
  >"$WORK/nginx.out" 2>&1 &
NGINX_PID=$!
VENDOR="http://127.0.0.1:$VENDOR_PORT"
PEER="http://127.0.0.1:$PEER_PORT"
VENDOR_ONE="/api/v1/conversations/$CONVERSATION_UUID"
# The very query the Libredesk adapter sends for GET /v1/conversations?limit=30.
VENDOR_PAGE="/api/v1/conversations/all?page=1&page_size=30&order_by=conversations.last_message_at&order=desc"
wait_for "$PEER$VENDOR_ONE" "nginx" "$WORK/nginx-error.log"

# ----- the floor: pingora's own proxy, nothing of switchboard ---------------------------------
"$BARE_BIN" "127.0.0.1:$BARE_PORT" "127.0.0.1:$VENDOR_PORT" "token $VENDOR_CREDENTIALS" "$(nproc)" \
  >"$WORK/bare.log" 2>&1 &
BARE_PID=$!
BARE="http://127.0.0.1:$BARE_PORT"
wait_for "$BARE/direct" "bare pingora proxy" "$WORK/bare.log"

# ----- the gateway ----------------------------------------------------------------------------
export SWITCHBOARD_BENCH_API="$API" SWITCHBOARD_BENCH_ADMIN="$ADMIN" \
  SWITCHBOARD_BENCH_VENDOR_URL="$VENDOR"
"$BIN" check --config bench/switchboard.yaml >/dev/null
TOKEN="$("$BIN" token --config bench/switchboard.yaml --tenant bench --scope "conversations:read passthrough" --ttl 2h)"
GATEWAY_LOG="$WORK/switchboard.log"
"$BIN" run --config bench/switchboard.yaml --pid-file "$WORK/switchboard.pid" \
  --upgrade-sock "$WORK/upgrade.sock" >>"$GATEWAY_LOG" 2>&1 &
GATEWAY_PID=$!
wait_for "http://$ADMIN/readyz" "switchboard" "$GATEWAY_LOG"
RSS_IDLE="$(rss_mb "$GATEWAY_PID" VmRSS)"
generation() { curl -s "http://$ADMIN/readyz" | grep -o '"generation":[0-9]*' | cut -d: -f2; }
GENERATION_START="$(generation)"

# The opaque ID of the conversation: cv_ + base64url(["bench","libredesk",uuid]).
ID="cv_$(printf '["bench","libredesk","%s"]' "$CONVERSATION_UUID" | base64 -w0 | tr '+/' '-_' | tr -d '=')"
SB_ONE="http://$API/v1/conversations/$ID"
SB_PAGE="http://$API/v1/conversations?limit=30"
AUTH="Authorization: Bearer $TOKEN"

# ----- check every path answers what it should before measuring it -----------------------------
check() { # what, expected status, expected X-Cache ("" = any), url, curl args...
  local what="$1" want="$2" cache="$3" url="$4" status
  shift 4
  status="$(curl -s -o "$WORK/check.body" -D "$WORK/check.headers" -w '%{http_code}' "$@" "$url")"
  if [ "$status" != "$want" ]; then
    echo "check failed: $what answered $status (want $want):" >&2
    head -c 600 "$WORK/check.body" >&2; echo >&2
    exit 1
  fi
  if [ -n "$cache" ] && ! grep -qi "^x-cache: $cache" "$WORK/check.headers"; then
    echo "check failed: $what has no X-Cache: $cache" >&2
    cat "$WORK/check.headers" >&2
    exit 1
  fi
}
check "vendor without credentials" 401 "" "$VENDOR$VENDOR_ONE"
check "nginx, one conversation" 200 "" "$PEER$VENDOR_ONE" -H "$AUTH"
cmp -s "$WORK/check.body" bench/bodies/libredesk/conversation.json \
  || { echo "check failed: nginx did not proxy the vendor's conversation body" >&2; exit 1; }
check "nginx, page of 30" 200 "" "$PEER$VENDOR_PAGE" -H "$AUTH"
cmp -s "$WORK/check.body" bench/bodies/libredesk/conversations_page.json \
  || { echo "check failed: nginx did not proxy the vendor's page body" >&2; exit 1; }
check "bare pingora, one conversation" 200 "" "$BARE$VENDOR_ONE"
cmp -s "$WORK/check.body" bench/bodies/libredesk/conversation.json \
  || { echo "check failed: the bare pingora proxy did not proxy the vendor's conversation body" >&2; exit 1; }
check "bare pingora, page of 30" 200 "" "$BARE$VENDOR_PAGE"
cmp -s "$WORK/check.body" bench/bodies/libredesk/conversations_page.json \
  || { echo "check failed: the bare pingora proxy did not proxy the vendor's page body" >&2; exit 1; }
check "bare pingora, direct answer" 200 "" "$BARE/direct"
check "switchboard, one conversation uncached" 200 bypass "$SB_ONE" -H "$AUTH" -H "Cache-Control: no-cache"
grep -q "\"id\":\"$ID\"" "$WORK/check.body" \
  || { echo "check failed: switchboard's conversation is not $ID:" >&2; head -c 600 "$WORK/check.body" >&2; exit 1; }
check "switchboard, one conversation from the cache" 200 hit "$SB_ONE" -H "$AUTH"
check "switchboard, page of 30" 200 "" "$SB_PAGE" -H "$AUTH"
[ "$(grep -o '"id":"cv_' "$WORK/check.body" | wc -l)" = 30 ] \
  || { echo "check failed: switchboard's page does not hold 30 conversations" >&2; exit 1; }
SB_PASS="http://$API/v1/passthrough/libredesk$VENDOR_ONE" # the very call nginx proxies
check "switchboard, passthrough of one conversation" 200 "" "$SB_PASS" -H "$AUTH"
cmp -s "$WORK/check.body" bench/bodies/libredesk/conversation.json \
  || { echo "check failed: switchboard's passthrough is not the vendor's body" >&2; exit 1; }

# ----- measuring ------------------------------------------------------------------------------
RESULTS="$WORK/results"
: >"$RESULTS"
ms() { # a wrk latency (850.00us, 6.61ms, 1.20s) in ms
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}
run() { # key, server, url, extra header ("" = none)
  local key="$1" server="$2" url="$3" header="$4" out rps p99 errors
  out="$WORK/wrk-$key-$server-$round.txt"
  : >"$GATEWAY_LOG"
  [ -f "$WORK/peer-access.log" ] && : >"$WORK/peer-access.log"
  local perf_pid=
  if [ -n "${BENCH_PERF:-}" ] && [ "$server" = switchboard ]; then
    mkdir -p "$BENCH_PERF"
    perf record -g -q -p "$GATEWAY_PID" -o "$BENCH_PERF/$key-$round.data" -- sleep "$DURATION" \
      >/dev/null 2>&1 &
    perf_pid=$!
  fi
  "$WRK" -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "$AUTH" ${header:+-H "$header"} "$url" >"$out"
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  rps="$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$out")"
  p99="$(ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
  errors="$(awk '/Non-2xx|Socket errors/ { $1 = $1; printf "%s; ", $0 }' "$out")"
  echo "$key $server $rps $p99 ${errors:+errors}" >>"$RESULTS"
  printf '  round %s  %-12s %-11s %8s rps   p99 %8.2f ms   %s\n' \
    "$round" "$key" "$server" "$rps" "$p99" "${errors:-}" >&2
}

LOAD_BEFORE="$(uptime | sed 's/.*load average: //')"
echo >&2
echo "wrk -t1 -c$CONNS, ${DURATION}s per run, $ROUNDS alternating round(s); load average: $LOAD_BEFORE" >&2
for round in $(seq 1 "$ROUNDS"); do
  run one switchboard "$SB_ONE" "Cache-Control: no-cache"
  run one nginx "$PEER$VENDOR_ONE" ""
  run one bare "$BARE$VENDOR_ONE" ""
  curl -sf -o /dev/null -H "$AUTH" "$SB_ONE" # (re)fill the entry, then measure hits
  run hit switchboard "$SB_ONE" ""
  run hit bare "$BARE/direct" ""
  run page switchboard "$SB_PAGE" ""
  run page nginx "$PEER$VENDOR_PAGE" ""
  run page bare "$BARE$VENDOR_PAGE" ""
  run pass switchboard "$SB_PASS" ""
done
RSS_AFTER="$(rss_mb "$GATEWAY_PID" VmRSS)"
RSS_PEAK="$(rss_mb "$GATEWAY_PID" VmHWM)"
CACHE_HITS="$(curl -s "http://$ADMIN/metrics" | awk '/^switchboard_cache_requests_total.*result="hit"/ { s += $2 } END { print s + 0 }')"
# Nothing touches the config files during the run: any reload is a gateway bug that costs
# every request (a reload swaps the snapshot and re-filters the cache).
RELOADS=$(($(generation) - GENERATION_START))
stop "$GATEWAY_PID" INT
GATEWAY_PID=
stop "$BARE_PID" INT
BARE_PID=
stop "$NGINX_PID" TERM
NGINX_PID=

# ----- the slow vendor ------------------------------------------------------------------------
if [ "$SLOW" = 1 ]; then
  DEMO_LOG="$WORK/demo.log"
  # the demo's sandboxes and seeds, without its tenant rate limit, vendor budgets and breaker
  "$BIN" demo --config bench/slow-demo.yaml --api "$DEMO_API" --admin "$DEMO_ADMIN" \
    --sandbox-latency-ms "$SLOW_MS" >"$DEMO_LOG" 2>&1 &
  DEMO_PID=$!
  wait_for "http://$DEMO_ADMIN/readyz" "switchboard demo" "$DEMO_LOG"
  # The demo prints a curl line per object; IDs of ["demo","libredesk",…] start with this.
  SLOW_ID="$(grep -o "/v1/conversations/cv_WyJkZW1vIiwibGlicmVkZXNr[A-Za-z0-9_-]*" "$DEMO_LOG" | head -1)"
  [ -n "$SLOW_ID" ] || { echo "no Libredesk conversation link in the demo output" >&2; exit 1; }
  AUTH="Authorization: Bearer $("$BIN" token --config bench/slow-demo.yaml --tenant demo --scope conversations:read --ttl 2h)"
  check "demo, one conversation uncached" 200 bypass "http://$DEMO_API$SLOW_ID" -H "$AUTH" -H "Cache-Control: no-cache"
  echo "slow vendor: the demo's sandboxes answer ${SLOW_MS} ms late" >&2
  for round in $(seq 1 "$ROUNDS"); do
    run slow switchboard "http://$DEMO_API$SLOW_ID" "Cache-Control: no-cache"
  done
  stop "$DEMO_PID" INT
  DEMO_PID=
fi

# ----- report ---------------------------------------------------------------------------------
median() { # key server column (3 rps, 4 p99)
  awk -v k="$1" -v s="$2" -v c="$3" '$1 == k && $2 == s { print $c }' "$RESULTS" | sort -g \
    | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
range() { # key server: the p99 range over the rounds
  awk -v k="$1" -v s="$2" '$1 == k && $2 == s { print $4 }' "$RESULTS" | sort -g \
    | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR > 1) printf " (%.1f–%.1f)", lo, hi }'
}
figure() { # key server → "8.2k rps, p99 6.6 ms (6.5–7.4)"
  local rps p99
  rps="$(median "$1" "$2" 3)"; p99="$(median "$1" "$2" 4)"
  awk -v r="$rps" -v p="$p99" -v g="$(range "$1" "$2")" 'BEGIN {
    rr = (r >= 1000) ? sprintf("%.1fk", r / 1000) : sprintf("%.0f", r)
    printf "%s rps, p99 %.1f ms%s", rr, p, g }'
}
ratio() { # key (switchboard) key (nginx) [server instead of nginx]
  awk -v a="$(median "$1" switchboard 3)" -v b="$(median "$2" "${3:-nginx}" 3)" 'BEGIN { printf "%.2f×", a / b }'
}
errors="$(awk '$5 == "errors" { n++ } END { print n + 0 }' "$RESULTS")"

echo
echo "## switchboard vs nginx proxy_pass"
echo
echo "command: \`$COMMAND\` (wrk -t1 -c$CONNS, ${DURATION}s per run, $ROUNDS alternating round(s), medians; p99 range over the rounds in brackets)"
echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); $("$NGINX" -v 2>&1 | sed 's/.*: //'); switchboard $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+changes')"
echo "load average before: $LOAD_BEFORE, after: $(uptime | sed 's/.*load average: //') (1, 5, 15 min; anything else running on the machine competes with both servers)"
echo
echo "| path | switchboard | nginx proxy_pass | ratio | goal | bare pingora (the floor) | switchboard / bare |"
echo "|---|---|---|---|---|---|---|"
echo "| GET one conversation, uncached (\`Cache-Control: no-cache\`) | $(figure one switchboard) | $(figure one nginx) | $(ratio one one) | ≥ 1.0×, p99 ≤ nginx | proxy: $(figure one bare) | $(ratio one one bare) |"
echo "| GET one conversation, cache hit | $(figure hit switchboard) | (no cache: row above) | $(ratio hit one) | ≥ 1.5× | direct answer: $(figure hit bare) | $(ratio hit hit bare) |"
echo "| GET a page of 30 conversations | $(figure page switchboard) | $(figure page nginx) | $(ratio page page) | ≥ 0.5× | proxy (the vendor's page as is): $(figure page bare) | $(ratio page page bare) |"
echo "| passthrough GET of one vendor conversation (streamed as is) | $(figure pass switchboard) | (same call: first row) | $(ratio pass one) | ≥ 0.9× | proxy: first row | $(ratio pass one bare) |"
if [ "$SLOW" = 1 ]; then
  echo "| slow vendor (${SLOW_MS} ms): GET one conversation, uncached | $(figure slow switchboard) | — | — | p99 no worse than before | — | — |"
fi
echo
echo "bare pingora vs nginx proxy_pass, the same call: $(awk -v a="$(median one bare 3)" -v b="$(median one nginx 3)" 'BEGIN { printf "%.2f×", a / b }') for one conversation, $(awk -v a="$(median page bare 3)" -v b="$(median page nginx 3)" 'BEGIN { printf "%.2f×", a / b }') for the page (what any gateway built on pingora starts from on this machine)."
echo
echo "switchboard RSS: idle after start $RSS_IDLE MB, after the runs $RSS_AFTER MB (peak $RSS_PEAK MB); goal < 32 MB idle, < 64 MB after."
echo "cache hits counted by the gateway: $CACHE_HITS; config reloads during the runs: $RELOADS (nothing changed the files: should be 0)."
if [ "$RELOADS" -gt 0 ]; then
  echo "WARNING: switchboard reloaded its config $RELOADS times while no file changed; the figures include that work."
fi
if [ "$errors" -gt 0 ]; then
  echo "WARNING: $errors run(s) saw non-2xx answers or socket errors; see the run lines above (BENCH_KEEP=1 keeps the wrk outputs)."
fi
