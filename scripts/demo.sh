#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine with the Swift toolchain: installs what is missing,
# builds, starts redis-server, the demo "slow monolith" and the gateway with gateway.yaml, and
# shows a miss, a hit, a coalesced burst and per-user separation. With a terminal it then keeps
# running until Ctrl-C; without one it stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}"

GATEWAY=127.0.0.1:8080      # listen in gateway.yaml
ADMIN=127.0.0.1:9901        # admin.listen in gateway.yaml
BACKEND_PORT=9000           # upstream.url in gateway.yaml
REDIS_PORT=6379             # redis.url in gateway.yaml
DELAY_MS=${DELAY_MS:-300}

echo "==> swift build -c release"
swift build -c release --product gateway >/dev/null
swift build -c release --product demo-monolith >/dev/null
BIN=$(swift build -c release --show-bin-path)

pids=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in ${GATEWAY##*:} ${ADMIN##*:} $BACKEND_PORT; do
    port_free "$port" || { echo "port $port on 127.0.0.1 is already in use: stop what listens there first"; exit 1; }
done
logs=$(mktemp -d)

wait_for() { # url, name
    for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "$2 did not come up; its log:"; cat "$logs/$2.log"; exit 1
}

if redis-cli -p $REDIS_PORT ping >/dev/null 2>&1; then
    echo "==> using the redis-server already on 127.0.0.1:$REDIS_PORT"
else
    echo "==> starting redis-server on 127.0.0.1:$REDIS_PORT"
    redis-server --bind 127.0.0.1 --port $REDIS_PORT --save "" --appendonly no >"$logs/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 50); do redis-cli -p $REDIS_PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

echo "==> starting the demo monolith on 127.0.0.1:$BACKEND_PORT (${DELAY_MS} ms per catalog call, twice that per user resource)"
"$BIN/demo-monolith" --port $BACKEND_PORT --delay "$DELAY_MS" >"$logs/demo-monolith.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$BACKEND_PORT/__stats" demo-monolith

echo "==> starting the gateway: $BIN/gateway serve --config gateway.yaml"
"$BIN/gateway" serve --config gateway.yaml >"$logs/gateway.log" 2>&1 &
pids+=($!)
wait_for "http://$GATEWAY/healthz" gateway
head -n 3 "$logs/gateway.log"

run=$RANDOM  # fresh keys on every run, so the first request is a real miss
show() { # label, curl args...
    local label=$1; shift
    curl -sS -o /dev/null -D "$logs/h" -w '%{http_code} %{time_total}\n' "$@" >"$logs/w"
    read -r code secs <"$logs/w"
    printf '  %-38s %s  %6.1f ms  %s\n' "$label" "$code" "$(awk -v s="$secs" 'BEGIN { print s * 1000 }')" \
        "$(grep -i '^cache-status' "$logs/h" | tr -d '\r')"
}

echo
echo "== public catalog route: a miss goes upstream once, then hits come from Redis"
show "GET /catalog/items?page=$run (miss)" "http://$GATEWAY/catalog/items?page=$run"
show "GET /catalog/items?page=$run (hit)" "http://$GATEWAY/catalog/items?page=$run"
show "... + &utm=x (stripped, same key)" "http://$GATEWAY/catalog/items?page=$run&utm=x"

echo
echo "== coalescing: 100 users ask for the same cold key at once"
curl -s -X POST "http://127.0.0.1:$BACKEND_PORT/__reset" >/dev/null
for i in $(seq 1 100); do
    curl -s -o /dev/null -D "$logs/burst.$i" "http://$GATEWAY/catalog/featured?page=$run" &
done
wait_all() { for j in $(jobs -p); do case " ${pids[*]} " in *" $j "*) ;; *) wait "$j" || true;; esac; done; }
wait_all
printf '  client answers by Cache-Status:\n'
cat "$logs"/burst.* | grep -i '^cache-status' | tr -d '\r' | sort | uniq -c | sed 's/^/    /'
printf '  backend calls for that key: '
curl -s "http://127.0.0.1:$BACKEND_PORT/__stats"

echo
echo "== per-user route: each user gets their own answer, cached per user"
show "alice, first time" -H "Authorization: Bearer alice-$run" "http://$GATEWAY/users/42/resources"
show "alice, again (hit)" -H "Authorization: Bearer alice-$run" "http://$GATEWAY/users/42/resources"
show "bob, same path (his own miss)" -H "Authorization: Bearer bob-$run" "http://$GATEWAY/users/42/resources"
printf '  bob sees: %s\n' "$(curl -s -H "Authorization: Bearer bob-$run" "http://$GATEWAY/users/42/resources" | cut -c1-60)"
show "no identity (passed through)" "http://$GATEWAY/users/42/resources"

echo
echo "== invalidation: the backend publishes a change, the next request goes upstream again"
show "alice, cached" -H "Authorization: Bearer alice-$run" "http://$GATEWAY/users/42/resources"
printf '  redis-cli PUBLISH monolith.events "purge /users/42/resources" -> %s subscriber\n' \
    "$(redis-cli -p $REDIS_PORT PUBLISH monolith.events "purge /users/42/resources")"
sleep 0.2
show "alice, after the purge" -H "Authorization: Bearer alice-$run" "http://$GATEWAY/users/42/resources"
show "alice, cached again" -H "Authorization: Bearer alice-$run" "http://$GATEWAY/users/42/resources"
event='{"purge": {"paths": ["/users/42/resources"]}}'
printf '  redis-cli XADD monolith:invalidations * event %s -> %s\n' "'$event'" \
    "$(redis-cli -p $REDIS_PORT XADD monolith:invalidations '*' event "$event")"
sleep 0.3
show "alice, after the stream event" -H "Authorization: Bearer alice-$run" "http://$GATEWAY/users/42/resources"

echo
echo "== gateway counters (admin listener): $(curl -s "http://$ADMIN/stats")"
echo "== status page: http://$ADMIN/ (readiness: $(curl -s "http://$ADMIN/readyz"))"
if [ -t 0 ]; then
    echo
    echo "The gateway is running on http://$GATEWAY (logs in $logs). Press Ctrl-C to stop everything this script started."
    wait "${pids[-1]}"
else
    echo "Stopping everything this script started."
fi
