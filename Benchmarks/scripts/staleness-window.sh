#!/usr/bin/env bash
# The coherent in-process tier's staleness window, and what the tier is worth on hits.
# Starts one redis-server, one demo monolith and N gateway processes (default 3, release build)
# sharing a key prefix, each with the coherent tier on (cache.local_ttl 5m, local_tracking).
# 1. Staleness: S times (default 200), a fresh key is read on every instance until each serves it
#    from its tier (Cache-Status detail=local), then DELeted through a raw Redis connection; a
#    checker polls every instance (keep-alive, one request at a time) until none serves the old
#    copy. Prints median, p99 and max of DEL → every instance missing its tier.
# 2. Hit throughput on one instance, tier on and off (wrk -t1 -c64 -d5s on one hot key; the
#    tier-off gateway is another process with local_ttl 0s), when wrk is installed.
# Loopback only, kernel-chosen ports; every process it starts is stopped by pid.
# Usage: staleness-window.sh [samples] [instances]
set -euo pipefail
cd "$(dirname "$0")/../.."
SAMPLES=${1:-200}
INSTANCES=${2:-3}
source Benchmarks/scripts/common.sh
REDIS_PORT=$(free_port); BACKEND_PORT=$(free_port)
start_redis_and_backend "$REDIS_PORT" "$BACKEND_PORT"
start_gateway() {  # name, local_ttl line → prints "port pid" (it runs in a subshell: the caller keeps the pid)
    local port; port=$(free_port)
    cat >"$tmp/$1.yaml" <<YAML
listen: 127.0.0.1:$port
server: { event_loops: 1 }
upstream: { url: "http://127.0.0.1:$BACKEND_PORT", max_connections: 32 }
redis: { url: "redis://127.0.0.1:$REDIS_PORT", key_prefix: "stale:" }
cache: { $2 }
access_log: off
routes:
  - { name: catalog, match: "/catalog/**", class: public, ttl: 5m }
YAML
    "$BIN/gateway" serve --config "$tmp/$1.yaml" --log-level error >"$tmp/$1.log" 2>&1 &
    echo "$port $!"
}
ports=()
for i in $(seq 1 "$INSTANCES"); do
    read -r port pid < <(start_gateway "gw$i" "local_ttl: 5m"); ports+=("$port"); pids+=("$pid")
done
read -r OFF_PORT pid < <(start_gateway gw-off "local_ttl: 0s"); pids+=("$pid")
sleep 1.5
echo "== staleness window: $SAMPLES DELs, $INSTANCES instances (event_loops 1 each)"
python3 - "$REDIS_PORT" "$SAMPLES" "${ports[@]}" <<'PY'
import http.client, socket, sys, time
redis_port, samples, ports = int(sys.argv[1]), int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=5) for p in ports]
def status(i, path):
    conns[i].request("GET", path); r = conns[i].getresponse(); r.read()
    if r.status != 200: sys.exit(f"status {r.status} from instance {i}")
    return r.getheader("Cache-Status", "")
redis = socket.create_connection(("127.0.0.1", redis_port)); redis.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def command(*args):
    redis.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    return redis.recv(65536)
def keys():
    reply = command(b"KEYS", b"stale:e:*").split(b"\r\n")
    return {line for line in reply if line.startswith(b"stale:e:")}
windows = []
for n in range(samples):
    path = f"/catalog/stale-{n}"
    before = keys(); status(0, path); key = (keys() - before).pop()
    for i in range(len(ports)):
        for _ in range(20):
            if status(i, path).endswith("detail=local"): break
        else: sys.exit(f"instance {i} never served {path} from its tier")
    start = time.perf_counter()
    assert command(b"DEL", key) == b":1\r\n"
    left = set(range(len(ports)))
    while left:
        if time.perf_counter() - start > 5: sys.exit(f"{path}: still served locally 5 s after the DEL")
        left = {i for i in left if status(i, path).endswith("detail=local")}
    windows.append((time.perf_counter() - start) * 1000)
windows.sort()
pick = lambda q: windows[min(len(windows) - 1, max(0, int(len(windows) * q + 0.999999) - 1))]
print(f"  DEL -> every instance misses its tier: median {pick(0.5):.2f} ms, p99 {pick(0.99):.2f} ms, max {windows[-1]:.2f} ms")
print("  (includes the checker's own polling: one request per instance per round)")
PY
if command -v wrk >/dev/null; then
    echo "== hit throughput on one instance, one hot key, wrk -t1 -c64 -d5s"
    for port in "${ports[0]}" "$OFF_PORT"; do
        for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$port/catalog/hot"; done
        label=$([ "$port" = "$OFF_PORT" ] && echo "tier off (every hit from Redis)" || echo "coherent tier on")
        rate=$(wrk -t1 -c64 -d5s "http://127.0.0.1:$port/catalog/hot" | awk '/Requests\/sec/ { print $2 }')
        printf '  %-34s %10s req/s\n' "$label" "$rate"
    done
fi
