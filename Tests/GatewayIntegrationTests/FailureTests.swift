import Foundation
import GatewayTestSupport
import XCTest

final class FailureTests: GatewayTestCase {
    func testRedisStoppedThenRestarted() throws {
        backend.setBehaviour(.ok("catalog"), forPath: "/catalog/r")
        try startGateway()
        try get("/catalog/r")
        XCTAssertEqual(try get("/catalog/r").cacheStatus, "CacheGateway; hit")
        // The fill's result is held for a moment after the write; this test wants Redis alone.
        XCTAssertTrue(waitUntil { self.service!.gateway.inFlightKeyCount == 0 })

        redis.stop()
        for _ in 0..<5 {
            let response = try get("/catalog/r")
            XCTAssertEqual(response.status, 200, "requests still succeed from upstream while Redis is down")
            XCTAssertEqual(response.text, "catalog")
            XCTAssertTrue(response.cacheStatus.contains("detail=redis-"), response.cacheStatus)
            // The answer went out before the (failing) write; until that fails, the result is
            // held for late arrivals. This test wants each request to reach the upstream.
            XCTAssertTrue(waitUntil { self.service!.gateway.inFlightKeyCount == 0 })
        }
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/r"), 6)

        try redis.start()
        // Within about a second the gateway reconnects and uses the cache again.
        XCTAssertTrue(waitUntil(timeout: 5) { (try? self.get("/catalog/r").cacheStatus) == "CacheGateway; hit" })
    }

    func testReadyzFlipsWhenRedisStopsAndComesBack() throws {
        try startGateway()
        // The upstream probe's first answer may come a moment after Redis's.
        XCTAssertTrue(waitUntil { (try? self.get("/readyz").status) == 200 })
        XCTAssertEqual(try get("/readyz").text, "{\"ready\":true,\"redis\":{\"ok\":true},\"upstream\":{\"ok\":true}}\n")
        XCTAssertEqual(try get("/healthz").status, 200)
        redis.stop()
        XCTAssertTrue(waitUntil { (try? self.get("/readyz").status) == 503 })
        XCTAssertTrue(try get("/readyz").text.hasPrefix(
            "{\"ready\":false,\"redis\":{\"loops_down\":[0,1],\"ok\":false,\"reason\":\"no Redis connection on event loop(s) 0, 1: "))
        XCTAssertEqual(try get("/healthz").status, 200, "alive, though not ready")
        try redis.start()
        XCTAssertTrue(waitUntil(timeout: 5) { (try? self.get("/readyz").status) == 200 })
    }

    func testRedisPausedCountsAsAMissWithinTheTimeout() throws {
        backend.setBehaviour(.ok("catalog"), forPath: "/catalog/p")
        try startGateway()
        redis.pause()
        defer { redis.resume() }
        let started = Date()
        let response = try get("/catalog/p")
        XCTAssertEqual(response.status, 200)
        XCTAssertTrue(response.cacheStatus.contains("detail=redis-timeout"), response.cacheStatus)
        // redis.timeout is 200 ms; generous bound for a shared machine.
        XCTAssertLessThan(Date().timeIntervalSince(started), 3)
    }

    func testUpstreamClosingMidBodyGives502AndStoresNothing() throws {
        backend.setBehaviour(.closeMidBody(contentLength: 1000, sentBytes: 100), forPath: "/catalog/cut")
        backend.setBehaviour(.chunkedCutShort, forPath: "/catalog/chunks")
        backend.setBehaviour(.closeMidHeaders, forPath: "/catalog/heads")
        try startGateway()
        for path in ["/catalog/cut", "/catalog/chunks", "/catalog/heads"] {
            XCTAssertEqual(try get(path).status, 502, path)
        }
        XCTAssertEqual(try cacheKeys(), [])
    }

    func testCloseDelimitedResponseIsServedButNotStored() throws {
        backend.setBehaviour(.ok("until close", framing: .closeDelimited), forPath: "/catalog/close")
        try startGateway()
        let response = try get("/catalog/close")
        XCTAssertEqual(response.text, "until close")
        XCTAssertEqual(response.cacheStatus, "CacheGateway; fwd=miss; detail=not-stored-unframed")
        XCTAssertEqual(try cacheKeys(), [])
    }

    func testUpstreamTimeoutGives504() throws {
        backend.setBehaviour(.neverAnswer, forPath: "/catalog/never")
        try startGateway(upstreamTimeout: "300ms")
        let response = try get("/catalog/never")
        XCTAssertEqual(response.status, 504)
        XCTAssertEqual(try cacheKeys(), [])
    }

    func testUpstreamDownGives502AndGatewayKeepsServing() throws {
        try startGateway()
        backend.stop()
        XCTAssertEqual(try get("/catalog/x").status, 502)
        XCTAssertEqual(try get("/healthz").status, 200)
    }
}
