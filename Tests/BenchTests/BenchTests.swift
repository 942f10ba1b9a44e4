import GatewayCore
import LoadGenerator
import XCTest
@testable import cachegateway_bench

/// The benchmark's pure parts: what it reads from Cache-Status, the configs it writes, the
/// workload it generates, how it merges and judges measurements.
final class BenchTests: XCTestCase {
    func testCacheStatusValuesOfTheGatewayAndNginx() {
        XCTAssertEqual(CacheOutcome("CacheGateway; hit"), .hit)
        XCTAssertEqual(CacheOutcome("CacheGateway; fwd=miss; stored"), .stored)
        XCTAssertEqual(CacheOutcome("CacheGateway; fwd=miss; collapsed"), .collapsed)
        XCTAssertEqual(CacheOutcome("CacheGateway; fwd=miss; detail=not-stored-status"), .miss)
        XCTAssertEqual(CacheOutcome("CacheGateway; fwd=miss; detail=redis-timeout"), .miss)
        XCTAssertEqual(CacheOutcome("CacheGateway; fwd=bypass; detail=pass"), .bypass)
        XCTAssertEqual(CacheOutcome("CacheGateway; fwd=method"), .bypass)
        XCTAssertEqual(CacheOutcome("CacheGateway; hit; detail=local"), .hit)
        XCTAssertEqual(CacheOutcome("CacheGateway; fwd=stale; detail=stale-while-revalidate"), .stale)
        XCTAssertEqual(CacheOutcome("CacheGateway; fwd=stale; fwd-status=502; detail=stale-if-error"), .stale)
        XCTAssertEqual(CacheOutcome("CacheGateway; fwd=stale; fwd-status=304; stored"), .stale)
        XCTAssertEqual(CacheOutcome("nginx; HIT"), .hit)
        XCTAssertEqual(CacheOutcome("nginx; UPDATING"), .stale)
        XCTAssertEqual(CacheOutcome("nginx; STALE"), .stale)
        XCTAssertEqual(CacheOutcome("nginx; REVALIDATED"), .stale)
        XCTAssertEqual(CacheOutcome("nginx; MISS"), .miss)
        XCTAssertEqual(CacheOutcome("nginx; EXPIRED"), .miss)
        XCTAssertEqual(CacheOutcome("nginx; BYPASS"), .bypass)
        XCTAssertEqual(CacheOutcome("nginx; "), .bypass)
    }

    func testStaleAnswersCountAsServedFromTheCache() {
        var outcome = LoadOutcome(LoadResult(requests: 10, statuses: [200: 10], cacheStatus: [
            "CacheGateway; hit": 5, "CacheGateway; fwd=stale; detail=stale-while-revalidate": 3,
            "CacheGateway; fwd=miss; stored": 1, "CacheGateway; fwd=miss; collapsed": 1]))
        XCTAssertEqual(outcome.hitRatio, 0.8)
        XCTAssertEqual(outcome.cachedRatio, 0.9)
        XCTAssertEqual(outcome.waitedForBackend, 2)
        outcome.cacheStatus = ["nginx; HIT": 6, "nginx; UPDATING": 3, "nginx; EXPIRED": 1]
        XCTAssertEqual(outcome.hitRatio, 0.9)
        XCTAssertEqual(outcome.waitedForBackend, 1)
    }

    func testWindowsOfDifferentKindsConcatenateAsAnUpperBound() {
        func load(_ n: Int, p99: Int, ok: Int) -> LoadOutcome {
            LoadOutcome(LoadResult(requests: n, statuses: [200: ok, 504: n - ok], elapsedSeconds: 1,
                                   latency: LatencySummary(count: n, min: 100, p50: p99 / 2, p90: p99, p99: p99, p999: p99, max: p99 + 1)))
        }
        let whole = LoadOutcome.concatenated([load(100, p99: 1_000, ok: 100), load(300, p99: 1_000_000, ok: 297), load(100, p99: 2_000, ok: 100)])
        XCTAssertEqual(whole.requests, 500)
        XCTAssertEqual(whole.ok, 497)
        XCTAssertEqual(whole.p99, 1_000_000, "the highest window's, never a mean that hides the outage")
        XCTAssertEqual(whole.maxLatency, 1_000_001)
    }

    func testExpiriesAreTheFirstNonHitAfterAStretchOfHits() {
        func sample(_ ms: Int, _ status: String?, latency: Int = 200) -> LoadSample {
            LoadSample(startMicros: ms * 1000, latencyMicros: latency, status: 200, cacheStatus: status)
        }
        let hit = "CacheGateway; hit", stale = "CacheGateway; fwd=stale; detail=stale-while-revalidate"
        let samples = [sample(0, hit), sample(1000, stale), sample(1020, stale), sample(1040, stale), sample(1060, hit),
                       sample(1500, hit), sample(2090, "nginx; UPDATING"), sample(2100, hit, latency: 50_000), sample(2300, hit), sample(2400, nil)]
        let moments = ExpiryScenario.expiries(samples, ttlSeconds: 1)
        XCTAssertEqual(moments, [1_000_000, 2_090_000])
        let near = ExpiryScenario.around(moments, samples)
        XCTAssertEqual(near.map(\.startMicros), [1_000_000, 1_020_000, 1_040_000, 1_060_000, 2_090_000, 2_100_000])
        let outcome = LoadOutcome(samples: near, seconds: 0.4)
        XCTAssertEqual(outcome.requests, 6)
        XCTAssertEqual(outcome.p50, 200)
        XCTAssertEqual(outcome.p99, 50_000, "nearest rank: the one slow answer of six is above p83")
        XCTAssertEqual(outcome.maxLatency, 50_000)
        XCTAssertEqual(outcome.count(.stale), 4)
        XCTAssertEqual(outcome.requestsPerSecond, 15)
        XCTAssertEqual(outcome.latency.curve.last?.percentile, 100)
    }

    func testCallsPerExpiryLeavesTheFillOut() {
        let run = ExpiryRun(target: .gateway, ttlSeconds: 2, loadSeconds: 20, spanSeconds: 26, expiriesUnderLoad: 10, backendCalls: 11,
                            allowedCalls: 14, staleAnswers: 900, waitedAnswers: 0, hitP99Micros: 400, hitMaxMicros: 3000)
        XCTAssertEqual(run.callsPerExpiry, 1.0)
    }

    func testTheGeneratedGatewayConfigIsValid() throws {
        let yaml = BenchContext.gatewayConfig(port: 20001, backendPort: 20002, redisPort: 20003, keyPrefix: "bench:x:hit-1-gateway:",
                                              workers: 2, tag: "hit-1-gateway")
        let config = try GatewayConfig.parse(yaml: yaml, fileName: "generated.yaml")
        XCTAssertEqual(config.routes.map(\.name), ["catalog", "user-resources", "everything-else"])
    }

    func testTheLocalSoakRunsInAllWithTheInProcessTierOn() throws {
        XCTAssertEqual(Scenarios.names, ["hit", "miss", "herd", "users", "local-soak", "shield", "expiry", "outage", "invalidate", "scale"])
        let yaml = BenchContext.gatewayConfig(port: 20001, backendPort: 20002, redisPort: 20003, keyPrefix: "bench:x:soak:",
                                              workers: 2, tag: "local-soak-1-gateway", localTTL: LocalSoakScenario.defaultLocalTTL)
        let config = try GatewayConfig.parse(yaml: yaml, fileName: "generated.yaml")
        XCTAssertEqual(config.cache.localTTL, .milliseconds(100))
    }

    func testTheNginxConfigCachesLikeTheGateway() {
        let text = NginxConfig(prefix: "/tmp/x", port: 20001, backendPort: 20002, workers: 2, catalogTTLSeconds: 300,
                               userTTLSeconds: 30, lockTimeoutSeconds: 5, upstreamConnections: 64).text
        for line in ["worker_processes 2;", "proxy_cache_lock on;", "proxy_cache_lock_timeout 5s;", "proxy_cache_valid 200 300s;",
                     "proxy_cache_valid 200 30s;", "server 127.0.0.1:20002;", "keepalive 64;", "listen 127.0.0.1:20001",
                     "proxy_cache_key \"user $uri $http_authorization\";", "add_header Cache-Status \"nginx; $upstream_cache_status\" always;"] {
            XCTAssertTrue(text.contains(line), "missing: \(line)")
        }
        XCTAssertFalse(text.contains("tcp_nopush on"))
    }

    func testTheFreshRouteHasTheSameStaleWindowsInBothConfigs() throws {
        let fresh = FreshRoute(ttlSeconds: 2, staleWhileRevalidateSeconds: 30, staleIfErrorSeconds: 600)
        let yaml = BenchContext.gatewayConfig(port: 20001, backendPort: 20002, redisPort: 20003, keyPrefix: "bench:x:expiry-1-gateway:",
                                              workers: 2, tag: "expiry-1-gateway", fresh: fresh)
        let config = try GatewayConfig.parse(yaml: yaml, fileName: "generated.yaml")
        XCTAssertEqual(config.routes.map(\.name), ["catalog", "user-resources", "fresh", "everything-else"])
        let route = try XCTUnwrap(config.routes.first { $0.name == "fresh" })
        XCTAssertEqual(route.cache?.freshness.staleWhileRevalidate, .seconds(30))
        XCTAssertEqual(route.cache?.freshness.staleIfError, .seconds(600))
        XCTAssertEqual(route.cache?.freshness.keep, .seconds(60))
        XCTAssertEqual(config.upstream.timeout, .seconds(10), "the default when the scenario does not set one")

        let nginx = NginxConfig(prefix: "/tmp/x", port: 20001, backendPort: 20002, workers: 2, catalogTTLSeconds: 300,
                                userTTLSeconds: 30, lockTimeoutSeconds: 5, upstreamConnections: 64, fresh: fresh).text
        for line in ["location /fresh/ {", "proxy_cache_valid 200 2s;", "proxy_cache_lock on;",
                     "proxy_cache_use_stale updating error timeout http_500 http_502 http_503 http_504;",
                     "proxy_cache_background_update on;", "proxy_cache_revalidate on;"] {
            XCTAssertTrue(nginx.contains(line), "missing: \(line)")
        }
        XCTAssertFalse(nginx.contains("proxy_read_timeout"))
    }

    func testTheOutageRouteServesStaleOnErrorsOnlyAndTimesOutAlike() throws {
        let fresh = FreshRoute(ttlSeconds: 1, staleWhileRevalidateSeconds: 0, staleIfErrorSeconds: 600, upstreamTimeoutSeconds: 1)
        let yaml = BenchContext.gatewayConfig(port: 20001, backendPort: 20002, redisPort: 20003, keyPrefix: "bench:x:outage-1-gateway:",
                                              workers: 2, tag: "outage-1-gateway", fresh: fresh)
        let config = try GatewayConfig.parse(yaml: yaml, fileName: "generated.yaml")
        XCTAssertEqual(config.upstream.timeout, .seconds(1))
        XCTAssertEqual(config.routes.first { $0.name == "fresh" }?.cache?.freshness.staleWhileRevalidate, .zero)
        let nginx = NginxConfig(prefix: "/tmp/x", port: 20001, backendPort: 20002, workers: 2, catalogTTLSeconds: 300,
                                userTTLSeconds: 30, lockTimeoutSeconds: 5, upstreamConnections: 64, fresh: fresh).text
        for line in ["proxy_cache_valid 200 1s;", "proxy_cache_use_stale updating error timeout http_500 http_502 http_503 http_504;",
                     "proxy_cache_background_update off;", "proxy_read_timeout 1s;", "proxy_connect_timeout 1s;"] {
            XCTAssertTrue(nginx.contains(line), "missing: \(line)")
        }
    }

    func testOtherScenariosConfigsHaveNoStaleWindows() {
        let nginx = NginxConfig(prefix: "/tmp/x", port: 20001, backendPort: 20002, workers: 2, catalogTTLSeconds: 300,
                                userTTLSeconds: 30, lockTimeoutSeconds: 5, upstreamConnections: 64).text
        XCTAssertFalse(nginx.contains("proxy_cache_use_stale"))
        XCTAssertFalse(BenchContext.gatewayConfig(port: 1, backendPort: 2, redisPort: 3, keyPrefix: "p:", workers: 2, tag: "t").contains("stale"))
    }

    func testZipfFavoursTheFirstRanks() {
        let zipf = Zipf(n: 1000, s: 1.0)
        var counts = [Int](repeating: 0, count: 1001)
        for i in 0..<20_000 { counts[zipf.rank(Mix.unit(UInt64(i)))] += 1 }
        XCTAssertEqual(counts[0], 0)
        XCTAssertGreaterThan(counts[1], counts[2])
        XCTAssertGreaterThan(counts[2], counts[10])
        // Rank 1 of 1,000 at s=1 gets 1/H(1000) ≈ 13 % of the draws.
        XCTAssertEqual(Double(counts[1]) / 20_000, 0.134, accuracy: 0.02)
        XCTAssertEqual(zipf.rank(0), 1)
        XCTAssertEqual(zipf.rank(0.999_999_9), 1000)
    }

    func testTheUsersMixIsTheSameForEveryTarget() {
        let a = UsersScenario.mix(salt: 42), b = UsersScenario.mix(salt: 42)
        var perUser = 0
        for i in 0..<5_000 {
            let ra = a.request(i), rb = b.request(i)
            XCTAssertEqual(ra.target, rb.target)
            if ra.target.hasPrefix("/users/") {
                perUser += 1
                let user = ra.target.split(separator: "/")[1]
                XCTAssertEqual(ra.headers.first?.1, "Bearer token-of-user-\(user)")
            } else {
                XCTAssertTrue(ra.target.hasPrefix("/catalog/items/"))
                XCTAssertTrue(ra.headers.isEmpty)
            }
        }
        XCTAssertEqual(Double(perUser) / 5_000, 0.2, accuracy: 0.02)
        XCTAssertLessThan(a.distinctKeys(5_000), 5_000)
        XCTAssertEqual(a.distinctKeys(5_000), a.distinctKeys([0..<2_500, 2_500..<5_000]))
    }

    func testMergedSlicesAddUpCountsAndThroughput() {
        let one = measurement(requests: 100, elapsed: 1, p50: 1000, statuses: [200: 100], cache: ["CacheGateway; hit": 100])
        let two = measurement(requests: 300, elapsed: 1, p50: 2000, statuses: [200: 290, 503: 10], cache: ["CacheGateway; hit": 300])
        let m = LoadOutcome.merged([one, two])
        XCTAssertEqual(m.requests, 400)
        XCTAssertEqual(m.requestsPerSecond, 200)
        XCTAssertEqual(m.statuses, [200: 390, 503: 10])
        XCTAssertEqual(m.count(.hit), 400)
        XCTAssertEqual(m.p50, 1750)  // weighted by requests
        XCTAssertEqual(m.serverErrors, 10)
        XCTAssertEqual(m.slices, 2)
    }

    func testOpenLoopThroughputCountsOnlyAnswersInTime() {
        var r = measurement(requests: 400, elapsed: 3, p50: 1000, statuses: [200: 400], cache: [:])
        r.timeouts = 600
        let run = TargetRun(target: .direct, result: r, backendCalls: 1000, offeredRate: 500, patienceSeconds: 2)
        XCTAssertEqual(run.throughput, 200)  // 1,000 due at 500/s = 2 s; 400 answered
    }

    func testDurations() throws {
        XCTAssertEqual(try parseDuration("50ms", option: "x"), 0.05, accuracy: 1e-9)
        XCTAssertEqual(try parseDuration("2.5s", option: "x"), 2.5)
        XCTAssertEqual(try parseDuration("5m", option: "x"), 300)
        XCTAssertEqual(try parseDuration("10", option: "x"), 10)
        XCTAssertThrowsError(try parseDuration("5x", option: "x"))
        XCTAssertThrowsError(try parseDuration("-1s", option: "x"))
    }

    func testTheTableEndsWithTheCountCIReads() {
        let report = RunReport(
            startedAt: "2026-01-01T00:00:00Z", finishedAt: "2026-01-01T00:01:00Z", command: "cachegateway-bench run",
            machine: MachineInfo(cores: 2, memoryGiB: 24, cpu: "cpu", kernel: "Linux"),
            settings: Settings(smoke: true, durationSeconds: 2.5, backendDelayMs: 50, herdSize: 200, herdRounds: 3, workers: 2,
                               targets: [.direct, .gateway], nginx: "nginx: off"),
            scenarios: [ScenarioReport(name: "herd", title: "Thundering herd", summary: "", cases: [], checks: [
                Check(scenario: "herd", target: .gateway, name: "exactly one backend call per key", passed: false, detail: "round 2: 2 backend calls"),
                Check(scenario: "herd", target: .direct, name: "the backend counted every request", passed: true, detail: "200"),
            ])],
            goals: [])
        let lines = TableReport.render(report).split(separator: "\n")
        XCTAssertEqual(lines.last, "Invariants: 1 passed, 1 failed")
        XCTAssertTrue(lines.contains("  ✗ herd/gateway: exactly one backend call per key: round 2: 2 backend calls"))
        XCTAssertTrue(HTMLReport.render(report).contains("1 of 2 invariants broken"))
    }

    func testExpiryAndOutageGoalsFromTheirRuns() {
        let hot = measurement(requests: 40_000, elapsed: 20, p50: 180, statuses: [200: 40_000],
                              cache: ["CacheGateway; hit": 39_000, "CacheGateway; fwd=stale; detail=stale-while-revalidate": 1_000])
        let hit = measurement(requests: 10_000, elapsed: 5, p50: 170, statuses: [200: 10_000], cache: ["CacheGateway; hit": 10_000])
        let expiry = ScenarioReport(
            name: "expiry", title: "Expiry under load", summary: "",
            cases: [CaseReport(name: "hot key, TTL 2 s", description: "", runs: [TargetRun(target: .gateway, result: hot, backendCalls: 11, offeredRate: 2000, foreignCores: 0.25)]),
                    CaseReport(name: "pure hit (baseline)", description: "", runs: [TargetRun(target: .gateway, result: hit, backendCalls: 0, offeredRate: 2000)])],
            checks: [],
            expiry: [ExpiryRun(target: .gateway, ttlSeconds: 2, loadSeconds: 20, spanSeconds: 50, expiriesUnderLoad: 10, backendCalls: 11,
                               allowedCalls: 26, staleAnswers: 1_000, waitedAnswers: 0, hitP99Micros: 170, hitMaxMicros: 340)])
        var during = measurement(requests: 1_990, elapsed: 10, p50: 500_000, statuses: [200: 1_990], cache: [:])
        during.timeouts = 10
        let outage = ScenarioReport(
            name: "outage", title: "Backend outage", summary: "",
            cases: [CaseReport(name: "during the outage", description: "", runs: [TargetRun(target: .gateway, result: during, backendCalls: 300, offeredRate: 200)]),
                    CaseReport(name: "whole run", description: "", runs: [TargetRun(target: .gateway, result: during, backendCalls: 300, offeredRate: 200)])],
            checks: [])
        let options = BenchOptions(smoke: false, duration: 10, backendDelayMs: 50, herdSize: 200, herdRounds: 5, targets: [.gateway], workers: 2,
                                   connections: 64, usersRate: 1000, shieldConcurrency: 8)
        let goals = Goals.evaluate([expiry, outage], options: options)
        XCTAssertEqual(goals.map(\.name), ["expiry: p99 vs a pure hit", "expiry: backend calls per expiry", "outage: answered 200 during the outage"])
        XCTAssertEqual(goals.map(\.met), [true, true, false])
        XCTAssertEqual(goals[2].measured, "99.5 % (1,990 of 2,000, p99 500 ms)")
        XCTAssertEqual(Goals.headlines(expiry, delayMs: 50).first,
                       "gateway: whole run p99 0.18 ms (pure hit 0.17 ms), max 0.36 ms (hit 0.34 ms); 0 answers waited for a fetch; 11 backend calls, 1.00 per expiry; foreign CPU 0.25 cores")
        let html = HTMLReport.render(RunReport(
            startedAt: "2026-01-01T00:00:00Z", finishedAt: "2026-01-01T00:01:00Z", command: "cachegateway-bench run expiry outage",
            machine: MachineInfo(cores: 2, memoryGiB: 24, cpu: "cpu", kernel: "Linux"),
            settings: Settings(smoke: false, durationSeconds: 10, backendDelayMs: 50, herdSize: 200, herdRounds: 5, workers: 2, targets: [.gateway], nginx: "nginx: off"),
            scenarios: [expiry, outage], goals: goals))
        XCTAssertTrue(html.contains("Backend calls per expiry"))
        XCTAssertTrue(html.contains("What the users got during the outage"))
    }

    private func measurement(requests: Int, elapsed: Double, p50: Double, statuses: [Int: Int], cache: [String: Int]) -> LoadOutcome {
        LoadOutcome(requests: requests, errors: 0, timeouts: 0, statuses: statuses, cacheStatus: cache, bytes: 0, elapsedSeconds: elapsed,
                    requestsPerSecond: Double(requests) / elapsed,
                    latency: .init(min: p50 / 2, p50: p50, p90: p50, p99: p50, p999: p50, max: p50 * 2, mean: p50, curve: []))
    }
}

/// `invalidate`'s pure parts: the config with a stream, the event, the RESP it speaks, its percentiles.
final class InvalidateBenchTests: XCTestCase {
    func testGeneratedConfigReadsTheStreamAsItsOwnInstance() throws {
        let yaml = BenchContext.gatewayConfig(port: 8080, backendPort: 9000, redisPort: 6379, keyPrefix: "bench:x:invalidate:", workers: 2,
                                              tag: "invalidate-0", fresh: FreshRoute(ttlSeconds: 300, staleWhileRevalidateSeconds: 30, staleIfErrorSeconds: 0),
                                              invalidation: (stream: "bench:x:invalidations", instance: "bench-x-0"))
        let config = try GatewayConfig.parse(yaml: yaml, fileName: "generated.yaml")
        XCTAssertEqual(config.invalidation?.stream, "bench:x:invalidations")
        XCTAssertEqual(config.invalidation?.instance, "bench-x-0")
        XCTAssertNil(config.invalidation?.channel)
        // Without it, no invalidation section: the other scenarios' configs are unchanged.
        let plain = BenchContext.gatewayConfig(port: 8080, backendPort: 9000, redisPort: 6379, keyPrefix: "p:", workers: 2, tag: "t")
        XCTAssertFalse(plain.contains("invalidation"))
    }

    func testTheEventIsOneTheGatewayParses() throws {
        let text = InvalidateScenario.event(path: "/fresh/invalidate/abc/soft", soft: true)
        XCTAssertEqual(text, #"{"purge": {"paths": ["/fresh/invalidate/abc/soft"]}, "soft": true}"#)
        XCTAssertEqual(try InvalidationEvent.parse(Array(text.utf8)).get(), InvalidationEvent(paths: ["/fresh/invalidate/abc/soft"], soft: true))
        XCTAssertEqual(try InvalidationEvent.parse(Array(InvalidateScenario.event(path: "/x", soft: false).utf8)).get().soft, false)
    }

    func testTheNewVersionIsRecognisedExactly() {
        let body = #"{"catalog": "/fresh/x", "version": 12, "served_at": 1, "padding": "xx"}"#
        XCTAssertTrue(InvalidateScenario.names(body, version: 12))
        XCTAssertFalse(InvalidateScenario.names(body, version: 1))
        XCTAssertFalse(InvalidateScenario.names(body, version: 2))
    }

    func testRESPEncodingAndReplies() throws {
        XCTAssertEqual(String(decoding: RedisControl.encode(["XADD", "s", "*", "event", "{}"]), as: UTF8.self),
                       "*5\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n$5\r\nevent\r\n$2\r\n{}\r\n")
        func parse(_ text: String) throws -> RedisControl.Reply? { try RedisControl.parse(Array(text.utf8)[...])?.0 }
        XCTAssertEqual(try parse("$15\r\n1700000000000-0\r\n"), .bulk("1700000000000-0"))
        XCTAssertEqual(try parse(":3\r\n"), .integer(3))
        XCTAssertEqual(try parse("-ERR no such key\r\n"), .error("ERR no such key"))
        XCTAssertEqual(try parse("$-1\r\n"), .bulk(nil))
        XCTAssertNil(try parse("$15\r\n1700000"), "incomplete: needs more bytes")
        XCTAssertNil(try parse("*2\r\n$4\r\nname\r\n"))
        let groups = try parse("*1\r\n*4\r\n$4\r\nname\r\n$15\r\ncachegateway:a0\r\n$9\r\nconsumers\r\n:1\r\n")
        XCTAssertEqual(groups?.strings, ["name", "cachegateway:a0", "consumers"])
        XCTAssertThrowsError(try parse("?what\r\n"))
    }

    func testNearestRankPercentiles() {
        let ten = (1...10).map(Double.init)
        XCTAssertEqual(Percentile.nearestRank(ten, 0.5), 5)
        XCTAssertEqual(Percentile.nearestRank(ten, 0.99), 10, "with 10 purges p99 is the slowest")
        XCTAssertEqual(Percentile.nearestRank([3], 0.5), 3)
        XCTAssertEqual(Percentile.nearestRank([], 0.99), 0)
        let run = InvalidateRun(mode: "soft", instances: 2, purges: 3, spacingSeconds: 1, staleWhileRevalidateSeconds: 30,
                                latencyMicros: [60_000, 55_000, 70_000], backendCalls: [2, 1, 2])
        XCTAssertEqual(run.p50Micros, 60_000)
        XCTAssertEqual(run.callsPerPurge, 5.0 / 3, accuracy: 1e-9)
    }

    func testTheGatewaysWaitHistogramIsReadFromItsPrometheusText() throws {
        let text = """
            # TYPE cachegateway_coalesced_wait_seconds histogram
            cachegateway_coalesced_wait_seconds_bucket{route="other",le="0.05"} 9
            cachegateway_coalesced_wait_seconds_bucket{route="catalog",le="0.1"} 10
            cachegateway_coalesced_wait_seconds_bucket{route="catalog",le="0.05"} 0
            cachegateway_coalesced_wait_seconds_bucket{route="catalog",le="0.25"} 100
            cachegateway_coalesced_wait_seconds_bucket{route="catalog",le="+Inf"} 100
            cachegateway_coalesced_wait_seconds_count{route="catalog"} 100
            """
        let histogram = try XCTUnwrap(ScrapedHistogram(text, name: "cachegateway_coalesced_wait_seconds", labels: ["route": "catalog"]))
        XCTAssertEqual(histogram.buckets.map(\.le), [0.05, 0.1, 0.25, .infinity])
        XCTAssertEqual(histogram.count, 100)
        // 50th of 100: 40 of the 90 in (0.1, 0.25]; 10th: all 10 of (0.05, 0.1].
        XCTAssertEqual(try XCTUnwrap(histogram.quantile(0.5)), 0.1 + 0.15 * 40 / 90, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(histogram.quantile(0.1)), 0.1, accuracy: 1e-12)
        XCTAssertEqual(histogram.bucket(containing: 0.5)?.lower, 0.1)
        XCTAssertEqual(histogram.bucket(containing: 0.5)?.upper, 0.25)
        XCTAssertNil(ScrapedHistogram(text, name: "cachegateway_coalesced_wait_seconds", labels: ["route": "missing"]))
        let overflow = try XCTUnwrap(ScrapedHistogram("x_bucket{le=\"1.0\"} 1\nx_bucket{le=\"+Inf\"} 4\n", name: "x", labels: [:]))
        XCTAssertEqual(overflow.quantile(0.99), 1.0, "past the last bound: the last finite bound, as histogram_quantile")
    }
}

/// `scale`'s pure parts: the instances' configs, its rows, goals and headlines.
final class ScaleBenchTests: XCTestCase {
    func testTheInstancesShareOnePrefixAndEachHasItsOwnID() throws {
        let configs = try (0..<3).map { i in
            try GatewayConfig.parse(yaml: BenchContext.gatewayConfig(
                port: 8080 + i, backendPort: 9000, redisPort: 6379, keyPrefix: "bench:x:scale-3-off:", workers: 2,
                tag: "scale-3-off-\(i)", localTTL: "30s", instanceID: "bench-x-3-off-\(i)", crossInstance: true), fileName: "generated.yaml")
        }
        XCTAssertEqual(Set(configs.map(\.redis.keyPrefix)), ["bench:x:scale-3-off:"])
        XCTAssertEqual(configs.map(\.instanceID.value), ["bench-x-3-off-0", "bench-x-3-off-1", "bench-x-3-off-2"])
        XCTAssertTrue(configs.allSatisfy { $0.instanceID.isExplicit && $0.cache.localTTL == .seconds(30) && $0.cache.crossInstance })
        let plain = BenchContext.gatewayConfig(port: 8080, backendPort: 9000, redisPort: 6379, keyPrefix: "p:", workers: 2, tag: "t")
        XCTAssertFalse(plain.contains("instance_id") || plain.contains("cross_instance"), "the other scenarios' configs are unchanged")
    }

    func testRowsGoalsAndHeadlines() {
        var one = ScaleRun(instances: 1, target: .gateway)
        one.herdCalls = [1, 1, 1]
        one.herdP99Micros = 56_000
        one.hitsTierOff = 50_000
        one.hitsTierOn = 80_000
        var three = ScaleRun(instances: 3, target: .gateway)
        three.herdCalls = [3, 2, 3]
        three.herdP99Micros = 57_500
        three.hitsTierOff = 45_000
        var nginx = ScaleRun(instances: 3, target: .nginx)
        nginx.herdCalls = [3, 3, 3]
        XCTAssertEqual(three.callsPerKey, 8.0 / 3)
        XCTAssertEqual(three.perInstance(three.hitsTierOff), 15_000)
        XCTAssertEqual(one.headline, "1 instance: gateway 1 backend call per key (1 1 1), herd p99 56.0 ms; "
            + "hits 50,000 req/s (50,000 per instance) tier off, 80,000 (80,000) tier on")
        XCTAssertEqual(three.headline, "3 instances: gateway 2.7 backend calls per key (3 2 3), herd p99 57.5 ms; "
            + "hits 45,000 req/s (15,000 per instance) tier off")
        let goals = Goals.scaleGoals([one, three, nginx])
        XCTAssertEqual(goals.map(\.name), ["scale, 1 instance: backend calls per key in a herd", "scale, 3 instances: backend calls per key in a herd"])
        XCTAssertEqual(goals.map(\.met), [true, false])
        XCTAssertEqual(goals[1].measured, "3, 2, 3 in 3 rounds (nginx: 3 per key)")
        let report = ScenarioReport(name: "scale", title: "t", summary: "s", cases: [], checks: [], scale: [one, three, nginx])
        XCTAssertEqual(Goals.headlines(report, delayMs: 50).count, 3)
        XCTAssertEqual(Goals.evaluate([report], options: BenchOptions(
            smoke: true, duration: 1, backendDelayMs: 50, herdSize: 200, herdRounds: 3, targets: [.gateway], workers: 2,
            connections: 64, usersRate: 1000, shieldConcurrency: 8)).count, 2, "goals, never checks: a broken goal does not fail the run")
    }

    func testTheBodyCheckMatchesTheDemoMonolithsAnswer() {
        let body = #"{"catalog": "/catalog/scale/abc-gateway-2-1", "version": 0, "served_at": 1, "padding": "xx"}"#
        XCTAssertTrue(body.contains(DemoAnswer.names("/catalog/scale/abc-gateway-2-1")))
        XCTAssertFalse(body.contains(DemoAnswer.names("/catalog/scale/abc-gateway-2-10")), "a longer key never passes for a shorter one")
        XCTAssertFalse(body.contains(DemoAnswer.names("/catalog/scale/abc-gateway-2")))
    }

    func testBurstCasesShowNoThroughput() {
        let run = TargetRun(target: .gateway, result: LoadOutcome(LoadResult(requests: 200, statuses: [200: 200], requestsPerSecond: 3000)), backendCalls: 1)
        let report = RunReport(startedAt: "2026-12-01T10:00:00Z", finishedAt: "2026-12-01T10:01:00Z", command: "run scale",
                               machine: MachineInfo(cores: 2, memoryGiB: 1, cpu: "x", kernel: "y"),
                               settings: Settings(smoke: true, durationSeconds: 1, backendDelayMs: 50, herdSize: 200, herdRounds: 3, workers: 2,
                                                  targets: [.gateway], nginx: "no"),
                               scenarios: [ScenarioReport(name: "scale", title: "t", summary: "s",
                                                          cases: [CaseReport(name: "2 instances: herd", description: "d", runs: [run], burst: true)],
                                                          checks: [])], goals: [])
        let row = TableReport.render(report).split(separator: "\n").first { $0.hasPrefix("scale") }
        XCTAssertNotNil(row)
        XCTAssertFalse(row?.contains("3,000") ?? true, String(row ?? ""))
    }
}

/// hit's rounds: the ratio from quiet pairs only, CPU per answer, noisy marking, the /proc arithmetic.
final class HitRoundsBenchTests: XCTestCase {

    private func round(_ target: Target, _ k: Int, rps: Double, cpuSeconds: Double = 1, foreign: Double = 0.02, threshold: Double = 0.10) -> HitRound {
        HitRound(target: target, round: k, requests: Int(rps), seconds: 1, requestsPerSecond: rps, targetCPUSeconds: cpuSeconds,
                 foreignCores: foreign, noisy: foreign > threshold)
    }

    func testTheRatioIsTheMedianOfTheQuietPairsWithItsSpread() throws {
        let rounds = HitRounds(rounds: [
            round(.gateway, 1, rps: 50_000), round(.nginx, 1, rps: 100_000),
            round(.gateway, 2, rps: 90_000, foreign: 0.6), round(.nginx, 2, rps: 60_000),  // a neighbour: 1.5×, left out
            round(.gateway, 3, rps: 60_000), round(.nginx, 3, rps: 100_000),
            round(.gateway, 4, rps: 70_000), round(.nginx, 4, rps: 100_000),
        ], noiseThresholdCores: 0.10)
        XCTAssertEqual(rounds.pairs.map(\.round), [1, 2, 3, 4])
        XCTAssertEqual(rounds.pairs.map(\.quiet), [true, false, true, true])
        let ratio = try XCTUnwrap(rounds.quietRatio)
        XCTAssertEqual(ratio.median, 0.6, accuracy: 1e-9)
        XCTAssertEqual(ratio.min, 0.5, accuracy: 1e-9)
        XCTAssertEqual(ratio.max, 0.7, accuracy: 1e-9)
        XCTAssertEqual(ratio.count, 3)
        XCTAssertEqual(rounds.ratioText, "0.60× (0.50×–0.70×, 3 quiet pairs of 4)")
        XCTAssertEqual(rounds.noisyRounds, 1)
        // Per target, only its quiet rounds: the gateway's noisy 90,000 is not in its median.
        XCTAssertEqual(rounds.requestsPerSecond["gateway"]?.median, 60_000)
        XCTAssertEqual(rounds.requestsPerSecond["gateway"]?.max, 70_000)
        XCTAssertEqual(rounds.requestsPerSecond["nginx"]?.median, 100_000)
        XCTAssertEqual(rounds.quietOnly["gateway"], true)
    }

    func testNoQuietRoundsMeansNoRatio() {
        let rounds = HitRounds(rounds: [
            round(.gateway, 1, rps: 60_000, foreign: 0.3), round(.nginx, 1, rps: 50_000),
            round(.gateway, 2, rps: 61_000), round(.nginx, 2, rps: 49_000, foreign: 0.11),
        ], noiseThresholdCores: 0.10)
        XCTAssertNil(rounds.quietRatio)
        XCTAssertEqual(rounds.ratioText, "no quiet rounds: no ratio (2 pairs, all noisy)")
        let c = CaseReport(name: "1 key", description: "d", runs: [
            TargetRun(target: .gateway, result: LoadOutcome(LoadResult(requests: 1, statuses: [200: 1], requestsPerSecond: 60_000)), backendCalls: 0),
            TargetRun(target: .nginx, result: LoadOutcome(LoadResult(requests: 1, statuses: [200: 1], requestsPerSecond: 50_000)), backendCalls: 0),
        ], hitRounds: rounds)
        XCTAssertEqual(TableReport.nginxRatio(c, rps: 60_000, nginx: 50_000), "no ratio", "never the 1.2× of the noisy rounds")
        let goals = Goals.evaluate([ScenarioReport(name: "hit", title: "t", summary: "s", cases: [c], checks: [])], options: BenchOptions(
            smoke: true, duration: 1, backendDelayMs: 50, herdSize: 200, herdRounds: 3, targets: [.gateway, .nginx], workers: 2,
            connections: 64, usersRate: 1000, shieldConcurrency: 8))
        XCTAssertEqual(goals.first?.measured, "no quiet rounds: no ratio (2 pairs, all noisy)")
        XCTAssertNil(goals.first?.met, "neither met nor missed")
        // A target whose every round was noisy still shows its figures, marked.
        XCTAssertEqual(rounds.quietOnly["nginx"], true)
        XCTAssertTrue(HitRounds(rounds: [round(.gateway, 1, rps: 1_000, foreign: 1)], noiseThresholdCores: 0.1)
            .targetText(.gateway)?.hasSuffix("every round noisy") ?? false)
    }

    func testWithoutNginxTheRoundsStillGiveASpread() throws {
        let rounds = HitRounds(rounds: [round(.gateway, 1, rps: 40_000, cpuSeconds: 0.88), round(.gateway, 2, rps: 44_000, cpuSeconds: 0.88),
                                        round(.gateway, 3, rps: 42_000, cpuSeconds: 0.84)], noiseThresholdCores: 0.10)
        XCTAssertFalse(rounds.hasPairs)
        XCTAssertNil(rounds.ratioText)
        let rps = try XCTUnwrap(rounds.requestsPerSecond["gateway"])
        XCTAssertEqual([rps.median, rps.min, rps.max], [42_000, 40_000, 44_000])
        // CPU per answer: 0.88 s over 40,000 answers is 22 µs; 0.84 s over 42,000 is 20 µs.
        let cpu = try XCTUnwrap(rounds.cpuMicrosPerRequest["gateway"])
        XCTAssertEqual(cpu.median, 20, accuracy: 1e-9)
        XCTAssertEqual(cpu.max, 22, accuracy: 1e-9)
        XCTAssertEqual(rounds.targetText(.gateway), "gateway 42,000 req/s (40,000–44,000), 20.0 µs CPU per answer (20.0 µs–22.0 µs)")
        XCTAssertEqual(Spread([3, 1, 4, 2])?.median, 2.5, "an even count: the mean of the middle two")
        XCTAssertNil(Spread([]))
    }

    func testARoundIsNoisyAboveTheThresholdOfForeignCPU() {
        // 100 ticks a second; 2 s apart. The machine was busy 300 ticks, the benchmark's tree 270
        // of them (the target 180): 30 ticks foreign = 0.15 cores.
        let before = CPUReading(at: 10, machineBusy: 1_000, bench: 500, target: 200)
        let after = CPUReading(at: 12, machineBusy: 1_300, bench: 770, target: 380)
        let cpu = after.since(before, ticksPerSecond: 100)
        XCTAssertEqual(cpu.targetSeconds, 1.8, accuracy: 1e-9)
        XCTAssertEqual(cpu.foreignCores, 0.15, accuracy: 1e-9)
        let result = LoadOutcome(LoadResult(requests: 90_000, statuses: [200: 90_000], elapsedSeconds: 2, requestsPerSecond: 45_000))
        let noisy = HitScenario.round(.gateway, 1, result, before: before, after: after, ticksPerSecond: 100, threshold: 0.10)
        XCTAssertTrue(noisy.noisy)
        XCTAssertEqual(noisy.cpuMicrosPerRequest ?? 0, 20, accuracy: 1e-9)
        XCTAssertFalse(HitScenario.round(.gateway, 1, result, before: before, after: after, ticksPerSecond: 100, threshold: 0.15).noisy,
                       "at the threshold is still quiet")
        // The benchmark's own tree busier than the machine (readings a tick apart): never negative.
        XCTAssertEqual(CPUReading(at: 11, machineBusy: 1_000, bench: 510, target: 200).since(before, ticksPerSecond: 100).foreignCores, 0)
        XCTAssertEqual(HitScenario.defaultNoiseThreshold, 0.10)
        XCTAssertEqual(HitScenario.roundSeconds(duration: 10, rounds: 3), 5.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(HitScenario.roundSeconds(duration: 2.5, rounds: 2), 0.625)
    }

    func testCPUAccountingFromProcSamples() throws {
        let stat = "cpu  4705 150 1120 16250 520 30 45 7 0 0\ncpu0 2000 75 560 8000 260 15 20 3 0 0\nintr 1 2 3\n"
        XCTAssertEqual(ProcStat.machineBusy(stat), 4705 + 150 + 1120 + 30 + 45 + 7, "idle and iowait are not busy")
        XCTAssertNil(ProcStat.machineBusy("intr 1 2 3\n"))
        // A command name with spaces and a parenthesis: fields count from the last ")".
        let worker = "4242 (nginx: worker (x)) S 4240 4240 4240 0 -1 4194560 300 0 0 0 1500 250 0 0 20 0 1 0 100 0 0"
        let parsed = try XCTUnwrap(ProcStat.process(worker))
        XCTAssertEqual(parsed.ppid, 4240)
        XCTAssertEqual(parsed.jiffies, 1750)
        XCTAssertNil(ProcStat.process("4242 (truncated"))
        // The bench (100) started a gateway (200), redis-server (300), nginx (400) with two workers
        // (401, 402, and a cache manager 403 below 401 for the sake of depth); 999 is a neighbour.
        let table: [Int32: (ppid: Int32, jiffies: UInt64)] = [
            100: (1, 50), 200: (100, 1_000), 300: (100, 200), 400: (100, 5), 401: (400, 700), 402: (400, 650), 403: (401, 1), 999: (1, 4_000),
        ]
        XCTAssertEqual(ProcStat.treeJiffies(table, roots: [200, 300]), 1_200, "the gateway and its redis-server")
        XCTAssertEqual(ProcStat.treeJiffies(table, roots: [400]), 1_356, "nginx's master and everything below it")
        XCTAssertEqual(ProcStat.treeJiffies(table, roots: [100]), 2_606, "the benchmark's tree, never the neighbour")
        XCTAssertEqual(ProcStat.treeJiffies(table, roots: []), 0)
    }

    func testTheProgressLineSaysTheRoundTheRateAndTheTimeLeft() {
        XCTAssertEqual(ProgressLine.text(scenario: "hit", label: "1 key, round 2/3 gateway", requests: 41_200, elapsed: 1, secondsLeft: 22.2),
                       "   … hit 1 key, round 2/3 gateway: 41,200 req/s so far, 23 s left")
        XCTAssertEqual(ProgressLine.text(scenario: "hit", label: "x", requests: 0, elapsed: 0, secondsLeft: 0), "   … hit x: 0.0 req/s so far, 0 s left")
    }

    func testTheRoundsSurviveTheJSONReport() throws {
        let rounds = HitRounds(rounds: [round(.gateway, 1, rps: 50_000), round(.nginx, 1, rps: 100_000)], noiseThresholdCores: 0.1)
        let c = CaseReport(name: "1 key", description: "d", runs: [], hitRounds: rounds)
        let back = try JSONDecoder().decode(CaseReport.self, from: JSONEncoder().encode(c))
        XCTAssertEqual(back.hitRounds, rounds)
        XCTAssertTrue(HTMLReport.hitRoundsTable(rounds).contains("0.50×"))
    }
}
