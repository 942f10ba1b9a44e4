import Dispatch
import Foundation
import GatewayTestSupport
import LoadGenerator
import XCTest

/// The generator against `TestHTTPBackend` on 127.0.0.1: counts on both sides agree, pacing and
/// latency are honest, and every run ends by itself.
final class LoadGeneratorTests: XCTestCase {
    private var backend: TestHTTPBackend!

    override func setUp() async throws {
        backend = try TestHTTPBackend()
    }

    override func tearDown() async throws {
        backend?.stop()
        backend = nil
    }

    private func spec(_ mode: LoadMode, duration: Duration = .seconds(10), maxRequests: Int? = nil,
                      timeout: Duration = .seconds(5), threads: Int = 1,
                      request: @escaping @Sendable (Int) -> LoadRequest) -> LoadSpec {
        LoadSpec(port: backend.port, mode: mode, duration: duration, maxRequests: maxRequests,
                 timeout: timeout, threads: threads, request: request)
    }

    // MARK: Closed loop

    func testClosedLoopSendsExactlyMaxRequests() throws {
        let body = String(repeating: "b", count: 321)
        backend.setBehaviour(.ok(body), forPath: "/a")
        backend.setBehaviour(.respond(status: 404, headers: [], body: Array("nope".utf8), framing: .contentLength), forPath: "/missing")
        let result = try LoadGenerator.run(spec(.closedLoop(connections: 8), maxRequests: 500) { i in
            LoadRequest(target: i % 5 == 0 ? "/missing?i=\(i)" : "/a?i=\(i)")
        })
        XCTAssertEqual(result.requests, 500)
        XCTAssertEqual(backend.totalRequests, 500)
        XCTAssertEqual(backend.requestCount(forPath: "/missing"), 100)
        XCTAssertEqual(result.statuses, [200: 400, 404: 100])
        XCTAssertEqual(result.bytes, 400 * 321 + 100 * 4)
        XCTAssertEqual(result.errors, 0)
        XCTAssertEqual(result.timeouts, 0)
        XCTAssertEqual(result.latency.count, 500)
        XCTAssertEqual(result.connectionsOpened, 8)
        XCTAssertEqual(backend.acceptedConnections, 8, "keep-alive: one connection each, reused")
        XCTAssertLessThanOrEqual(result.latency.min, result.latency.p50)
        XCTAssertLessThanOrEqual(result.latency.p999, result.latency.max)
        XCTAssertEqual(result.latency.distribution.last?.percentile, 100)
        XCTAssertEqual(result.latency.distribution.last?.micros, result.latency.max)
    }

    func testClosedLoopStopsAtTheDuration() throws {
        backend.setBehaviour(.delayed(0.01, .ok("slow")), forPath: "/slow")
        let started = Date()
        let result = try LoadGenerator.run(spec(.closedLoop(connections: 4), duration: .milliseconds(300)) { _ in
            LoadRequest(target: "/slow")
        })
        let wall = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(result.requests, 20)
        XCTAssertEqual(result.requests, backend.totalRequests, "requests in flight at the end are waited for and counted")
        XCTAssertEqual(result.elapsedSeconds, 0.3, accuracy: 0.15)
        XCTAssertLessThan(wall, 1.5)
        XCTAssertEqual(result.requestsPerSecond, Double(result.requests) / result.elapsedSeconds, accuracy: 0.01)
    }

    func testSeveralThreadsSendEachIndexOnce() throws {
        let seen = IndexLog()
        let result = try LoadGenerator.run(spec(.closedLoop(connections: 6), maxRequests: 300, threads: 2) { i in
            seen.add(i)
            return LoadRequest(target: "/p\(i % 3)")
        })
        XCTAssertEqual(result.requests, 300)
        XCTAssertEqual(seen.sorted, Array(0..<300))
        for p in 0..<3 { XCTAssertEqual(backend.requestCount(forPath: "/p\(p)"), 100) }
    }

    // MARK: Open loop

    func testOpenLoopKeepsTheSchedule() throws {
        let result = try LoadGenerator.run(spec(.openLoop(connections: 4, ratePerSecond: 400), duration: .milliseconds(500)) { _ in
            LoadRequest(target: "/r")
        })
        // The i-th request at i / 400 s, for i / 400 < 0.5: exactly 200, spread over the half second.
        XCTAssertEqual(result.requests, 200)
        XCTAssertEqual(backend.totalRequests, 200)
        XCTAssertEqual(result.elapsedSeconds, 0.5, accuracy: 0.2)
        XCTAssertGreaterThan(result.elapsedSeconds, 0.49)
        XCTAssertLessThan(result.latency.p50, 20_000, "an idle server answers at once: no lateness from the scheduler")
        XCTAssertEqual(result.errors + result.timeouts, 0)
    }

    /// Coordinated omission: the server stalls 300 ms once; every request scheduled during the
    /// stall has the wait in its latency, not only the few that were already on the wire.
    func testOpenLoopLatencyCountsFromTheScheduledTime() throws {
        let stall = Stall(afterRequests: 60, seconds: 0.3)
        backend.setBehaviour(.perRequest { _ in
            let wait = stall.arrive()
            return wait > 0 ? .delayed(wait, .ok("late")) : .ok("ok")
        }, forPath: "/r")
        let result = try LoadGenerator.run(spec(.openLoop(connections: 2, ratePerSecond: 200), duration: .seconds(1)) { _ in
            LoadRequest(target: "/r")
        })
        XCTAssertEqual(result.requests, 200)
        XCTAssertEqual(result.errors + result.timeouts, 0)
        // ~60 requests were scheduled during the stall, the k-th waiting ~(300 - 5k) ms. Measured
        // from the actual send, only the 8 on the wire would be late, and p90 would be ~1 ms.
        XCTAssertGreaterThanOrEqual(result.latency.p99, 250_000)
        XCTAssertGreaterThanOrEqual(result.latency.p90, 150_000)
        XCTAssertLessThan(result.latency.p50, 100_000)
        XCTAssertLessThanOrEqual(backend.maxOpenConnections, 8, "the pool grows to at most 4 × the connections")
        XCTAssertGreaterThan(backend.maxOpenConnections, 2, "the pool grew while the server stalled")
    }

    // MARK: Responses and connections

    func testChunkedBodiesAndCacheStatus() throws {
        let chunked = String(repeating: "c", count: 1000)
        backend.setBehaviour(.ok(chunked, headers: [("Cache-Status", "CacheGateway; hit")], framing: .chunked), forPath: "/chunked")
        backend.setBehaviour(.ok("stored!", headers: [("cache-status", "  CacheGateway; fwd=miss; stored ")]), forPath: "/length")
        backend.setBehaviour(.ok("plain"), forPath: "/plain")
        let paths = ["/chunked", "/length", "/plain"]
        let result = try LoadGenerator.run(spec(.closedLoop(connections: 3), maxRequests: 90) { i in
            LoadRequest(target: paths[i % 3])
        })
        XCTAssertEqual(result.requests, 90)
        XCTAssertEqual(result.errors, 0)
        XCTAssertEqual(result.cacheStatus, ["CacheGateway; hit": 30, "CacheGateway; fwd=miss; stored": 30])
        XCTAssertEqual(result.bytes, 30 * (1000 + 7 + 5), "chunked bodies count without their framing")
        XCTAssertEqual(backend.acceptedConnections, 3, "chunked responses end where they say: connections reused")
    }

    func testServerClosingConnectionsMeansReconnectsNotErrors() throws {
        backend.setBehaviour(.raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".utf8), close: true),
                             forPath: "/close-header")
        // Closes without saying so: the next request on that connection meets a closed socket.
        backend.setBehaviour(.raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8), close: true), forPath: "/silent-close")
        backend.setBehaviour(.ok("bye", framing: .closeDelimited), forPath: "/until-close")
        let paths = ["/close-header", "/silent-close", "/until-close"]
        let result = try LoadGenerator.run(spec(.closedLoop(connections: 4), maxRequests: 150) { i in
            LoadRequest(target: paths[i % 3])
        })
        XCTAssertEqual(result.requests, 150)
        XCTAssertEqual(result.errors, 0, "\(result.errorKinds)")
        XCTAssertEqual(result.timeouts, 0)
        XCTAssertEqual(result.bytes, 50 * 2 + 50 * 2 + 50 * 3)
        XCTAssertEqual(backend.totalRequests, 150, "no request was lost or sent twice")
        XCTAssertGreaterThanOrEqual(backend.acceptedConnections, 150)
        XCTAssertGreaterThanOrEqual(result.reconnects, 146)

        // The open loop too: its pool is refilled, and nothing is counted as an error.
        let open = try LoadGenerator.run(spec(.openLoop(connections: 2, ratePerSecond: 500), duration: .milliseconds(200)) { i in
            LoadRequest(target: paths[i % 3])
        })
        XCTAssertEqual(open.requests, 100)
        XCTAssertEqual(open.errors + open.timeouts, 0, "\(open.errorKinds)")
    }

    func testTimeoutWhenTheBackendNeverAnswers() throws {
        backend.setBehaviour(.neverAnswer, forPath: "/never")
        let started = Date()
        let result = try LoadGenerator.run(spec(.closedLoop(connections: 2), maxRequests: 4, timeout: .milliseconds(200)) { _ in
            LoadRequest(target: "/never")
        })
        XCTAssertEqual(result.timeouts, 4)
        XCTAssertEqual(result.requests, 0)
        XCTAssertEqual(result.errors, 0)
        XCTAssertEqual(backend.requestCount(forPath: "/never"), 4)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    func testRefusedConnectionsAreErrorsAndTheRunStillEnds() throws {
        let port = backend.port
        backend.stop()
        let result = try LoadGenerator.run(LoadSpec(port: port, mode: .closedLoop(connections: 2), duration: .seconds(5),
                                                    maxRequests: 6, request: LoadRequest(target: "/")))
        XCTAssertEqual(result.errors, 6)
        XCTAssertEqual(result.errorKinds, ["connect": 6])
        XCTAssertEqual(result.firstError, "connect: Connection refused")
        XCTAssertEqual(result.requests, 0)
        XCTAssertLessThan(result.elapsedSeconds, 1)
    }

    func testRequestStopEndsARunEarly() throws {
        backend.setBehaviour(.delayed(0.02, .ok("slow")), forPath: "/slow")
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { LoadGenerator.requestStop() }
        let started = Date()
        let result = try LoadGenerator.run(spec(.closedLoop(connections: 4), duration: .seconds(30)) { _ in
            LoadRequest(target: "/slow")
        })
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        XCTAssertGreaterThan(result.requests, 10, "what was measured before the stop is returned")
        XCTAssertEqual(result.elapsedSeconds, 0.3, accuracy: 0.2)
        // A stop asked for earlier does not stop the next run.
        let next = try LoadGenerator.run(spec(.closedLoop(connections: 1), maxRequests: 3) { _ in LoadRequest(target: "/x") })
        XCTAssertEqual(next.requests, 3)
    }

    // MARK: Herd

    func testBurstArrivesTogether() throws {
        // Each request is held until all 50 are in: they only succeed if they arrive together.
        let barrier = Barrier(count: 50)
        backend.setBehaviour(.perRequest { _ in
            barrier.arriveAndWait(timeout: 3) ? .ok("together") : .respond(status: 503, headers: [], body: [], framing: .contentLength)
        }, forPath: "/herd")
        let result = try LoadGenerator.burst(host: "127.0.0.1", port: backend.port, count: 50,
                                             request: LoadRequest(target: "/herd", headers: [("X-Herd", "1")]),
                                             timeout: .seconds(5))
        XCTAssertEqual(result.requests, 50)
        XCTAssertEqual(result.statuses, [200: 50])
        XCTAssertEqual(result.latency.count, 50)
        XCTAssertEqual(backend.requestCount(forPath: "/herd"), 50)
        XCTAssertGreaterThanOrEqual(backend.maxOpenConnections, 50)
        XCTAssertEqual(backend.lastRequest?.header("X-Herd"), "1")
        XCTAssertLessThan(result.latency.max, 2_000_000)
    }

    // MARK: Several servers

    func testTheConnectionsOfARunAreSpreadRoundRobin() {
        XCTAssertEqual((0..<7).map { LoadSpec.port(ofConnection: $0, among: [10, 20, 30]) }, [10, 20, 30, 10, 20, 30, 10])
        XCTAssertEqual((0..<3).map { LoadSpec.port(ofConnection: $0, among: [10]) }, [10, 10, 10])
        var spec = spec(.closedLoop(connections: 1)) { _ in LoadRequest(target: "/") }
        spec.otherPorts = [1, 2]
        XCTAssertEqual(spec.ports, [backend.port, 1, 2])
    }

    /// Two threads, three servers: each server gets its share of the connections, and every
    /// request is answered by one of them.
    func testARunSpreadsItsConnectionsOverSeveralServers() throws {
        let others = try (0..<2).map { _ in try TestHTTPBackend() }
        defer { for b in others { b.stop() } }
        for b in [backend!] + others { b.setBehaviour(.ok("x"), forPath: "/a") }
        var spec = spec(.closedLoop(connections: 6), maxRequests: 600, threads: 2) { _ in LoadRequest(target: "/a") }
        spec.otherPorts = others.map(\.port)
        let result = try LoadGenerator.run(spec)
        XCTAssertEqual(result.statuses, [200: 600])
        XCTAssertEqual(([backend!] + others).map(\.acceptedConnections), [2, 2, 2])
        XCTAssertEqual(([backend!] + others).map(\.totalRequests).reduce(0, +), 600)
        XCTAssertTrue(([backend!] + others).allSatisfy { $0.totalRequests > 0 })
    }

    func testABurstIsSpreadEvenlyOverSeveralServers() throws {
        let other = try TestHTTPBackend()
        defer { other.stop() }
        for b in [backend!, other] { b.setBehaviour(.ok("herd"), forPath: "/herd") }
        let result = try LoadGenerator.burst(host: "127.0.0.1", port: backend.port, otherPorts: [other.port], count: 31,
                                             request: LoadRequest(target: "/herd"), timeout: .seconds(5))
        XCTAssertEqual(result.statuses, [200: 31])
        XCTAssertEqual(backend.requestCount(forPath: "/herd"), 16)
        XCTAssertEqual(other.requestCount(forPath: "/herd"), 15)
    }

    func testBurstCountsWhatCouldNotConnect() throws {
        let port = backend.port
        backend.stop()
        let result = try LoadGenerator.burst(host: "127.0.0.1", port: port, count: 5, request: LoadRequest(target: "/"),
                                             timeout: .seconds(1))
        XCTAssertEqual(result.errors, 5)
        XCTAssertEqual(result.requests, 0)
    }

    func testInvalidSpecsAreRejected() {
        XCTAssertThrowsError(try LoadGenerator.run(spec(.closedLoop(connections: 0)) { _ in LoadRequest(target: "/") }))
        XCTAssertThrowsError(try LoadGenerator.run(spec(.openLoop(connections: 1, ratePerSecond: 0)) { _ in LoadRequest(target: "/") }))
        XCTAssertThrowsError(try LoadGenerator.run(LoadSpec(host: "no-such-host.invalid", port: 80, mode: .closedLoop(connections: 1),
                                                            duration: .seconds(1), request: LoadRequest(target: "/"))))
    }
}

// MARK: Helpers

/// Records the request indices asked for.
private final class IndexLog: @unchecked Sendable {
    private let lock = NSLock()
    private var indices: [Int] = []
    func add(_ i: Int) { lock.withLock { indices.append(i) } }
    var sorted: [Int] { lock.withLock { indices.sorted() } }
}

/// Once `afterRequests` have arrived, the server "stalls" for `seconds`: every request arriving
/// during the stall is held until it ends.
private final class Stall: @unchecked Sendable {
    private let lock = NSLock()
    private let afterRequests: Int
    private let seconds: TimeInterval
    private var arrived = 0
    private var until: Date?

    init(afterRequests: Int, seconds: TimeInterval) {
        self.afterRequests = afterRequests
        self.seconds = seconds
    }

    /// How long this request must wait.
    func arrive() -> TimeInterval {
        lock.withLock {
            arrived += 1
            if until == nil && arrived == afterRequests { until = Date().addingTimeInterval(seconds) }
            guard let until else { return 0 }
            return max(0, until.timeIntervalSinceNow)
        }
    }
}

/// Releases its waiters when `count` have arrived (or each after its timeout).
private final class Barrier: @unchecked Sendable {
    private let condition = NSCondition()
    private let count: Int
    private var arrived = 0

    init(count: Int) { self.count = count }

    /// Whether all had arrived before the timeout.
    func arriveAndWait(timeout: TimeInterval) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        arrived += 1
        if arrived >= count { condition.broadcast() }
        let deadline = Date().addingTimeInterval(timeout)
        while arrived < count {
            if !condition.wait(until: deadline) { break }
        }
        return arrived >= count
    }
}
