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
