import Foundation
import GatewayCore
import GatewayRuntime
import GatewayTestSupport
import XCTest

/// A reload moves the upstream, Redis, the upstream cap and the in-process tier's sizes for new
/// requests, while requests in flight finish on what they started with and none fails.
final class ReloadTests: GatewayTestCase {
    private func yaml(
        upstream: String, redisPort: Int, maxConnections: Int = 16, cache: String = "", extra: String = ""
    ) -> String {
        """
        listen: 127.0.0.1:0
        server: { event_loops: 2, drain_timeout: 1s }
        upstream: { url: \(upstream), timeout: 5s, connect_timeout: 1s, max_connections: \(maxConnections) }
        redis: { url: redis://127.0.0.1:\(redisPort)/0, timeout: 200ms, key_prefix: "\(prefix)" }
        \(cache)
        \(extra)
        \(GatewayTestCase.defaultRoutes)
        """
    }

    @discardableResult
    private func reload(_ yaml: String) throws -> ReloadReport {
        // As `startGateway` does: the tests' gateways keep stdout quiet.
        return service!.reload(try Self.parseConfig(yaml, fileName: "reloaded.yaml"))
    }

    func testAReloadMovesTheUpstreamUnderLoadWithoutAFailedRequest() throws {
        let second = try TestHTTPBackend(defaultBehaviour: .ok("second"))
        defer { second.stop() }
        backend.setBehaviour(.delayed(0.5, .ok("first, slow")), forPath: "/catalog/slow")
        try startGateway(yaml: yaml(upstream: backend.baseURL, redisPort: redis.port))
        let load = Load(port: port) { i in "/catalog/load?page=\(i)" }  // misses and hits, both loops
        defer { load.stop() }

        // Fills in flight to the first backend when the reload comes.
        let inFlight = try (0..<4).map { i in
            let client = try TestClient(port: port, timeout: 10)
            try client.send("GET /catalog/slow?page=\(i) HTTP/1.1\r\nHost: test\r\n\r\n")
            return client
        }
        XCTAssertTrue(waitUntil { self.backend.requestCount(forPath: "/catalog/slow") == 4 })
        let report = try reload(yaml(upstream: second.baseURL, redisPort: redis.port))
        XCTAssertEqual(report.applied, ["routes", "upstream.url", "upstream.host"], "host follows the url")
        XCTAssertEqual(report.needsRestart, [])

        for client in inFlight {
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.text, "first, slow", "a fill in flight finishes on the upstream it started with")
        }
        let firstBefore = backend.totalRequests
        for i in 0..<6 {
            let response = try get("/catalog/after?page=\(i)")
            XCTAssertEqual(response.text, "second", "a new miss goes to the new upstream")
            XCTAssertEqual(response.cacheStatus, "CacheGateway; fwd=miss; stored")
        }
        XCTAssertEqual(try get("/pass/x").text, "second", "pass-through too")
        XCTAssertTrue(waitUntil { load.completed > 50 })
        load.stop()
        XCTAssertEqual(load.failures, [], "no request failed across the reload")
        XCTAssertEqual(backend.totalRequests, firstBefore, "nothing more reached the first backend")
        // The first backend's connections are closed once its client is idle.
        XCTAssertTrue(waitUntil { self.backend.openConnections == 0 }, "the replaced client was shut down")
    }

    func testAReloadMovesRedisToASecondServerAndTheSubscriberFollows() throws {
        let other = try RedisServerProcess()
        try other.start()
        defer { other.stop() }
        let channel = "purges-\(prefix)"
        let invalidation = "invalidation: { channel: \"\(channel)\" }"
        try startGateway(yaml: yaml(upstream: backend.baseURL, redisPort: redis.port, extra: invalidation))
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
        let firstSubscriber = service!.subscriber!
        XCTAssertEqual(try get("/catalog/before").cacheStatus, "CacheGateway; fwd=miss; stored")
        let load = Load(port: port) { i in "/catalog/load?page=\(i % 20)" }
        defer { load.stop() }
        XCTAssertTrue(waitUntil { load.completed > 20 })

        let report = try reload(yaml(upstream: backend.baseURL, redisPort: other.port, extra: invalidation))
        XCTAssertEqual(report.applied, ["routes", "redis.url", "invalidation (follows redis.url)"])
        XCTAssertTrue(report.redisURLChanged)
        XCTAssertTrue(service!.gateway.redisConnected, "the new connections were up before the switch")

        XCTAssertEqual(try get("/catalog/after").cacheStatus, "CacheGateway; fwd=miss; stored")
        let index = prefix + "i:/catalog/after"
        XCTAssertEqual(try other.cli("EXISTS", index), ["1"], "new entries land in the second Redis")
        XCTAssertEqual(try redis.cli("EXISTS", index), ["0"], "and not in the first")
        // A miss (stored, or collapsed onto the fill's result held for late arrivals).
        XCTAssertTrue(try get("/catalog/before").cacheStatus.hasPrefix("CacheGateway; fwd=miss"),
                      "the first Redis's entries are not read any more")
        XCTAssertEqual(try get("/catalog/after").cacheStatus, "CacheGateway; hit")

        XCTAssertTrue(waitUntil { self.service?.subscriber !== firstSubscriber && self.service?.subscriber?.isSubscribed == true })
        XCTAssertFalse(firstSubscriber.isSubscribed, "the old subscriber stopped")
        XCTAssertEqual(try other.cli("PUBLISH", channel, "purge /catalog/after"), ["1"], "listening on the second Redis")
        XCTAssertTrue(waitUntil { (try? self.get("/catalog/after").cacheStatus) == "CacheGateway; fwd=miss; stored" })

        XCTAssertTrue(waitUntil { load.completed > 200 })
        load.stop()
        XCTAssertEqual(load.failures, [], "no request failed across the move")
    }

    func testAReloadToOneUpstreamConnectionAllowsExactlyOneTransfer() throws {
        backend.setBehaviour(.delayed(0.15, .ok("slow")), forPath: "/slow")
        try startGateway(yaml: yaml(upstream: backend.baseURL, redisPort: redis.port, maxConnections: 16))
        XCTAssertEqual(try get("/slow?i=warm").status, 200)
        let report = try reload(yaml(upstream: backend.baseURL, redisPort: redis.port, maxConnections: 1))
        XCTAssertEqual(report.applied, ["routes", "upstream.max_connections"])
        let responses = try burst(12) { "/slow?i=\($0)" }
        XCTAssertEqual(responses.map(\.status), Array(repeating: 200, count: 12))
        XCTAssertEqual(backend.requestCount(forPath: "/slow"), 13)
        XCTAssertEqual(backend.maxConcurrentRequests, 1, "one transfer at a time across both loops")
    }

    /// Turning the in-process tier on serves from it (an entry deleted in Redis is still served);
    /// resizing it empties it (then the deletion shows).
    func testAReloadResizesTheLocalTier() throws {
        try startGateway(yaml: yaml(upstream: backend.baseURL, redisPort: redis.port))
        let on = "cache: { local_ttl: 1m, local_max_bytes: 1048576, local_max_entries: 100 }"
        let report = try reload(yaml(upstream: backend.baseURL, redisPort: redis.port, cache: on))
        XCTAssertEqual(report.applied, ["routes", "cache.local_ttl, local_max_bytes, local_max_entries (in-process tier emptied)"])
        // One connection is one loop: fill, then read back from Redis (which puts it in the tier).
        let client = try TestClient(port: port, timeout: 10)
        func get(_ target: String) throws -> TestClient.Response {
            try client.send("GET \(target) HTTP/1.1\r\nHost: test\r\n\r\n")
            return try client.readResponse()
        }
        XCTAssertEqual(try get("/catalog/a").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(try get("/catalog/a").cacheStatus, "CacheGateway; hit; detail=local", "the tier is on")
        for key in try cacheKeys() { _ = try redis.cli("DEL", key) }
        XCTAssertEqual(try get("/catalog/a").cacheStatus, "CacheGateway; hit; detail=local", "gone from Redis, still in the tier")

        let smaller = "cache: { local_ttl: 1m, local_max_bytes: 1048576, local_max_entries: 10 }"
        try reload(yaml(upstream: backend.baseURL, redisPort: redis.port, cache: smaller))
        // A miss (collapsed onto the first fill's result, held for late arrivals, or stored again).
        XCTAssertTrue(try get("/catalog/a").cacheStatus.hasPrefix("CacheGateway; fwd=miss"), "the tier was emptied")
        XCTAssertEqual(try get("/catalog/b").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(try get("/catalog/b").cacheStatus, "CacheGateway; hit; detail=local", "and is on with its new sizes")
    }

    func testSettingsThatTakeARestartAreReportedAndNotApplied() throws {
        try startGateway(yaml: yaml(upstream: backend.baseURL, redisPort: redis.port))
        let changed = yaml(upstream: backend.baseURL, redisPort: redis.port)
            .replacingOccurrences(of: "event_loops: 2, drain_timeout: 1s", with: "event_loops: 1, drain_timeout: 3s, max_headers: 50")
            .replacingOccurrences(of: "key_prefix: \"\(prefix)\"", with: "key_prefix: \"other:\"")
        let report = try reload(changed)
        XCTAssertEqual(report.needsRestart, ["server.event_loops", "server.max_headers", "redis.key_prefix"])
        XCTAssertEqual(report.applied, ["routes", "server.drain_timeout"])
        let running = service!.gateway.runningConfig
        XCTAssertEqual(running.server.eventLoops, 2)
        XCTAssertEqual(running.server.drainTimeout, .seconds(3))
        XCTAssertEqual(running.redis.keyPrefix, prefix)
        XCTAssertEqual(try get("/catalog/p").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertTrue(try cacheKeys().count == 1, "entries still under the running prefix")
    }

    /// The fills subscriber and the tracking listener are made at start: turning either on or
    /// off is reported, and the running value stays (a lease without its announcements, or a
    /// tier believed tracked without a listener, would be worse than either setting).
    func testCoalescingAcrossInstancesAndTierTrackingTakeARestart() throws {
        try startGateway(yaml: yaml(upstream: backend.baseURL, redisPort: redis.port))
        XCTAssertTrue(service!.gateway.runningConfig.cache.crossInstance)
        let report = try reload(yaml(upstream: backend.baseURL, redisPort: redis.port,
                                     cache: "cache: { cross_instance: false, local_tracking: false }"))
        XCTAssertEqual(report.needsRestart, ["cache.local_tracking", "cache.cross_instance"])
        let running = service!.gateway.runningConfig.cache
        XCTAssertTrue(running.crossInstance)
        XCTAssertTrue(running.localTracking)
    }
}

/// Requests from two threads on fresh connections (so both loops serve them) until stopped;
/// counts what was answered and records whatever was not a 200.
private final class Load: @unchecked Sendable {
    private let lock = NSLock()
    private var done = 0
    private var failed: [String] = []
    private var stopped = false
    private let group = DispatchGroup()

    init(port: Int, threads: Int = 2, target: @escaping @Sendable (Int) -> String) {
        for t in 0..<threads {
            group.enter()
            Thread { [self] in
                var i = t
                while !isStopped {
                    let path = target(i)
                    i += threads
                    let outcome: String?
                    do {
                        let client = try TestClient(port: port, timeout: 10)
                        try client.send("GET \(path) HTTP/1.1\r\nHost: test\r\n\r\n")
                        let response = try client.readResponse()
                        outcome = response.status == 200 ? nil : "\(path): \(response.status) \(response.cacheStatus)"
                    } catch {
                        outcome = "\(path): \(error)"
                    }
                    lock.withLock {
                        done += 1
                        if let outcome { failed.append(outcome) }
                    }
                }
                group.leave()
            }.start()
        }
    }

    private var isStopped: Bool { lock.withLock { stopped } }
    var completed: Int { lock.withLock { done } }
    var failures: [String] { lock.withLock { failed } }

    /// Stops and waits for the threads (each finishes its request, bounded by its 10 s timeout).
    func stop() {
        lock.withLock { stopped = true }
        _ = group.wait(timeout: .now() + 15)
    }
}
