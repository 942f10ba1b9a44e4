#!/usr/bin/env bash
# The load generator against wrk: both put a closed-loop load (1 thread, 64 keep-alive connections)
# on nginx's `return 200` with a 1 KiB body, interleaved, same machine, same run. Prints requests/s
# and CPU time per request of each, and the ratios; the generator must not be the bottleneck (aim:
# >= 0.8 x wrk). nginx is pinned to CPU 0 and the clients to CPU 1 (taskset), which steadies the
# numbers on a 2-core machine. Needs wrk and nginx (apt-get install wrk nginx-light).
# Usage: Benchmarks/scripts/loadgen-vs-wrk.sh [seconds] [rounds]   (SCRATCH=.build-x: scratch path)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${2:-2}
# A port picked by the kernel (bind to 0, read the number back, let go), never a fixed one.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
build=(swift build -c release --product cachegateway-bench ${SCRATCH:+--scratch-path "$SCRATCH"})
"${build[@]}" >/dev/null
BIN=$("${build[@]}" --show-bin-path)/cachegateway-bench
tmp=$(mktemp -d); ngx=""
cleanup() { [ -n "$ngx" ] && kill "$ngx" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

body=$(head -c 1023 /dev/zero | tr '\0' x)
cat >"$tmp/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$PORT; location / { return 200 "$body\n"; } }
}
NGX
taskset -c 0 nginx -c "$tmp/nginx.conf" -p "$tmp" & ngx=$!
sleep 0.5
URL="http://127.0.0.1:$PORT/"
TIMEFORMAT='%U %S'
# Runs a client pinned to CPU 1; prints "requests/s cpu-µs-per-request".
measure() {
  local rps cpu
  : >"$tmp/gen.json"
  cpu=$( { time taskset -c 1 "$@" >"$tmp/out" 2>&1; } 2>&1 | awk 'NF == 2 { print $1 + $2 }')
  rps=$(awk '/Requests\/sec/ { print $2 } /"requestsPerSecond"/ { gsub(/,/, "", $3); print $3 }' "$tmp/out" "$tmp/gen.json")
  awk -v r="$rps" -v c="$cpu" -v s="$SECS" 'BEGIN { printf "%.0f %.2f\n", r, c * 1e6 / (r * s) }'
}
totals=(0 0 0 0)
for round in $(seq "$ROUNDS"); do
  read -r w wc < <(measure wrk -t1 -c64 -d"${SECS}s" "$URL")
  read -r g gc < <(measure "$BIN" load "$URL" --connections 64 --duration "${SECS}s" --json "$tmp/gen.json")
  printf 'round %d: wrk %6.0f req/s %5.2f µs CPU/request | cachegateway-bench load %6.0f req/s %5.2f µs CPU/request\n' \
    "$round" "$w" "$wc" "$g" "$gc"
  totals=($(awk -v a="${totals[*]}" -v w="$w" -v wc="$wc" -v g="$g" -v gc="$gc" \
    'BEGIN { split(a, t, " "); print t[1] + w, t[2] + wc, t[3] + g, t[4] + gc }'))
done
awk -v a="${totals[*]}" 'BEGIN { split(a, t, " ")
  printf "throughput ratio (generator / wrk): %.2f   CPU per request ratio (generator / wrk): %.2f\n", t[3] / t[1], t[4] / t[2] }'
