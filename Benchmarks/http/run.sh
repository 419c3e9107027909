#!/usr/bin/env bash
# HTTP benchmarks of issue 10 (`kappa serve --http`), ratios in one run:
#  1. ride -> tickets and a user-history page under concurrent load (wrk: 2 threads,
#     16 connections, 20 s each), p50 and p99, over data sets of 1M and 10M app events
#     (plus 6% rides and 0.6% tickets); target: the 10M p50 at most 1.5x the 1M p50.
#  2. ingest over HTTP (POST /v1/topics/app_events/records, 50 000 lines per request, one
#     keep-alive connection) vs `kappa produce` of the same 1M JSON Lines; target <= 2x.
# Needs a release build (swift build -c release), rebu-gen, wrk and python3. Data sets are
# kept in $WORK between runs (delete it to regenerate). The machine is shared: the ratios
# are what to compare, not the absolute times.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.build/release}
KAPPA=$BIN/kappa
SIZES=${SIZES:-"1000000 10000000"}
WORK=${WORK:-/tmp/kappa-http-bench}
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-16}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 1; }
[ -x "$KAPPA" ] && [ -x "$BIN/rebu-gen" ] || { echo "build first: swift build -c release" >&2; exit 1; }
mkdir -p "$WORK"

prepare() {  # N: data set of N app events with the match job caught up
  local n=$1 dir=$WORK/$1
  [ -f "$dir/ready" ] && return
  rm -rf "$dir"; mkdir -p "$dir"
  "$BIN/rebu-gen" --seed 7 --events "$n" --out "$dir/input" >&2
  for t in rides tickets app_events; do
    "$KAPPA" topics create "$t" --partitions 4 --data "$dir/data" >&2
    "$KAPPA" produce "$t" "$dir/input/$t.jsonl" --data "$dir/data" >&2
  done
  "$KAPPA" replay jobs/ticket-ride-match.yaml --switch --data "$dir/data" >&2
  # Paths: rides that have tickets, users that have events.
  "$KAPPA" query ticket-ride-match --data "$dir/data" | python3 -c '
import json, sys, random
rows = [json.loads(l) for l in sys.stdin]
rides = sorted({r["ride_id"] for r in rows if r["ride_id"]})
users = sorted({r["user_id"] for r in rows})
random.seed(7)
open(sys.argv[1], "w").write("".join(f"/v1/rides/{r}/tickets\n" for r in random.sample(rides, min(5000, len(rides)))))
open(sys.argv[2], "w").write("".join(f"/v1/users/{u}/events?limit=20\n" for u in random.sample(users, min(5000, len(users)))))
' "$dir/rides.paths" "$dir/users.paths"
  touch "$dir/ready"
}

start_serve() {  # DIR: starts kappa serve, sets PORT and PID, waits for /readyz
  rm -f "$1/serve.err"
  "$KAPPA" serve --kafka off --http 127.0.0.1:0 --data "$1" 2>"$1/serve.err" &
  PID=$!
  until grep -q "listening on http://" "$1/serve.err" 2>/dev/null; do sleep 0.2; done
  PORT=$(grep -o 'http://127.0.0.1:[0-9]*' "$1/serve.err" | head -1 | sed 's/.*://')
  local t0=$SECONDS
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ]; do sleep 1; done
  echo "  ready after $((SECONDS - t0)) s (history index catch-up)" >&2
}

load() {  # PATHS: wrk over the paths; prints "p50_ms p99_ms requests_per_s"
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s Benchmarks/http/paths.lua "http://127.0.0.1:$PORT" -- "$1" > "$1.wrk"
  python3 - "$1.wrk" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    v, unit = re.search(rf"^\s+{label}\s+([0-9.]+)(us|ms|s)\s*$", text, re.M).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors: sys.exit(f"wrk: {errors.group(1)} error answers\n{text}")
rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", text).group(1))
print(f"{ms('50%'):.3f} {ms('99%'):.3f} {rps:.0f}")
PY
}

declare -A R
for n in $SIZES; do
  echo "data set: $n app events" >&2
  prepare "$n"
  start_serve "$WORK/$n/data"
  R[rides,$n]=$(load "$WORK/$n/rides.paths")
  R[users,$n]=$(load "$WORK/$n/users.paths")
  kill "$PID"; wait "$PID" || true
  echo "  ride->tickets p50/p99 ms, req/s: ${R[rides,$n]}; user page: ${R[users,$n]}" >&2
done

# Ingest: kappa produce vs POST of the same 1M lines, each into a fresh topic.
first=$(echo $SIZES | cut -d' ' -f1)
input=$WORK/$first/input/app_events.jsonl
idir=$WORK/ingest; rm -rf "$idir"
"$KAPPA" topics create a --partitions 4 --data "$idir" >&2
"$KAPPA" topics create b --partitions 4 --data "$idir" >&2
t0=$(date +%s.%N); "$KAPPA" produce a "$input" --data "$idir" 2>/dev/null; t1=$(date +%s.%N)
produce=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
"$KAPPA" serve --kafka off --http 127.0.0.1:0 --data "$idir" 2>"$idir/serve.err" & PID=$!
until grep -q "listening on http://" "$idir/serve.err" 2>/dev/null; do sleep 0.2; done
PORT=$(grep -o 'http://127.0.0.1:[0-9]*' "$idir/serve.err" | head -1 | sed 's/.*://')
http=$(python3 Benchmarks/http/ingest.py "127.0.0.1:$PORT" b "$input")
kill "$PID"; wait "$PID" || true

echo
echo "| benchmark | result |"
echo "|---|---|"
set -- $SIZES
for kind in rides users; do
  name=$([ $kind = rides ] && echo "ride -> tickets" || echo "user-history page (20 events)")
  for n in "$@"; do
    read -r p50 p99 rps <<< "${R[$kind,$n]}"
    echo "| $name at $n app events | p50 ${p50} ms, p99 ${p99} ms, ${rps} req/s |"
  done
  if [ $# -ge 2 ]; then
    a=$(echo "${R[$kind,$1]}" | cut -d' ' -f1); b=$(echo "${R[$kind,$2]}" | cut -d' ' -f1)
    echo "| $name: p50 at $2 / p50 at $1 | $(python3 -c "print(f'{$b / $a:.2f}x')") (target <= 1.5x) |"
  fi
done
echo "| ingest of $first app events: HTTP (50k lines/request) vs kappa produce | ${http} s vs ${produce} s = $(python3 -c "print(f'{$http / $produce:.2f}x')") (target <= 2x) |"
