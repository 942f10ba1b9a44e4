import Foundation
import GatewayTestSupport
import XCTest

/// `ttl: origin` and CDN-Cache-Control end to end: real backend, real Redis, the gateway on a socket.
final class OriginModeTests: GatewayTestCase {
    static let routes = """
        routes:
          - name: followed
            match: "/followed/**"
            class: public
            ttl: origin
          - name: forced
            match: "/forced/**"
            class: public
            ttl: 5m
          - name: rest
            match: "/**"
            class: pass
        """

    func testOriginMaxAgeIsTheLifetime() throws {
        backend.setBehaviour(.ok("short", headers: [("Cache-Control", "max-age=1")]), forPath: "/followed/a")
        try startGateway(routes: Self.routes)
        XCTAssertEqual(try get("/followed/a").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(try get("/followed/a").cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(backend.requestCount(forPath: "/followed/a"), 1)
        Thread.sleep(forTimeInterval: 1.2)
        let again = try get("/followed/a")
        XCTAssertEqual(again.text, "short")
        XCTAssertEqual(backend.requestCount(forPath: "/followed/a"), 2, "stale after the origin's max-age, not the 5m of a forced route")
    }

    func testNoFreshnessIsNotStoredOnAnOriginRouteButIsOnAForcedOne() throws {
        backend.setBehaviour(.ok("plain"), forPath: "/followed/plain")
        backend.setBehaviour(.ok("plain"), forPath: "/forced/plain")
        try startGateway(routes: Self.routes)
        XCTAssertEqual(try get("/followed/plain").cacheStatus, "CacheGateway; fwd=miss; detail=not-stored-no-freshness")
        XCTAssertEqual(try get("/forced/plain").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(try get("/forced/plain").cacheStatus, "CacheGateway; hit")
    }

    func testCDNCacheControlNoStoreIsNotStoredInForcedMode() throws {
        backend.setBehaviour(.ok("for browsers only", headers: [("Cache-Control", "public, max-age=600"), ("CDN-Cache-Control", "no-store")]),
                             forPath: "/forced/cdn")
        try startGateway(routes: Self.routes)
        let first = try get("/forced/cdn")
        XCTAssertEqual(first.text, "for browsers only")
        XCTAssertEqual(first.cacheStatus, "CacheGateway; fwd=miss; detail=not-stored-no-store")
        _ = try get("/forced/cdn")
        XCTAssertEqual(backend.requestCount(forPath: "/forced/cdn"), 2, "never answered from the cache")
    }

    func testTheOriginsAgeIsKeptAndAddedTo() throws {
        backend.setBehaviour(.ok("aged", headers: [("Cache-Control", "max-age=300"), ("Age", "100")]), forPath: "/followed/aged")
        try startGateway(routes: Self.routes)
        let miss = try get("/followed/aged")
        XCTAssertEqual(miss.cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(miss.headers.filter { $0.0.lowercased() == "age" }.map(\.1), ["100"], "the origin's Age, once, not 0")
        Thread.sleep(forTimeInterval: 1.1)
        let hit = try get("/followed/aged")
        XCTAssertEqual(hit.cacheStatus, "CacheGateway; hit")
        XCTAssertGreaterThanOrEqual(Int(hit.header("Age") ?? "") ?? -1, 101)
        XCTAssertEqual(backend.requestCount(forPath: "/followed/aged"), 1)
    }
}
