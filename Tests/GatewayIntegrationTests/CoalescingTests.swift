import Foundation
import GatewayTestSupport
import XCTest

final class CoalescingTests: GatewayTestCase {
    func testTwoHundredConcurrentMissesMakeOneBackendCall() throws {
        let body = String(repeating: "b", count: 10_000)
        backend.setBehaviour(.delayed(0.4, .ok(body)), forPath: "/catalog/hot")
        try startGateway()
        let responses = try burst(200) { _ in "/catalog/hot?page=1" }
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/hot"), 1)
        XCTAssertEqual(responses.filter { $0.status == 200 && $0.text == body }.count, 200, "every client gets the full body")
        let statuses = Dictionary(grouping: responses, by: \.cacheStatus).mapValues(\.count)
        XCTAssertEqual(statuses["CacheGateway; fwd=miss; stored"], 1, "\(statuses)")
        // The rest waited for the leader (or, arriving after the store, hit Redis).
        XCTAssertEqual((statuses["CacheGateway; fwd=miss; collapsed"] ?? 0) + (statuses["CacheGateway; hit"] ?? 0), 199, "\(statuses)")
        XCTAssertEqual(service!.gateway.stats.snapshot.misses, 1)
    }

    func testKeysSpreadOverEventLoopsEachMakeOneCall() throws {
        for k in 0..<5 { backend.setBehaviour(.delayed(0.3, .ok("key \(k)")), forPath: "/catalog/k\(k)") }
        try startGateway()
        // Connections are dealt round-robin over both event loops, so every key has waiters on each.
        let responses = try burst(200) { i in "/catalog/k\(i % 5)" }
        for (i, response) in responses.enumerated() {
            XCTAssertEqual(response.text, "key \(i % 5)")
        }
        for k in 0..<5 { XCTAssertEqual(backend.requestCount(forPath: "/catalog/k\(k)"), 1, "key \(k)") }
    }

    func testFailedLeaderFailsEveryWaiterAndTheNextRequestRetries() throws {
        backend.setBehaviour(.delayed(0.3, .closeMidBody(contentLength: 100, sentBytes: 10)), forPath: "/catalog/flaky")
        try startGateway()
        let responses = try burst(50) { _ in "/catalog/flaky" }
        XCTAssertEqual(responses.map(\.status), [Int](repeating: 502, count: 50))
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/flaky"), 1, "waiters share the leader's failure")
        XCTAssertEqual(try cacheKeys(), [], "a truncated response is never stored")

        backend.setBehaviour(.ok("recovered"), forPath: "/catalog/flaky")
        XCTAssertEqual(try get("/catalog/flaky").text, "recovered")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/flaky"), 2)
    }

    func testWaitersGiveUpAfterMaxWait() throws {
        backend.setBehaviour(.delayed(1.5, .ok("slow")), forPath: "/catalog/slow")
        try startGateway(routes: """
            routes:
              - { name: catalog, match: "/catalog/**", class: public, ttl: 1m, max_wait: 300ms }
            """)
        let responses = try burst(10) { _ in "/catalog/slow" }
        let byStatus = Dictionary(grouping: responses, by: \.status).mapValues(\.count)
        XCTAssertEqual(byStatus[200], 1, "the leader still gets its answer: \(byStatus)")
        XCTAssertEqual(byStatus[504], 9, "waiters stop waiting after max_wait: \(byStatus)")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/slow"), 1)
    }

    func testClientThatLeavesDoesNotCancelTheFlight() throws {
        backend.setBehaviour(.delayed(0.4, .ok("kept")), forPath: "/catalog/leave")
        try startGateway()
        do {
            // The leader's client disconnects right after asking.
            let leader = try TestClient(port: port)
            try leader.send("GET /catalog/leave HTTP/1.1\r\nHost: t\r\n\r\n")
            usleep(50_000)
        }
        let waiter = try get("/catalog/leave")
        XCTAssertEqual(waiter.text, "kept")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/leave"), 1)
        XCTAssertEqual(try get("/catalog/leave").cacheStatus, "CacheGateway; hit")
    }

    func testPersonalResponseIsNotSharedWithWaiters() throws {
        backend.setBehaviour(.delayed(0.3, .perRequest { request in
            .ok("for \(request.header("X-Client") ?? "?")", headers: [("Set-Cookie", "who=\(request.header("X-Client") ?? "?")")])
        }), forPath: "/catalog/personal")
        try startGateway(extra: "cache: { forward_headers: [X-Client] }")
        let clients = try (0..<5).map { _ in try TestClient(port: port, timeout: 10) }
        for (i, client) in clients.enumerated() {
            try client.send("GET /catalog/personal HTTP/1.1\r\nHost: t\r\nX-Client: c\(i)\r\n\r\n")
        }
        for (i, client) in clients.enumerated() {
            let response = try client.readResponse()
            XCTAssertEqual(response.text, "for c\(i)", "each waiter fetched its own answer")
            XCTAssertEqual(response.header("Set-Cookie"), "who=c\(i)")
        }
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/personal"), 5)
    }
}
