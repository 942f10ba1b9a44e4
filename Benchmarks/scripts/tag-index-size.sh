#!/usr/bin/env bash
# How big do tag indexes get? N stores (default 100,000) through a real gateway on a route whose
# entries carry a rotating tag (`item:{id}` over 10,000 ids) and one shared tag (`all`), with a
# 2 s TTL so that entries keep expiring and being stored again. Prints the tag-index keys, the
# shared tag's members and memory, during the run and after one TTL. Ports are picked by the
# kernel; every process it starts is stopped by pid. Usage: tag-index-size.sh [stores]
set -euo pipefail
cd "$(dirname "$0")/../.."
STORES=${1:-100000}
source Benchmarks/scripts/common.sh
REDIS_PORT=$(free_port); BACKEND_PORT=$(free_port); GW_PORT=$(free_port)
start_redis_and_backend "$REDIS_PORT" "$BACKEND_PORT"
cat >"$tmp/gateway.yaml" <<YAML
listen: 127.0.0.1:$GW_PORT
upstream: { url: "http://127.0.0.1:$BACKEND_PORT", max_connections: 32 }
redis: { url: "redis://127.0.0.1:$REDIS_PORT", key_prefix: "tags:" }
routes:
  - { name: items, match: "/catalog/items/{id}", class: public, ttl: 2s, tags: ["item:{id}", "all"] }
YAML
sleep 0.5
"$BIN/gateway" serve --config "$tmp/gateway.yaml" --log-level error >"$tmp/gateway.log" 2>&1 & pids+=($!)
sleep 1
cli() { redis-cli -p "$REDIS_PORT" "$@"; }
report() {
    local tags members memory
    tags=$(cli --scan --pattern 'tags:t:*' | wc -l)
    members=$(cli ZCARD tags:t:all)
    memory=$(cli MEMORY USAGE tags:t:all)
    printf '  %-28s tag indexes %6s   members of "all" %6s   its memory %8s bytes   used_memory %s\n' "$1" "$tags" "$members" "$memory" \
        "$(cli INFO memory | awk -F: '/^used_memory_human/ { print $2 }' | tr -d '\r')"
}
echo "== $STORES stores, 10,000 rotating ids, TTL 2 s"
start=$(date +%s.%N)
python3 - "$GW_PORT" "$STORES" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for i in range(n):
    conn.request("GET", f"/catalog/items/{i % 10000}?v={i // 10000}")
    r = conn.getresponse(); r.read()
    if r.status != 200: sys.exit(f"status {r.status} at {i}")
PY
echo "  $(python3 -c "print(f'{($(date +%s.%N) - $start):.1f} s')")"
report "right after the stores"
sleep 2.5
curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/catalog/items/1"
report "one TTL later, one more store"
