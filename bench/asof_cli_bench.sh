#!/usr/bin/env bash
# asof_cli_bench.sh: time the whole process `campaign-history as-of --json` (start, open, catch-up,
# query, rendering, exit) for a big and a small customer, median of N runs each, and compare
# binaries by alternating them run by run (so load from other processes hits all of them alike).
#
# Usage: bench/asof_cli_bench.sh [-n RUNS] [-b BIG] [-s SMALL] [-a AT] -d DATA_DIR [-H HISTORY_URL]
#                                BINARY [BINARY...]
#   BINARY: campaign-history executables (e.g. a baseline build first, then the new one).
#   DATA_DIR / HISTORY_URL: passed as --data / --history (e.g. the directory pipeline_bench --keep
#   left, or sqlite:FILE from history_bench --keep).
# Prints, per binary and customer: median and p90 wall time and median CPU time (user + sys), in
# ms, and the output size; checks that every binary prints the same bytes.
set -euo pipefail
runs=10 big=1 small=2 at=now data="" history=""
while getopts "n:b:s:a:d:H:" o; do
  case $o in
    n) runs=$OPTARG ;; b) big=$OPTARG ;; s) small=$OPTARG ;; a) at=$OPTARG ;;
    d) data=$OPTARG ;; H) history=$OPTARG ;; *) exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ -n $data && $# -ge 1 ]] || { sed -n 5,12p "$0" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(--data "$data")
[[ -n $history ]] && flags+=(--history "$history")
# An absolute --at so that every run (and every binary) answers the same question.
if [[ $at == now ]]; then at=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ); fi
TIMEFORMAT='%3R %3U %3S'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $runs runs per binary and customer; --at $at"
for customer in "$big" "$small"; do
  for ((i = 0; i < runs; ++i)); do
    for ((k = 1; k <= $#; ++k)); do
      bin=${!k}
      { time "$bin" "${flags[@]}" as-of --customer "$customer" --at "$at" --json \
          >"$tmp/out.$k" 2>/dev/null; } 2>>"$tmp/times.$customer.$k"
    done
    for ((k = 2; k <= $#; ++k)); do
      # complete_through moves on every run on a live data directory (each catch-up records a
      # heartbeat): compare everything else.
      cmp -s <(grep -v '"complete_through"' "$tmp/out.1") \
        <(grep -v '"complete_through"' "$tmp/out.$k") ||
        { echo "binary $k prints other bytes" >&2; exit 1; }
    done
  done
  for ((k = 1; k <= $#; ++k)); do
    bytes=$(wc -c <"$tmp/out.$k")
    awk -v name="${!k}" -v c="$customer" -v bytes="$bytes" '
      { wall[NR] = $1 * 1000; cpu[NR] = ($2 + $3) * 1000 }
      END {
        n = asort(wall); asort(cpu)
        printf "customer %s  %-40s wall median %6.1f ms  p90 %6.1f ms  CPU median %6.1f ms  (%d bytes)\n",
               c, name, wall[int((n + 1) / 2)], wall[int(n * 0.9 + 0.5)], cpu[int((n + 1) / 2)], bytes
      }' "$tmp/times.$customer.$k"
  done
done
