#!/usr/bin/env bash
# Load benchmark of the support API (docs/benchmarks.md, "Support API"): as-of for the biggest
# customer of the large preset (customer 1, 2,000 campaigns) over HTTP with wrk, the whole answer
# and one page of 50. Targets on a 2-core machine: page >= 1,000 req/s with p99 <= 20 ms; whole
# >= 100 req/s with p99 <= 100 ms.
#
#   bench/support_load.sh [--data DIR] [--ops N] [--duration 15s] [--connections 8]
#
# It runs three loads: a page, the whole answer, and the whole answer with Accept-Encoding: gzip
# (as a browser asks; bytes/answer is then the compressed size).
#
# --data DIR keeps the history there, and reuses it when it exists (replaying the large preset
# takes minutes); --ops N replays only the first N ops (the big customer's 2,000 campaigns are
# seeded either way).
# Needs build/campaign-history and wrk (Debian package wrk).
set -euo pipefail

BIN=${CH_BUILD_DIR:-build}/campaign-history
DATA=""
OPS=""
DURATION=15s
CONNECTIONS=8
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --ops) OPS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 2; }
[[ -x $BIN ]] || { echo "$BIN not found: build campaign-history first" >&2; exit 2; }

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

[[ -n $DATA ]] || DATA=$WORK/data
if [[ ! -e $DATA/history.db ]]; then
  echo "generating and replaying the large preset${OPS:+ (--ops $OPS)} (minutes)..." >&2
  "$BIN" generate --preset large ${OPS:+--ops "$OPS"} --out "$WORK/large.jsonl"
  "$BIN" --data "$DATA" replay --ops "$WORK/large.jsonl" --wait --quiet >/dev/null
fi

TOKEN=bench-token-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
CAMPAIGN_HISTORY_SUPPORT_TOKENS=$TOKEN "$BIN" --data "$DATA" serve --roles support \
  --listen 127.0.0.1:0 2>"$WORK/serve.log" &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 200); do
  PORT=$(sed -n 's|.*support API on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$WORK/serve.log" | head -1)
  [[ -n $PORT ]] && break
  sleep 0.05
done
[[ -n $PORT ]] || { echo "the support role did not start:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
BASE=http://127.0.0.1:$PORT/v1/support/customers/1/as-of

# The last change of the history: a past moment, as a support ticket asks for (it lies before
# complete_through, so the answer is final and the support role may cache it; an answer at or
# past complete_through may still change and is recomputed every time).
AT=$("$BIN" --data "$DATA" status --json | sed -n 's/.*"last_event": *"\([^"]*\)".*/\1/p')
COUNT=$(curl -sf -H "Authorization: Bearer $TOKEN" "$BASE?at=$AT&limit=1" |
  sed -n 's/.*"existing": *\([0-9]*\).*/\1/p')
echo "customer 1 as of $AT: ${COUNT:-?} campaigns; wrk ${DURATION}, ${CONNECTIONS} connections, 2 threads"

# run NAME URL [ACCEPT-ENCODING]
run() {
  local name=$1 url=$2 coding=${3:-identity}
  local out
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" \
    -H "Accept-Encoding: $coding" "$url")
  local rps p50 p99 bytes
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  bytes=$(curl -sf -H "Authorization: Bearer $TOKEN" -H "Accept-Encoding: $coding" "$url" | wc -c)
  printf '%-8s %10s req/s   p50 %8s   p99 %8s   %9s bytes/answer\n' "$name" "$rps" "$p50" "$p99" "$bytes"
  if grep -q "Non-2xx" <<<"$out"; then echo "  (some answers were not 2xx)"; grep "Non-2xx" <<<"$out"; fi
}
run page "$BASE?at=$AT&limit=50"
run whole "$BASE?at=$AT"
# As a browser asks (the console): compressed bytes on the wire.
run whole-gz "$BASE?at=$AT" gzip
echo "targets: page >= 1000 req/s, p99 <= 20 ms; whole >= 100 req/s, p99 <= 100 ms"
