#!/usr/bin/env bash
# The access log's cost on a hit, and a perf profile of the hit path: one cached 1 KiB key read
# from Redis, two gateways (access log to a file / off, 1 event loop each) taking turns for 3
# rounds of wrk -t1 -c64 -d4s, then perf record -F 999 -g for 8 s on the one with the log (when
# perf is installed). Loopback only, kernel-chosen ports, every process stopped by pid.
# Usage: hit-profile.sh [perf output file, default perf.data]; then perf report -i FILE --no-children
set -euo pipefail
OUT=$(realpath -m "${1:-perf.data}")
cd "$(dirname "$0")/../.."
source Benchmarks/scripts/common.sh
RP=$(free_port); BP=$(free_port)
start_redis_and_backend "$RP" "$BP"
gw() { # name, extra yaml line
  local port; port=$(free_port)
  cat >"$tmp/$1.yaml" <<YAML
listen: 127.0.0.1:$port
server: { event_loops: 1 }
upstream: { url: "http://127.0.0.1:$BP" }
redis: { url: "redis://127.0.0.1:$RP", key_prefix: "prof$1:" }
cache: { local_ttl: 0s }
$2
routes:
  - { name: catalog, match: "/catalog/**", class: public, ttl: 5m }
YAML
  "$BIN/gateway" serve --config "$tmp/$1.yaml" --log-level error >/dev/null 2>"$tmp/$1.log" &
  echo "$port $!"
}
# gw runs in a subshell here: its pids go into the list by hand, so that cleanup stops them too.
read ONP ONPID < <(gw on "access_log: { path: $tmp/access.log }"); pids+=("$ONPID")
read OFFP OFFPID < <(gw off "access_log: off"); pids+=("$OFFPID")
sleep 1.5
curl -s -o /dev/null "http://127.0.0.1:$ONP/catalog/x"; curl -s -o /dev/null "http://127.0.0.1:$OFFP/catalog/x"
for round in 1 2 3; do
  for t in on off; do
    port=$ONP; [ $t = off ] && port=$OFFP
    printf "%s round %s: " $t $round; wrk -t1 -c64 -d4s "http://127.0.0.1:$port/catalog/x" | grep Requests/sec
  done
done
echo "== perf on the access-log-on gateway"
wrk -t1 -c64 -d12s "http://127.0.0.1:$ONP/catalog/x" >/dev/null & w=$!
sleep 1
command -v perf >/dev/null || { echo "(perf not installed: apt-get install linux-perf)"; wait $w; exit 0; }
perf record -F 999 -g -p "$ONPID" -o "$OUT" -- sleep 8 2>/dev/null >/dev/null
wait $w
