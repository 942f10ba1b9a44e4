import Foundation
import Synchronization
import GatewayRuntime
import GatewayTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Several gateway instances on one Redis and one `key_prefix` with `cache.cross_instance` on:
/// a cold key is fetched once for all of them (a lease in Redis, announcements on
/// `<prefix>fills`), and every failure of that scheme ends in an answer within `max_wait`.
final class CrossInstanceTests: GatewayTestCase {
    private var instances: [GatewayService] = []
    private var ports: [Int] { instances.map { $0.localAddress!.port } }

    override func tearDown() {
        shutDown(instances)
        instances = []
        super.tearDown()
    }

    private func yaml(upstreamTimeout: String = "5s", maxWait: String = "5s", redisTimeout: String = "200ms",
                      listen: String = "127.0.0.1:0") -> String {
        """
        listen: \(listen)
        server: { event_loops: 2, drain_timeout: 1s }
        upstream: { url: \(backend.baseURL), timeout: \(upstreamTimeout), connect_timeout: 1s, max_connections: 64 }
        redis: { url: redis://127.0.0.1:\(redis.port)/0, timeout: \(redisTimeout), key_prefix: "\(prefix)" }
        cache: { cross_instance: true, max_wait: \(maxWait) }
        routes:
          - { name: catalog, match: "/catalog/**", class: public, ttl: 5m }
          - name: resources
            match: "/users/{user}/resources"
            class: per_user
            identity: { header: Authorization }
            ttl: 5m
        """
    }

    /// Starts `n` in-process instances, each listening for announcements before it serves.
    private func startInstances(_ n: Int, upstreamTimeout: String = "5s", maxWait: String = "5s", redisTimeout: String = "200ms") throws {
        for _ in 0..<n {
            let instance = try launchService(yaml: yaml(upstreamTimeout: upstreamTimeout, maxWait: maxWait, redisTimeout: redisTimeout))
            instances.append(instance)
            XCTAssertTrue(waitUntil { instance.fillsSubscriber?.isSubscribed == true }, "never subscribed to the fills channel")
        }
    }

    /// `n` clients, dealt round-robin over `ports`, send their request at (nearly) the same moment.
    private func herd(_ n: Int, over ports: [Int], _ target: (Int) -> String,
                      headers: (Int) -> [String: String] = { _ in [:] }) throws -> [TestClient.Response] {
        let clients = try (0..<n).map { i in try TestClient(port: ports[i % ports.count], timeout: 15) }
        for (i, client) in clients.enumerated() {
            var request = "GET \(target(i)) HTTP/1.1\r\nHost: test\r\n"
            for (name, value) in headers(i) { request += "\(name): \(value)\r\n" }
            try client.send(request + "\r\n")
        }
        return try clients.map { try $0.readResponse() }
    }

    private func scrape(_ instance: GatewayService) throws -> PrometheusExposition {
        let done = expectation(description: "rendered")
        nonisolated(unsafe) var text = ""
        instance.gateway.prometheusText { rendered in
            text = rendered
            done.fulfill()
        }
        wait(for: [done], timeout: 10)
        return try PrometheusExposition(text)
    }

    private func leases(_ result: String) throws -> Double {
        try instances.map { try scrape($0).value("cachegateway_leases_total", ["result": result]) }.reduce(0, +)
    }

    func testAHerdSpreadOverThreeInstancesMakesOneBackendCallPerKey() throws {
        for k in 0..<5 { backend.setBehaviour(.delayed(0.5, .ok("key \(k)")), forPath: "/catalog/k\(k)") }
        // 300 clients on 6 loops of one process: under ThreadSanitizer a loop can take longer
        // than 200 ms to come back to its Redis answers, and a timed-out lease is no lease.
        try startInstances(3, redisTimeout: "2s")
        let responses = try herd(300, over: ports) { i in "/catalog/k\(i % 5)" }
        for (i, response) in responses.enumerated() {
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.text, "key \(i % 5)", "client \(i)")
        }
        for k in 0..<5 { XCTAssertEqual(backend.requestCount(forPath: "/catalog/k\(k)"), 1, "key \(k)") }
        let statuses = Dictionary(grouping: responses, by: \.cacheStatus).mapValues(\.count)
        XCTAssertEqual(statuses["CacheGateway; fwd=miss; stored"], 5, "one fill per key, on one instance: \(statuses)")
        XCTAssertEqual(try leases("acquired"), 5, "one lease per key across the instances")
        XCTAssertEqual(try leases("held_elsewhere"), 10, "the other two instances' leaders each found it taken once per key")
        XCTAssertGreaterThan(statuses["CacheGateway; fwd=miss; collapsed; detail=remote-fill"] ?? 0, 0, "\(statuses)")
        XCTAssertEqual(try redis.cli("--scan", "--pattern", prefix + "l:*"), [], "every lease given back")
    }

    func testAFailedFetchReachesWaitersOnOtherInstancesAtOnce() throws {
        // Lease TTL: the upstream timeout (10 s) and a second.
        backend.setBehaviour(.delayed(0.3, .closeMidBody(contentLength: 100, sentBytes: 10)), forPath: "/catalog/flaky")
        try startInstances(3, upstreamTimeout: "10s", maxWait: "20s")
        let started = Date()
        let responses = try herd(60, over: ports) { _ in "/catalog/flaky" }
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(responses.map(\.status), [Int](repeating: 502, count: 60))
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/flaky"), 1, "every instance shared the holder's failure")
        XCTAssertLessThan(elapsed, 5.5, "answered on the announcement, not at the lease's expiry (11 s)")
        XCTAssertGreaterThan(responses.filter { $0.cacheStatus.contains("remote-fill-failed") }.count, 0)
        XCTAssertEqual(try cacheKeys(), [])
    }

    func testWithRedisDownEachInstanceCoalescesItsOwnRequests() throws {
        backend.setBehaviour(.delayed(0.5, .ok("from upstream")), forPath: "/catalog/down")
        try startInstances(3)
        redis.stop()
        XCTAssertTrue(waitUntil { self.instances.allSatisfy { !$0.gateway.redisConnected } })
        let responses = try herd(60, over: ports) { _ in "/catalog/down" }
        XCTAssertEqual(responses.filter { $0.status == 200 && $0.text == "from upstream" }.count, 60)
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/down"), 3, "one fetch per instance: per-instance coalescing")
        XCTAssertEqual(try leases("unavailable"), 3)
        XCTAssertEqual(try leases("acquired"), 0)
    }

    func testPersonalAnswersNeverCrossInstancesOrUsers() throws {
        backend.setBehaviour(.perRequest { request in
            .delayed(0.3, .ok("for " + (request.header("Authorization") ?? "nobody")))
        }, forPath: "/users/u/resources")
        let counter = Counter()
        backend.setBehaviour(.perRequest { _ in
            let n = counter.next()
            return .delayed(0.3, .ok("session \(n)", headers: [("Set-Cookie", "session=\(n)")]))
        }, forPath: "/catalog/login")
        try startInstances(3)

        // Three users, each on every instance: one fill per user, each user's own body.
        let personal = try herd(60, over: ports, { _ in "/users/u/resources" }, headers: { i in ["Authorization": "user-\(i % 3)"] })
        for (i, response) in personal.enumerated() { XCTAssertEqual(response.text, "for user-\(i % 3)", "client \(i)") }
        XCTAssertEqual(backend.requestCount(forPath: "/users/u/resources"), 3, "coalesced per user across the instances")

        // A Set-Cookie answer is never stored nor handed on: every client gets a session of its own.
        let cookies = try herd(30, over: ports) { _ in "/catalog/login" }
        let sessions = cookies.compactMap { $0.header("Set-Cookie") }
        XCTAssertEqual(sessions.count, 30)
        XCTAssertEqual(Set(sessions).count, 30, "no session handed to another client: \(sessions)")
        for response in cookies { XCTAssertEqual(response.header("Set-Cookie"), "session=" + response.text.dropFirst("session ".count)) }
        XCTAssertEqual(try cacheKeys().count, 3, "only the three users' entries are stored")
    }

    /// The holder is a real `gateway` process, SIGKILLed while it fetches: its lease expires and
    /// one of the other instances fetches instead; every waiting client is answered within max_wait.
    func testTheLeaseHolderKilledMidFetchIsTakenOverWithinMaxWait() throws {
        // The holder's fetch outlasts the time the test needs to see everyone waiting; the
        // takeover's is short.
        let fetches = Counter()
        backend.setBehaviour(.perRequest { _ in
            fetches.next() == 1 ? .delayed(4, .ok("never sent")) : .delayed(0.3, .ok("filled"))
        }, forPath: "/catalog/orphan")
        // Lease TTL: 2 s upstream timeout and a second; max_wait 6 s.
        try startInstances(2, upstreamTimeout: "2s", maxWait: "6s")
        let port = try RedisServerProcess.freePort()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("holder-\(prefix.dropLast()).yaml").path
        try yaml(upstreamTimeout: "2s", maxWait: "6s", listen: "127.0.0.1:\(port)").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gateway")
        holder.arguments = ["serve", "--config", path, "--log-level", "error"]
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil { RedisServerProcess.accepts(port: port) }, "holder did not start")
        XCTAssertTrue(waitUntil { (try? self.redis.cli("PUBSUB", "NUMSUB", self.prefix + "fills"))?.last == "3" },
                      "every instance listens for announcements")

        let first = try TestClient(port: port, timeout: 15)
        try first.send("GET /catalog/orphan HTTP/1.1\r\nHost: test\r\n\r\n")
        XCTAssertTrue(waitUntil { self.backend.requestCount(forPath: "/catalog/orphan") == 1 }, "the holder fetches")
        XCTAssertEqual(try redis.cli("--scan", "--pattern", prefix + "l:*").count, 1, "under its lease")

        let started = Date()
        let clients = try (0..<40).map { i in try TestClient(port: ports[i % 2], timeout: 15) }
        for client in clients { try client.send("GET /catalog/orphan HTTP/1.1\r\nHost: test\r\n\r\n") }
        XCTAssertTrue(waitUntil { self.instances.allSatisfy { $0.gateway.remoteFillWaitCount == 1 } }, "both wait for the holder")
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()

        let responses = try clients.map { try $0.readResponse() }
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(responses.map(\.text), [String](repeating: "filled", count: 40))
        XCTAssertLessThan(elapsed, 6, "every client answered within max_wait")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/orphan"), 2, "the dead holder's fetch and one takeover")
        XCTAssertEqual(try leases("taken_over"), 1)
    }
}

/// Numbers handed out once each, from the backend's threads.
private final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int { value.withLock { $0 += 1; return $0 } }
}
