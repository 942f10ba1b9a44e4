#!/usr/bin/env bash
# A large cache hit read from Redis: one cached 64 KiB (or $SIZE bytes) entry, the gateway (1 event
# loop, access log off, no in-process tier) and nginx proxy_cache (1 worker) taking turns for
# $ROUNDS rounds of wrk -t1 -c64 -d${SECS}s. Prints req/s and CPU µs per answer (gateway +
# redis-server; nginx alone) per round, then perf record -F 999 -g for 8 s on the gateway.
# Loopback only, kernel-chosen ports, every process stopped by pid.
# BASE=/path/to/another/gateway adds that binary (same config, its own port and key prefix) to the
# rounds, for a before/after within one run.
# Usage: big-hit-profile.sh [perf output file, default perf.data]  (SIZE=65536 ROUNDS=3 SECS=4 NOPERF=1 BASE=)
# then: perf report -i FILE --no-children
set -euo pipefail
OUT=$(realpath -m "${1:-perf.data}")
SIZE=${SIZE:-65536}; ROUNDS=${ROUNDS:-3}; SECS=${SECS:-4}
cd "$(dirname "$0")/../.."
source Benchmarks/scripts/common.sh
RP=$(free_port); BP=$(free_port); GP=$(free_port); NP=$(free_port)
# common.sh's backend answers 1 KiB; this one answers $SIZE bytes on every path.
# UNIX=1: the gateways reach Redis through its unix socket instead of TCP on loopback.
redis-server --port "$RP" --bind 127.0.0.1 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 --save '' --appendonly no \
  >"$tmp/redis.log" 2>&1 & REDISPID=$!; pids+=($REDISPID)
REDIS_URL="redis://127.0.0.1:$RP"; [ -n "${UNIX:-}" ] && REDIS_URL="unix://$tmp/redis.sock"
"$BIN/demo-monolith" --port "$BP" --delay 0 --body-size "$SIZE" >"$tmp/backend.log" 2>&1 & pids+=($!)
cat >"$tmp/gw.yaml" <<YAML
listen: 127.0.0.1:$GP
server: { event_loops: 1 }
upstream: { url: "http://127.0.0.1:$BP" }
redis: { url: "$REDIS_URL", key_prefix: "big:" }
cache: { local_ttl: 0s }
access_log: off
routes:
  - { name: catalog, match: "/catalog/**", class: public, ttl: 5m }
YAML
mkdir -p "$tmp/ngx"
# As root, nginx's worker would run as nobody and could not write the cache in $tmp.
NGXUSER=""; [ "$(id -u)" = 0 ] && NGXUSER="user root;"
cat >"$tmp/nginx.conf" <<NGX
$NGXUSER
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  proxy_cache_path $tmp/ngx levels=1:2 keys_zone=c:10m;
  proxy_temp_path $tmp/ngx-temp;
  server {
    listen 127.0.0.1:$NP;
    location / { proxy_pass http://127.0.0.1:$BP; proxy_cache c; proxy_cache_valid 200 5m;
                 proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
"$BIN/gateway" serve --config "$tmp/gw.yaml" --log-level error >/dev/null 2>"$tmp/gw.log" & GWPID=$!; pids+=($GWPID)
if [ -n "${BASE:-}" ]; then
  BGP=$(free_port)
  sed -e "s/127.0.0.1:$GP/127.0.0.1:$BGP/" -e 's/"big:"/"bigbase:"/' "$tmp/gw.yaml" >"$tmp/base.yaml"
  "$BASE" serve --config "$tmp/base.yaml" --log-level error >/dev/null 2>"$tmp/base.log" & BGPID=$!; pids+=($BGPID)
fi
nginx -c "$tmp/nginx.conf" 2>"$tmp/nginx.out" & NGXPID=$!; pids+=($NGXPID)
sleep 1.5
URL="/catalog/big"
for p in $GP $NP ${BGP:-}; do curl -s -o /dev/null "http://127.0.0.1:$p$URL"; curl -s -o /dev/null "http://127.0.0.1:$p$URL"; done
# The same bytes from both (body only; heads differ by design).
gwlen=$(curl -s "http://127.0.0.1:$GP$URL" | wc -c); ngxlen=$(curl -s "http://127.0.0.1:$NP$URL" | wc -c)
echo "body bytes: gateway $gwlen, nginx $ngxlen; $(uptime)"
[ "$gwlen" = "$ngxlen" ] || { echo "bodies differ"; cat "$tmp/nginx-error.log"; exit 1; }
# CPU ticks (utime+stime) of the pids given, summed, including nginx's worker (child) processes.
ticks() { local t=0 p; for p in "$@"; do
  for q in $p $(pgrep -P "$p" || true); do t=$((t + $(awk '{print $14 + $15}' /proc/$q/stat))); done; done; echo $t; }
HZ=$(getconf CLK_TCK)
run() { # name port pids...: CPU µs per answer of all the pids, and of the first alone
  local name=$1 port=$2; shift 2
  local t0 t1 f0 f1 out rps reqs
  t0=$(ticks "$@"); f0=$(ticks "$1")
  out=$(wrk -t1 -c64 -d"${SECS}s" "http://127.0.0.1:$port$URL")
  t1=$(ticks "$@"); f1=$(ticks "$1")
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
  awk -v n="$name" -v r="$rps" -v q="$reqs" -v d=$((t1 - t0)) -v f=$((f1 - f0)) -v hz="$HZ" \
    'BEGIN { printf "%-8s %9.0f req/s  %6.1f µs CPU/answer (%s alone %.1f)\n", n, r, d / hz * 1e6 / q, n, f / hz * 1e6 / q }'
  echo "$rps" >>"$tmp/$name.rps"
}
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  # With BASE, the two gateways swap places every round (the first after nginx tends to lose).
  if [ -n "${BASE:-}" ] && [ $((round % 2)) = 1 ]; then run base "$BGP" "$BGPID" "$REDISPID"; fi
  run gateway "$GP" "$GWPID" "$REDISPID"
  if [ -n "${BASE:-}" ] && [ $((round % 2)) = 0 ]; then run base "$BGP" "$BGPID" "$REDISPID"; fi
  run nginx "$NP" "$NGXPID"
done
paste -d' ' "$tmp/gateway.rps" "$tmp/nginx.rps" | awk '{ g += $1; n += $2 } END { printf "ratio gateway/nginx (sum of rounds): %.2f\n", g / n }'
[ -n "${BASE:-}" ] && paste -d' ' "$tmp/base.rps" "$tmp/nginx.rps" | awk '{ g += $1; n += $2 } END { printf "ratio base/nginx (sum of rounds): %.2f\n", g / n }'
echo "$(uptime)"
[ -n "${NOPERF:-}" ] && exit 0
command -v perf >/dev/null || { echo "(perf not installed)"; exit 0; }
# PERF_NGINX=1: the profile is of nginx's worker instead, for comparison.
PP=$GP; PPID_=$GWPID; [ -n "${PERF_NGINX:-}" ] && { PP=$NP; PPID_=$(pgrep -P "$NGXPID" | head -1); }
echo "== perf on pid $PPID_"
wrk -t1 -c64 -d12s "http://127.0.0.1:$PP$URL" >/dev/null & w=$!
sleep 1
perf record -F 999 -g -p "$PPID_" -o "$OUT" -- sleep 8 2>/dev/null >/dev/null
wait $w
echo "== syscalls of the gateway per answer (perf stat, 3 s inside a 4 s wrk run)"
wrk -t1 -c64 -d4s "http://127.0.0.1:$GP$URL" >"$tmp/wrk-stat.txt" & w=$!
sleep 0.5
perf stat -x, -e syscalls:sys_enter_read,syscalls:sys_enter_readv,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_ioctl -p "$GWPID" -o "$tmp/stat.txt" -- sleep 3 >/dev/null 2>&1
wait $w
rps=$(awk '/Requests\/sec/ { print $2 }' "$tmp/wrk-stat.txt")
awk -F, -v r="$rps" '/syscalls/ { printf "  %-32s %6.2f per answer\n", $3, $1 / (r * 3) }' "$tmp/stat.txt"
