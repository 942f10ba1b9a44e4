import Foundation
import GatewayTestSupport
import XCTest

final class ReadThroughTests: GatewayTestCase {
    func testMissThenHitNeverReachesTheBackendAgain() throws {
        backend.setBehaviour(.ok("{\"items\": [1, 2, 3]}", headers: [("Content-Type", "application/json"), ("ETag", "\"v1\"")]),
                             forPath: "/catalog/items")
        try startGateway()
        let miss = try get("/catalog/items?page=1")
        XCTAssertEqual(miss.status, 200)
        XCTAssertEqual(miss.cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/items"), 1)

        let hit = try get("/catalog/items?page=1")
        XCTAssertEqual(hit.cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(hit.status, miss.status)
        XCTAssertEqual(hit.body, miss.body)
        XCTAssertEqual(hit.header("Content-Type"), "application/json")
        XCTAssertEqual(hit.header("ETag"), "\"v1\"")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/items"), 1, "a hit must not reach the backend")

        // Age grows with the entry's time in the cache.
        Thread.sleep(forTimeInterval: 1.1)
        let later = try get("/catalog/items?page=1")
        XCTAssertGreaterThanOrEqual(Int(later.header("Age") ?? "") ?? -1, 1)
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/items"), 1)
    }

    func testConditionalRequestGets304FromTheCache() throws {
        backend.setBehaviour(.ok("versioned", headers: [("ETag", "W/\"v7\"")]), forPath: "/catalog/etag")
        try startGateway()
        // The fill drops the client's conditional, so the entry holds the whole representation...
        let first = try get("/catalog/etag", headers: ["If-None-Match": "\"v7\""])
        XCTAssertEqual(backend.lastRequest?.header("If-None-Match"), nil)
        XCTAssertEqual(first.status, 304, "and the client, who holds v7, still gets its 304")
        let notModified = try get("/catalog/etag", headers: ["If-None-Match": "\"v6\", W/\"v7\""])
        XCTAssertEqual(notModified.status, 304)
        XCTAssertTrue(notModified.body.isEmpty)
        XCTAssertEqual(notModified.header("ETag"), "W/\"v7\"")
        XCTAssertEqual(notModified.cacheStatus, "CacheGateway; hit")
        let changed = try get("/catalog/etag", headers: ["If-None-Match": "\"v6\""])
        XCTAssertEqual(changed.status, 200)
        XCTAssertEqual(changed.text, "versioned")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/etag"), 1)
    }

    func testHeadSharesTheGetEntry() throws {
        backend.setBehaviour(.ok("twelve bytes"), forPath: "/catalog/h")
        try startGateway()
        let head = try get("/catalog/h", method: "HEAD")
        XCTAssertEqual(head.header("Content-Length"), "12")
        XCTAssertTrue(head.body.isEmpty)
        XCTAssertEqual(backend.lastRequest?.method, "GET", "a cache fill fetches the whole representation")
        let full = try get("/catalog/h")
        XCTAssertEqual(full.text, "twelve bytes")
        XCTAssertEqual(full.cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/h"), 1)
    }

    func testEntryExpiresAfterTheRouteTTL() throws {
        backend.setBehaviour(.ok("fresh"), forPath: "/catalog/ttl")
        try startGateway(routes: """
            routes:
              - { name: short, match: "/catalog/**", class: public, ttl: 1s }
            """)
        try get("/catalog/ttl")
        XCTAssertEqual(try get("/catalog/ttl").cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/ttl"), 1)
        Thread.sleep(forTimeInterval: 1.3)
        XCTAssertEqual(try get("/catalog/ttl").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/ttl"), 2)
    }

    func testNotFoundIsCachedForItsOwnTTLAndServerErrorsAreNot() throws {
        backend.setBehaviour(.respond(status: 404, headers: [], body: Array("gone".utf8), framing: .contentLength), forPath: "/catalog/missing")
        backend.setBehaviour(.respond(status: 500, headers: [], body: Array("boom".utf8), framing: .contentLength), forPath: "/catalog/broken")
        try startGateway()
        XCTAssertEqual(try get("/catalog/missing").status, 404)
        let again = try get("/catalog/missing")
        XCTAssertEqual(again.status, 404)
        XCTAssertEqual(again.cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/missing"), 1)
        // Its Redis TTL is the 30 s of ttl_by_status, not the route's 5 minutes.
        let key = try XCTUnwrap(cacheKeys().first)
        let ttl = try XCTUnwrap(Int(redis.cli("PTTL", key).first ?? ""))
        XCTAssertTrue((25_000...30_000).contains(ttl), "PTTL \(ttl)")

        XCTAssertEqual(try get("/catalog/broken").status, 500)
        let second = try get("/catalog/broken")
        XCTAssertEqual(second.status, 500)
        // Hit-for-miss: the first answer was not storable, so the next goes straight upstream.
        XCTAssertEqual(second.cacheStatus, "CacheGateway; fwd=miss; detail=uncacheable")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/broken"), 2)
    }

    func testPersonalOrForbiddenResponsesAreNotStoredOnPublicRoutes() throws {
        backend.setBehaviour(.ok("c", headers: [("Set-Cookie", "session=abc")]), forPath: "/catalog/cookie")
        backend.setBehaviour(.ok("n", headers: [("Cache-Control", "no-store")]), forPath: "/catalog/nostore")
        backend.setBehaviour(.ok("p", headers: [("Cache-Control", "private, max-age=60")]), forPath: "/catalog/private")
        try startGateway()
        for path in ["/catalog/cookie", "/catalog/nostore", "/catalog/private"] {
            let first = try get(path)
            XCTAssertEqual(first.status, 200)
            XCTAssertTrue(first.cacheStatus.contains("not-stored"), "\(path): \(first.cacheStatus)")
            try get(path)
            XCTAssertEqual(backend.requestCount(forPath: path), 2, path)
        }
        XCTAssertEqual(try get("/catalog/cookie").header("Set-Cookie"), "session=abc", "the requester still gets its own cookie")
        XCTAssertEqual(try cacheKeys(), [])
    }

    func testQueryParametersOutsideTheAllowListDoNotCreateKeys() throws {
        backend.setBehaviour(.echo, forPath: "/catalog/list")
        try startGateway()
        let first = try get("/catalog/list?page=2&utm_source=mail&_=1700000000")
        XCTAssertEqual(first.header("X-Echo-Target"), "/catalog/list?page=2", "unlisted parameters are stripped before forwarding")
        XCTAssertEqual(try get("/catalog/list?_=1700000001&page=2").cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/catalog/list?page=2").cacheStatus, "CacheGateway; hit")
        // Order of allow-listed parameters does not matter; their values do.
        try get("/catalog/list?sort=name&page=2")
        XCTAssertEqual(try get("/catalog/list?page=2&sort=name").cacheStatus, "CacheGateway; hit")
        try get("/catalog/list?page=3")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/list"), 3)
        XCTAssertEqual(try cacheKeys().count, 3)
    }

    func testUnlistedQueryBypassPolicy() throws {
        backend.setBehaviour(.echo, forPath: "/catalog/search")
        try startGateway(routes: """
            routes:
              - { name: search, match: "/catalog/**", class: public, ttl: 1m, query: [q], unlisted_query: bypass }
            """)
        let response = try get("/catalog/search?q=a&debug=1")
        XCTAssertEqual(response.cacheStatus, "CacheGateway; fwd=bypass; detail=unlisted-query")
        XCTAssertEqual(response.header("X-Echo-Target"), "/catalog/search?q=a&debug=1")
        try get("/catalog/search?q=a&debug=1")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/search"), 2)
        XCTAssertEqual(try cacheKeys(), [])
    }

    func testAuthorizedRequestsBypassTheSharedCacheUnlessAllowed() throws {
        backend.setBehaviour(.ok("shared"), forPath: "/catalog/a")
        try startGateway()
        try get("/catalog/a")  // stored
        let withAuth = try get("/catalog/a", headers: ["Authorization": "Bearer x"])
        XCTAssertEqual(withAuth.cacheStatus, "CacheGateway; fwd=bypass; detail=authorized")
        let withCookie = try get("/catalog/a", headers: ["Cookie": "s=1"])
        XCTAssertEqual(withCookie.cacheStatus, "CacheGateway; fwd=bypass; detail=authorized")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/a"), 3)
    }

    func testLargeBodiesAreServedButNotStored() throws {
        let big = String(repeating: "z", count: 3000)
        backend.setBehaviour(.ok(big), forPath: "/catalog/big")
        try startGateway(routes: """
            routes:
              - { name: small, match: "/catalog/**", class: public, ttl: 1m, max_body_size: 2KiB }
            """)
        XCTAssertEqual(try get("/catalog/big").text, big)
        let second = try get("/catalog/big")
        XCTAssertEqual(second.text, big)
        XCTAssertEqual(second.cacheStatus, "CacheGateway; fwd=miss; detail=uncacheable")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/big"), 2)
    }

    func testInProcessTierServesWithoutRedisForItsTTL() throws {
        backend.setBehaviour(.ok("hot"), forPath: "/catalog/local")
        try startGateway(extra: "cache: { local_ttl: 1s, local_tracking: false }")
        XCTAssertEqual(try get("/catalog/local").cacheStatus, "CacheGateway; fwd=miss; stored")
        // Same loop or not, the answer is the same; a local hit never touches Redis.
        let statuses = try (0..<4).map { _ in try get("/catalog/local").cacheStatus }
        XCTAssertTrue(statuses.allSatisfy { $0.hasPrefix("CacheGateway; hit") }, "\(statuses)")
        XCTAssertTrue(statuses.contains("CacheGateway; hit; detail=local"), "\(statuses)")
        // Deleted in Redis: the tier may serve it for at most local_ttl more.
        _ = try redis.cli("DEL", try XCTUnwrap(cacheKeys().first))
        Thread.sleep(forTimeInterval: 1.1)
        XCTAssertEqual(try get("/catalog/local").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/local"), 2)
    }

    func testStatsEndpointCounts() throws {
        backend.setBehaviour(.ok("x"), forPath: "/catalog/s")
        try startGateway(extra: "admin: { listen: 127.0.0.1:0 }")
        try get("/catalog/s")
        try get("/catalog/s")
        let stats = try admin("/stats")
        XCTAssertEqual(stats.header("Content-Type"), "application/json")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(stats.body)) as? [String: Any])
        let counters = try XCTUnwrap(json["totals"] as? [String: Int])
        XCTAssertEqual(counters["hits"], 1)
        XCTAssertEqual(counters["misses"], 1)
        XCTAssertEqual((json["redis"] as? [String: Int])?["connected_loops"], 2)
    }

    func testUnsafePathsAndUnknownRoutes() throws {
        try startGateway(routes: """
            routes:
              - { name: catalog, match: "/catalog/**", class: public, ttl: 1m }
            """)
        XCTAssertEqual(try get("/catalog/../users/1/resources").status, 400)
        XCTAssertEqual(try get("/catalog/%2e%2e/users/1/resources").status, 400)
        XCTAssertEqual(try get("/catalog/a%2Fb").status, 400)
        XCTAssertEqual(try get("/elsewhere").status, 404)
        XCTAssertEqual(try get("/healthz").text, "ok\n")
        XCTAssertEqual(backend.totalRequests, 0)
    }
}
