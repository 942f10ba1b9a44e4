import Foundation
import GatewayTestSupport
import XCTest

/// The backend announces changes on a Redis channel; the gateway drops the affected entries.
final class InvalidationTests: GatewayTestCase {
    private var channel: String { "events-" + prefix }

    private func startWithInvalidation() throws {
        backend.setBehaviour(.perRequest { request in
            .ok("\(request.target) for \(request.header("Authorization") ?? "anyone")")
        }, forPath: "/catalog/p")
        backend.setBehaviour(.perRequest { request in
            .ok("resources for \(request.header("Authorization") ?? "anyone")")
        }, forPath: "/users/1/resources")
        try startGateway(extra: "invalidation: { channel: \"\(channel)\" }")
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
    }

    private func publish(_ message: String) throws {
        XCTAssertEqual(try redis.cli("PUBLISH", channel, message), ["1"], "the gateway is listening")
    }

    func testPurgePathRemovesEveryVariantAndEveryUser() throws {
        try startWithInvalidation()
        try get("/catalog/p?page=1")
        try get("/catalog/p?page=2")
        try get("/users/1/resources", headers: ["Authorization": "Bearer a"])
        try get("/users/1/resources", headers: ["Authorization": "Bearer b"])
        XCTAssertEqual(try cacheKeys().filter { $0.contains(":e:") }.count, 4)

        try publish("purge /catalog/p")
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().filter { $0.contains(":e:") }.count) == 2 })
        XCTAssertEqual(try get("/catalog/p?page=1").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(try get("/catalog/p?page=2").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/p"), 4)
        XCTAssertEqual(try get("/users/1/resources", headers: ["Authorization": "Bearer a"]).cacheStatus, "CacheGateway; hit",
                       "other paths are untouched")

        try publish("purge /users/1/resources")
        XCTAssertTrue(waitUntil {
            (try? self.get("/users/1/resources", headers: ["Authorization": "Bearer b"]).cacheStatus) == "CacheGateway; fwd=miss; stored"
        })
        XCTAssertEqual(try get("/users/1/resources", headers: ["Authorization": "Bearer a"]).text, "resources for Bearer a")
        XCTAssertEqual(backend.requestCount(forPath: "/users/1/resources"), 4)
    }

    func testPurgeRouteRemovesTheWholeRouteOnly() throws {
        try startWithInvalidation()
        for page in 1...30 { try get("/catalog/p?page=\(page)") }
        try get("/users/1/resources", headers: ["Authorization": "Bearer a"])
        try publish("purge-route catalog")
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().filter { $0.contains(":catalog:") }.count) == 0 })
        XCTAssertEqual(try get("/users/1/resources", headers: ["Authorization": "Bearer a"]).cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/catalog/p?page=7").cacheStatus, "CacheGateway; fwd=miss; stored")
    }

    func testNonsenseMessagesAreIgnored() throws {
        try startWithInvalidation()
        try get("/catalog/p?page=1")
        for message in ["", "purge", "drop everything", "purge-route no-such-route", "purge-route rest"] {
            try publish(message)
        }
        XCTAssertEqual(try get("/catalog/p?page=1").cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/healthz").status, 200)
    }
}

/// A purge that arrives while a fill of the same path is in flight: the fill's answer predates
/// the change, so it must not be stored.
final class PurgeDuringFillTests: GatewayTestCase {
    func testAPurgeDuringAFillKeepsThePreChangeVersionOutOfTheCache() throws {
        let channel = "events-" + prefix
        let version = VersionCounter()
        backend.setBehaviour(.perRequest { _ in .delayed(0.5, .ok("v\(version.value)")) }, forPath: "/catalog/f")
        try startGateway(extra: "invalidation: { channel: \"\(channel)\" }")
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
        let filling = try TestClient(port: port, timeout: 10)
        try filling.send("GET /catalog/f HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertTrue(waitUntil { self.backend.requestCount(forPath: "/catalog/f") == 1 })
        // The data changes and the monolith says so, while the fill is still waiting for v0.
        version.bump()
        XCTAssertEqual(try redis.cli("PUBLISH", channel, "purge /catalog/f"), ["1"])
        Thread.sleep(forTimeInterval: 0.1)  // let the purge reach the gateway before the fill ends
        let first = try filling.readResponse()
        XCTAssertEqual(first.text, "v0", "who asked before the change gets what was fetched")
        XCTAssertEqual(first.cacheStatus, "CacheGateway; fwd=miss; detail=purged-while-fetching")
        let next = try get("/catalog/f")
        XCTAssertEqual(next.text, "v1", "the pre-change version was not stored")
        XCTAssertEqual(next.cacheStatus, "CacheGateway; fwd=miss; stored")
    }
}

private final class VersionCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func bump() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}
