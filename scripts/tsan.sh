#!/usr/bin/env bash
# ThreadSanitizer over the concurrent parts: coalescing and the read-through path, the Redis
# client, the server, the upstream permit pool. Builds into .build-tsan (its own build folder),
# fails on any report (XCTest still prints "0 failures" then: the exit status tells).
# See Tests/tsan-suppressions.txt for the one class of reports suppressed, and why.
set -euo pipefail
cd "$(dirname "$0")/.."
export REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}"
FILTER='ReadinessSetTests|CoalescingTests|CrossInstanceTests|CoherentTierTests|ReloadTests|AccessLogTests|MetricsTests|AdminTests|RequestRecordTests|InvalidationEventDeliveryTests|TagAndPrefixPurgeTests|FreshnessTests|HardeningTests|StreamInvalidationTests|RedisStreamConsumerTests|RedisSubscriberTests|PurgeDuringFillTests|CrossUserPropertyTests|ReadThroughTests|PerUserTests|FailureTests|InvalidationTests|UpstreamConcurrencyTests|GatewayRedisTests|HTTPServerTests|SingleFlightTests|UpstreamPermitsTests|UpstreamConnectionTests'
# The suppressions name the files whose state sits behind a Synchronization.Mutex; a new one
# would report false races at random, so the list must follow the code.
for file in $(grep -rl "Mutex" Sources); do
    grep -qxF "race:*$file" Tests/tsan-suppressions.txt || {
        echo "!!! tsan: $file uses a Mutex but is not in Tests/tsan-suppressions.txt" >&2
        exit 1
    }
done
echo "==> swift build --build-tests --sanitize=thread"
swift build --build-tests --sanitize=thread --scratch-path .build-tsan
echo "==> swift test --sanitize=thread (concurrent suites)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
TSAN_OPTIONS="halt_on_error=0 exitcode=66 suppressions=$PWD/Tests/tsan-suppressions.txt" \
    swift test --skip-build --sanitize=thread --scratch-path .build-tsan --filter "$FILTER" >"$log" 2>&1 || status=$?
grep -E "Executed [0-9]+ tests" "$log" | tail -1
reports=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
if [ "$status" -ne 0 ] || [ "$reports" -ne 0 ]; then
    grep -E -A40 "WARNING: ThreadSanitizer|error:" "$log" | head -200 >&2
    echo "!!! tsan: $reports report(s), exit status $status" >&2
    exit 1
fi
echo "==> tsan: no reports"
