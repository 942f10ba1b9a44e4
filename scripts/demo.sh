#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine with the Swift toolchain: installs what is missing,
# builds, starts its own redis-server, the demo "slow monolith" and the gateway (gateway.yaml with
# the addresses it chose), and shows a miss, a hit, a coalesced burst, per-user separation and
# purges. Every process it starts listens on 127.0.0.1 on a port nobody else uses, with a temporary
# folder of its own: it never writes into a Redis or a backend it did not start, and two runs at the
# same time do not meet. With a terminal it then keeps running until Ctrl-C; without one it stops.
# On exit it stops the processes it started, by pid, and removes its folder.
#   DELAY_MS=300   the demo monolith's work per catalog call (per-user calls take twice as long)
#   BURST=100      simultaneous requests in the coalescing burst
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}"

DELAY_MS=${DELAY_MS:-300}
BURST=${BURST:-100}

work=$(mktemp -d "${TMPDIR:-/tmp}/cachegateway-demo.XXXXXX")
pids=()
cleanup() {
    local p i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; exit 130' INT
trap 'exit 143' TERM

fail() { # message, log to show
    echo "$1"
    [ -n "${2:-}" ] && [ -f "$2" ] && sed 's/^/    /' "$2"
    exit 1
}

# swift build shows its own progress line on a terminal; in a pipe or a CI log, one step line
# every few seconds (and every other line, such as errors, in full) says that it is working.
build_progress() {
    local last=-10 line
    while IFS= read -r line; do
        case $line in
            \[*/*\]*) if ((SECONDS - last >= 5)); then echo "    $line"; last=$SECONDS; fi ;;
            *) echo "    $line" ;;
        esac
    done
}
echo "==> swift build -c release (the first build takes a couple of minutes on 2 cores; later runs, seconds)"
if [ -t 1 ]; then
    swift build -c release
else
    swift build -c release 2>&1 | build_progress
fi
BIN=$(swift build -c release --show-bin-path)

# redis-server cannot pick its own port (--port 0 turns TCP off): try random ports below the
# ephemeral range (32768-60999 here) until one binds, and make sure the server that answers there
# is ours (its process_id), not one that was already listening.
REDIS_PORT=
for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 12000))
    redis-server --bind 127.0.0.1 --port "$port" --dir "$work" --save "" --appendonly no \
        >"$work/redis.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        if redis-cli -p "$port" INFO server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$pid"; then
            REDIS_PORT=$port
            break
        fi
        sleep 0.1
    done
    [ -n "$REDIS_PORT" ] && { pids+=("$pid"); break; }
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
[ -n "$REDIS_PORT" ] || fail "redis-server did not start on any of 20 ports; its last log:" "$work/redis.log"
echo "==> redis-server on 127.0.0.1:$REDIS_PORT (its own, data in $work)"

# The monolith and the gateway bind port 0 (the kernel picks a free one) and say which they got.
listening_port() { # log, pattern before the port, name, pid
    for _ in $(seq 1 100); do
        local port
        port=$(grep -o "$2[0-9]*" "$1" 2>/dev/null | head -n 1 | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && { echo "$port"; return 0; }
        kill -0 "$4" 2>/dev/null || break
        sleep 0.1
    done
    fail "$3 did not start; its log:" "$1" >&2
}

"$BIN/demo-monolith" --port 0 --delay "$DELAY_MS" >"$work/demo-monolith.log" 2>&1 &
pids+=($!)
BACKEND_PORT=$(listening_port "$work/demo-monolith.log" 'listening on 127\.0\.0\.1:' demo-monolith "${pids[-1]}")
BACKEND=http://127.0.0.1:$BACKEND_PORT
echo "==> demo monolith on $BACKEND (${DELAY_MS} ms per catalog call, twice that per user resource)"

# gateway.yaml as shipped, pointed at this run's monolith and Redis.
sed -e "s#^\(  url: \)http://127\.0\.0\.1:9000#\1$BACKEND#" \
    -e "s#^\(  url: \)redis://127\.0\.0\.1:6379/0#\1redis://127.0.0.1:$REDIS_PORT/0#" \
    -e "s#^\(  listen: \)127\.0\.0\.1:9901#\1127.0.0.1:0#" gateway.yaml >"$work/gateway.yaml"
grep -q "^  url: $BACKEND" "$work/gateway.yaml" && grep -q "^  url: redis://127.0.0.1:$REDIS_PORT/0" "$work/gateway.yaml" ||
    grep -q "^  listen: 127.0.0.1:0" "$work/gateway.yaml" ||
    fail "gateway.yaml no longer has upstream.url http://127.0.0.1:9000, redis.url redis://127.0.0.1:6379/0 and admin.listen 127.0.0.1:9901: update scripts/demo.sh"
"$BIN/gateway" serve --config "$work/gateway.yaml" --listen 127.0.0.1:0 >"$work/gateway.log" 2>&1 &
pids+=($!)
GATEWAY_PORT=$(listening_port "$work/gateway.log" 'listen=127\.0\.0\.1:' gateway "${pids[-1]}")
GATEWAY=http://127.0.0.1:$GATEWAY_PORT
ADMIN=http://127.0.0.1:$(listening_port "$work/gateway.log" 'admin=127\.0\.0\.1:' gateway "${pids[-1]}")
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$GATEWAY/healthz" 2>/dev/null && break; sleep 0.1; done
echo "==> gateway on $GATEWAY, admin listener on $ADMIN: gateway serve --config gateway.yaml (upstream.url, redis.url and admin.listen as above)"

show() { # label, curl args...
    local label=$1 code secs; shift
    curl -sS -o /dev/null -D "$work/h" -w '%{http_code} %{time_total}\n' "$@" >"$work/w"
    read -r code secs <"$work/w"
    printf '  %-38s %s  %6.1f ms  %s\n' "$label" "$code" "$(awk -v s="$secs" 'BEGIN { print s * 1000 }')" \
        "$(grep -i '^cache-status' "$work/h" | tr -d '\r')"
}

echo
echo "== public catalog route: a miss goes upstream once, then hits come from Redis (or from the in-process tier: detail=local)"
show "GET /catalog/items?page=1 (miss)" "$GATEWAY/catalog/items?page=1"
show "GET /catalog/items?page=1 (hit)" "$GATEWAY/catalog/items?page=1"
show "... + &utm=x (stripped, same key)" "$GATEWAY/catalog/items?page=1&utm=x"

echo
echo "== coalescing: $BURST users ask for the same cold key at once"
curl -s -X POST "$BACKEND/__reset" >/dev/null
# The benchmark's burst: it opens the connections first, then writes every request in one tight
# loop, so the requests really arrive together (curl in a shell loop would spread them over
# the 300 ms the first one waits).
"$BIN/cachegateway-bench" load --burst "$BURST" "$GATEWAY/catalog/featured?page=1" >"$work/burst.txt" 2>&1 ||
    fail "the burst failed:" "$work/burst.txt"
awk -v n="$BURST" '
    /^statuses/ { sub(/^statuses +/, ""); printf "  %d requests on %d connections, answered: %s\n", n, n, $0 }
    /^errors/ && ($2 != "0" || $4 != "0") { print "  " $0 }
    /^cache-status/ { sub(/^cache-status +/, ""); first = 1 }
    first && / × / { sub(/^ +/, ""); split($0, p, " × "); split(p[2], c, " "); counts[++k] = sprintf("    %5s  %s", c[1], p[1]) }
    /^body bytes/ { first = 0 }
    /^latency ms/ { getline; split($0, v, " ") }
    END {
        print "  by Cache-Status:"
        for (i = 1; i <= k; i++) print counts[i]
        printf "  answered in %.1f ms (median), %.1f ms at most: the one fetch, shared\n", v[2], v[6]
    }' "$work/burst.txt"
printf '  backend calls for that key: '
curl -s "$BACKEND/__stats"

echo
echo "== per-user route: each user gets their own answer, cached per user"
show "alice, first time" -H "Authorization: Bearer alice" "$GATEWAY/users/42/resources"
show "alice, again (hit)" -H "Authorization: Bearer alice" "$GATEWAY/users/42/resources"
show "bob, same path (his own miss)" -H "Authorization: Bearer bob" "$GATEWAY/users/42/resources"
printf '  bob sees: %s\n' "$(curl -s -H "Authorization: Bearer bob" "$GATEWAY/users/42/resources" | cut -c1-60)"
show "no identity (passed through)" "$GATEWAY/users/42/resources"

echo
echo "== invalidation: the backend publishes a change, the next request goes upstream again"
show "alice, cached" -H "Authorization: Bearer alice" "$GATEWAY/users/42/resources"
printf '  redis-cli PUBLISH monolith.events "purge /users/42/resources" -> %s subscriber\n' \
    "$(redis-cli -p "$REDIS_PORT" PUBLISH monolith.events "purge /users/42/resources")"
sleep 0.2
show "alice, after the purge" -H "Authorization: Bearer alice" "$GATEWAY/users/42/resources"
show "alice, cached again" -H "Authorization: Bearer alice" "$GATEWAY/users/42/resources"
event='{"purge": {"paths": ["/users/42/resources"]}}'
printf '  redis-cli XADD monolith:invalidations * event %s -> %s\n' "'$event'" \
    "$(redis-cli -p "$REDIS_PORT" XADD monolith:invalidations '*' event "$event")"
sleep 0.3
show "alice, after the stream event" -H "Authorization: Bearer alice" "$GATEWAY/users/42/resources"

echo
echo "== requests by route and cache outcome, from the admin listener's /metrics:"
curl -s "$ADMIN/metrics" | grep '^cachegateway_requests_total' | grep -v ' 0$' | sort | sed 's/^/    /'
sleep 0.3   # the access log is written in batches, at most 200 ms apart
echo "== the access log (the gateway's stdout; JSON, one line per request), its last two lines:"
grep '^{"time"' "$work/gateway.log" | tail -n 2 | sed 's/^/    /'
echo "== readiness: $(curl -s "$ADMIN/readyz")"
echo "== status page: $ADMIN/   metrics: $ADMIN/metrics"
if [ -t 0 ] && [ -t 1 ]; then
    bin=$BIN
    [ "$(cd .build/release 2>/dev/null && pwd -P)" = "$(cd "$BIN" && pwd -P)" ] && bin=.build/release
    cat <<EOF

The gateway runs on $GATEWAY (its log: $work/gateway.log). Try, from $(pwd):
  curl -si "$GATEWAY/catalog/items?page=2" | grep -i cache-status
  curl -s $ADMIN/metrics | grep cachegateway_requests_total
  open $ADMIN/ in a browser: the live status page
  redis-cli -p $REDIS_PORT PUBLISH monolith.events "purge-route catalog"
  $bin/cachegateway-bench load --burst 100 "$GATEWAY/catalog/featured?page=2"
  $bin/cachegateway-bench load --duration 5s "$GATEWAY/catalog/items?page=2"
Press Ctrl-C to stop the gateway, the monolith and redis-server (and remove $work).
EOF
    wait "${pids[-1]}" || true
    echo "the gateway exited; its log:"
    sed 's/^/    /' "$work/gateway.log" | tail -n 20
else
    echo "Stopping the gateway, the monolith and redis-server this script started."
fi
