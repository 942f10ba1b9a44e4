import Dispatch
import Foundation
import GatewayCore
import GatewayRuntime
import GatewayTestSupport
import Logging
import XCTest

@testable import GatewayRedis

/// The coherent in-process tier across instances: several gateways on one redis-server, each
/// keeping hot entries in memory, each hearing every change in Redis through its tracking
/// connection (`CLIENT TRACKING … BCAST`).
final class CoherentTierTests: GatewayTestCase {
    private var instances: [GatewayService] = []

    override func tearDown() {
        shutDown(instances)
        instances = []
        super.tearDown()
    }

    /// `count` gateways, one event loop each (a request always meets the instance's one tier),
    /// sharing the key prefix; returns once each tracks.
    private func startInstances(_ count: Int, cache: String = "cache: { local_ttl: 5m }", extra: String = "") throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        for _ in 0..<count {
            let yaml = """
                listen: 127.0.0.1:0
                server: { event_loops: 1, drain_timeout: 1s }
                upstream: { url: \(backend.baseURL), timeout: 5s, connect_timeout: 1s }
                redis: { url: redis://127.0.0.1:\(redis.port)/0, timeout: 200ms, key_prefix: "\(prefix)" }
                \(cache)
                \(extra)
                \(GatewayTestCase.defaultRoutes)
                """
            let service = GatewayService(config: try Self.parseConfig(yaml, fileName: "coherent.yaml"), logger: logger)
            try service.start()
            instances.append(service)
        }
        XCTAssertTrue(waitUntil(timeout: 10) { self.instances.allSatisfy { $0.gateway.redisConnected && self.tracking($0) } })
    }

    private func tracking(_ instance: GatewayService) -> Bool { instance.trackingListener?.isSubscribed == true }

    private func status(_ target: String, on instance: GatewayService) throws -> String {
        try get(target, port: instance.localAddress!.port).cacheStatus
    }

    /// Reads `target` on every instance until each serves it from its tier (bounded: 5 s each;
    /// a fill's result is held a moment for late arrivals, which are answered from it).
    private func warm(_ target: String) throws {
        for instance in instances {
            XCTAssertTrue(waitUntil { (try? self.status(target, on: instance)) == "CacheGateway; hit; detail=local" },
                          "warmed on \(instance.localAddress!)")
        }
    }

    /// Polls every instance until none serves `target` from its tier, for at most `limit`
    /// seconds; returns how long that took, or nil.
    private func secondsUntilNoLocalCopy(_ target: String, since start: Date, limit: TimeInterval) throws -> TimeInterval? {
        var left = Set(instances.indices)
        var rounds = 0
        // Bounded: each round is a request per instance, until `limit` and a second more.
        while !left.isEmpty, Date().timeIntervalSince(start) < limit + 1 {
            rounds += 1
            for i in left where try status(target, on: instances[i]) != "CacheGateway; hit; detail=local" { left.remove(i) }
        }
        let elapsed = Date().timeIntervalSince(start)
        if !left.isEmpty || elapsed > 0.1 {
            print("\(target): \(left.count) instances still local after \(Int(elapsed * 1000)) ms, \(rounds) polling rounds")
        }
        return left.isEmpty && elapsed <= limit ? elapsed : nil
    }

    private func key(of target: String) throws -> String {
        let before = Set(try cacheKeys())
        _ = try status(target, on: instances[0])
        return try XCTUnwrap(Set(try cacheKeys()).subtracting(before).first, "\(target) was stored")
    }

    private func metrics(_ instance: GatewayService) throws -> PrometheusExposition {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var text = ""
        instance.gateway.prometheusText { rendered in
            text = rendered
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        return try PrometheusExposition(text)
    }

    private func rawRedis() throws -> BlockingRedisConnection {
        try BlockingRedisConnection.connect(RedisConfiguration(host: "127.0.0.1", port: redis.port), replyTimeout: .seconds(2)).get()
    }

    /// The issue's test. Five DELs, each evicted everywhere within a second (without tracking the
    /// copies would stay for `local_ttl`, 5m); their median within 100 ms. A median, because on
    /// a 2-core machine shared with builds a thread now and then waits for a CPU far longer
    /// than the mechanism takes (seen: 1 DEL in 50 at 50–180 ms in debug builds under load 5).
    func testADeleteInRedisEvictsEveryInstancesCopyWithin100ms() throws {
        try startInstances(3)
        let connection = try rawRedis()
        var windows: [TimeInterval] = []
        for n in 0..<5 {
            let target = "/catalog/hot\(n)"
            backend.setBehaviour(.ok("hot"), forPath: target)
            let key = try key(of: target)
            try warm(target)
            let start = Date()
            XCTAssertEqual(try connection.command([Array("DEL".utf8), Array(key.utf8)], timeout: .seconds(2)).get(), .integer(1))
            windows.append(try XCTUnwrap(try secondsUntilNoLocalCopy(target, since: start, limit: 1), "still served locally 1 s after the DEL"))
        }
        let median = windows.sorted()[windows.count / 2]
        XCTAssertLessThanOrEqual(median, 0.1, "DEL → every instance misses: \(windows)")
        print("staleness window (DEL → 3 instances miss their tier), 5 DELs: median \(String(format: "%.1f", median * 1000)) ms")
        for instance in instances {
            let metrics = try metrics(instance)
            XCTAssertEqual(metrics.value("cachegateway_local_tier_tracking"), 1)
            // Each fill's own SET, and each DEL (then a refill's SET, perhaps).
            XCTAssertGreaterThanOrEqual(metrics.value("cachegateway_local_tier_invalidations_total"), 10)
        }
    }

    func testAnOverwriteReplacesEveryInstancesCopy() throws {
        backend.setBehaviour(.ok("old"), forPath: "/catalog/o")
        backend.setBehaviour(.ok("new"), forPath: "/catalog/n")
        try startInstances(2)
        let old = try key(of: "/catalog/o")
        let new = try key(of: "/catalog/n")
        try warm("/catalog/o")
        // Another writer replaces the entry (what an instance storing a fresh copy does).
        XCTAssertEqual(try redis.cli("COPY", new, old, "REPLACE"), ["1"])
        for instance in instances {
            XCTAssertTrue(waitUntil(timeout: 1) { (try? self.get("/catalog/o", port: instance.localAddress!.port).text) == "new" })
        }
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/o"), 1, "served from Redis, not fetched again")
    }

    func testAnExpiryInRedisEvictsEveryInstancesCopy() throws {
        backend.setBehaviour(.ok("brief"), forPath: "/catalog/e")
        try startInstances(2)
        let key = try key(of: "/catalog/e")
        try warm("/catalog/e")
        XCTAssertEqual(try redis.cli("PEXPIRE", key, "20"), ["1"])
        // Redis expires keys in its background cycle (10 times a second) or on access.
        XCTAssertNotNil(try secondsUntilNoLocalCopy("/catalog/e", since: Date(), limit: 2))
    }

    /// A purge on one instance reaches the other's tier through Redis alone: the other listens
    /// on no invalidation channel.
    func testAPurgeThroughOneInstanceEvictsTheOthersCopy() throws {
        backend.setBehaviour(.ok("p"), forPath: "/catalog/p")
        let channel = prefix + "purges"
        try startInstances(1, extra: "invalidation: { channel: \"\(channel)\" }")
        try startInstances(1)
        XCTAssertTrue(waitUntil { self.instances[0].subscriber?.isSubscribed == true })
        _ = try key(of: "/catalog/p")
        try warm("/catalog/p")
        XCTAssertEqual(try redis.cli("PUBLISH", channel, "purge /catalog/p"), ["1"])
        XCTAssertNotNil(try secondsUntilNoLocalCopy("/catalog/p", since: Date(), limit: 1))
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/p"), 2, "fetched again after the purge")
    }

    func testLosingTheTrackingConnectionFlushesTheTierUntilItIsBack() throws {
        backend.setBehaviour(.ok("k"), forPath: "/catalog/k")
        try startInstances(2)
        _ = try key(of: "/catalog/k")
        try warm("/catalog/k")
        let before = instances.map { $0.trackingListener!.subscriptionCount }
        // Every pub/sub connection: each instance's tracking listener.
        _ = try redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        XCTAssertTrue(waitUntil(timeout: 10) {
            zip(self.instances, before).allSatisfy { $0.trackingListener!.subscriptionCount > $1 && self.tracking($0) }
        })
        for instance in instances {
            // Emptied while changes went unheard: read from Redis, then local again.
            XCTAssertEqual(try status("/catalog/k", on: instance), "CacheGateway; hit")
            XCTAssertEqual(try status("/catalog/k", on: instance), "CacheGateway; hit; detail=local")
        }
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/k"), 1)
        for instance in instances {
            let metrics = try metrics(instance)
            XCTAssertEqual(metrics.value("cachegateway_local_tier_flushes_total", ["reason": "lost"]), 1)
            XCTAssertEqual(metrics.value("cachegateway_local_tier_tracking"), 1, "tracking again")
        }
    }

    func testARedisRestartBypassesTheTierUntilTrackingIsBack() throws {
        backend.setBehaviour(.ok("r"), forPath: "/catalog/r")
        try startInstances(2)
        _ = try key(of: "/catalog/r")
        try warm("/catalog/r")
        redis.stop()
        XCTAssertTrue(waitUntil { self.instances.allSatisfy { !self.tracking($0) } })
        XCTAssertTrue(waitUntil { self.instances.allSatisfy { (try? self.metrics($0).value("cachegateway_local_tier_tracking")) == 0 } })
        for instance in instances {
            // Redis is away: from upstream, never the copy nobody can vouch for any more.
            XCTAssertNotEqual(try status("/catalog/r", on: instance), "CacheGateway; hit; detail=local")
        }
        try redis.start()
        XCTAssertTrue(waitUntil(timeout: 10) { self.instances.allSatisfy { $0.gateway.redisConnected && self.tracking($0) } })
        // The restarted Redis is empty: a fill, a hit from Redis, then the tier.
        try warm("/catalog/r")
    }

    /// A reload that moves Redis moves tracking with it: the tier empties, waits for the new
    /// listener, and then hears the new server's changes.
    func testTrackingFollowsAReloadToAnotherRedis() throws {
        let other = try RedisServerProcess()
        try other.start()
        defer { other.stop() }
        backend.setBehaviour(.ok("m"), forPath: "/catalog/m")
        try startInstances(1)
        let instance = instances[0]
        _ = try key(of: "/catalog/m")
        try warm("/catalog/m")
        let moved = instance.gateway.runningConfig
        var config = moved
        config.redis.url = GatewayConfig.RedisURL(host: "127.0.0.1", port: other.port, database: 0)
        XCTAssertTrue(instance.reload(config).redisURLChanged)
        XCTAssertTrue(waitUntil(timeout: 10) { self.tracking(instance) })
        XCTAssertNotEqual(try status("/catalog/m", on: instance), "CacheGateway; hit; detail=local", "emptied by the move")
        try warm("/catalog/m")
        let key = try XCTUnwrap(try other.cli("--scan", "--pattern", prefix + "e:*").first)
        XCTAssertEqual(try other.cli("DEL", key), ["1"])
        XCTAssertNotNil(try secondsUntilNoLocalCopy("/catalog/m", since: Date(), limit: 0.1), "the new Redis's DEL is heard")
    }

    /// Redis refuses tracking (here an ACL without `CLIENT`): with `local_ttl` in the file the
    /// tier runs TTL-only as before tracking existed; without it the tier stays off.
    func testWithTrackingRefusedTheTierFallsBackToItsTTLOrOff() throws {
        let user = "t\(UInt32.random(in: 0...UInt32.max))"
        XCTAssertEqual(try redis.cli("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-client"), ["OK"])
        defer { _ = try? redis.cli("ACL", "DELUSER", user) }
        backend.setBehaviour(.ok("f"), forPath: "/catalog/f")
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        for cache in ["cache: { local_ttl: 1m }", ""] {
            let yaml = """
                listen: 127.0.0.1:0
                server: { event_loops: 1, drain_timeout: 1s }
                upstream: { url: \(backend.baseURL), timeout: 5s }
                redis: { url: "redis://\(user):pw@127.0.0.1:\(redis.port)/0", timeout: 200ms, key_prefix: "\(prefix)\(cache.isEmpty ? "off" : "ttl"):" }
                \(cache)
                \(GatewayTestCase.defaultRoutes)
                """
            // Parsed as a deployment would be: the tier's defaults as shipped.
            let service = GatewayService(config: try GatewayConfig.parse(yaml: yaml, fileName: "refused.yaml"), logger: logger)
            try service.start()
            instances.append(service)
            XCTAssertTrue(waitUntil { service.gateway.redisConnected && service.trackingListener!.subscriptionCount == 0 })
            // The refusal is applied once the listener heard it; both loops of requests agree after that.
            XCTAssertTrue(waitUntil {
                let metrics = (try? self.get("/catalog/f", port: service.localAddress!.port).cacheStatus) ?? ""
                return cache.isEmpty ? metrics == "CacheGateway; hit" : metrics == "CacheGateway; hit; detail=local"
            }, cache.isEmpty ? "tier off" : "TTL-only tier")
            XCTAssertFalse(tracking(service))
            if cache.isEmpty {
                usleep(300_000)  // the listener has been refused a few times by now
                for _ in 0..<3 { XCTAssertEqual(try get("/catalog/f", port: service.localAddress!.port).cacheStatus, "CacheGateway; hit") }
            }
        }
    }

    /// The staleness window with many samples: `STALENESS_SAMPLES=200` (default 20) prints the
    /// median and p99 (see `Benchmarks/scripts/staleness-window.sh`).
    func testStalenessWindowSamples() throws {
        let samples = Int(ProcessInfo.processInfo.environment["STALENESS_SAMPLES"] ?? "") ?? 20
        let count = Int(ProcessInfo.processInfo.environment["STALENESS_INSTANCES"] ?? "") ?? 3
        for i in 0..<samples { backend.setBehaviour(.ok("s\(i)"), forPath: "/catalog/s\(i)") }
        try startInstances(count)
        let connection = try rawRedis()
        var windows: [Double] = []
        for i in 0..<samples {
            let target = "/catalog/s\(i)"
            let key = try key(of: target)
            try warm(target)
            let start = Date()
            _ = try connection.command([Array("DEL".utf8), Array(key.utf8)], timeout: .seconds(2)).get()
            let window = try XCTUnwrap(try secondsUntilNoLocalCopy(target, since: start, limit: 2), "sample \(i) over 2 s")
            windows.append(window * 1000)
        }
        windows.sort()
        let median = windows[windows.count / 2]
        let p99 = windows[min(windows.count - 1, Int((Double(windows.count) * 0.99).rounded(.up)) - 1)]
        print(String(format: "staleness window over %d DELs, %d instances: median %.2f ms, p99 %.2f ms, max %.2f ms",
                     samples, count, median, p99, windows.last ?? 0))
    }
}
