#!/usr/bin/env bash
# The server alone: wrk against the gateway's /healthz and against nginx's `return 200`, same
# machine, same run, keep-alive. Prints requests/s for each and the ratio. Needs wrk and nginx
# (apt-get install wrk nginx-light). Usage: Benchmarks/scripts/healthz-vs-nginx.sh [seconds] [loops]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
LOOPS=${2:-1}
# Ports picked by the kernel (bind to 0, read the number back, let go), never fixed ones.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GW_PORT=$(free_port); NGX_PORT=$(free_port); REDIS_PORT=$(free_port)
swift build -c release --product gateway >/dev/null
BIN=$(swift build -c release --show-bin-path)
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

cat >"$tmp/gateway.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
server: { event_loops: $LOOPS }
upstream: { url: http://127.0.0.1:9 }
redis: { url: redis://127.0.0.1:$REDIS_PORT }
routes:
  - { name: rest, match: "/**", class: pass }
YAML
cat >"$tmp/nginx.conf" <<NGX
worker_processes $LOOPS;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen 127.0.0.1:$NGX_PORT; location / { return 200 "ok\n"; } }
}
NGX
"$BIN/gateway" serve --config "$tmp/gateway.yaml" --log-level error & pids+=($!)
nginx -c "$tmp/nginx.conf" & pids+=($!)
sleep 1
rps() { wrk -t1 -c64 -d"${SECS}s" "$1" | awk '/Requests\/sec/ { print $2 }'; }
gw=$(rps "http://127.0.0.1:$GW_PORT/healthz")
ngx=$(rps "http://127.0.0.1:$NGX_PORT/healthz")
gw2=$(rps "http://127.0.0.1:$GW_PORT/healthz")
ngx2=$(rps "http://127.0.0.1:$NGX_PORT/healthz")
awk -v g="$gw" -v n="$ngx" -v g2="$gw2" -v n2="$ngx2" -v l="$LOOPS" 'BEGIN {
  printf "event loops / nginx workers: %d\n", l
  printf "gateway /healthz: %.0f, %.0f req/s\nnginx return 200: %.0f, %.0f req/s\n", g, g2, n, n2
  printf "ratio (gateway / nginx, interleaved runs): %.2f\n", (g + g2) / (n + n2) }'
