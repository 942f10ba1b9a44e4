import GatewayHTTP
import XCTest

@testable import GatewayCore

final class CachePolicyTests: XCTestCase {
    private let settings = RouteCacheSettings(ttl: .seconds(300), ttlByStatus: [404: .seconds(30)], maxBodySize: 1000)
    private var perUserSettings: RouteCacheSettings {
        var s = settings
        s.identity = .header("Authorization")
        return s
    }

    private func decide(_ status: Int = 200, _ headers: [(String, String)] = [], body: Int = 10, framed: Bool = true,
                        _ routeClass: RouteClass = .public) -> StoreDecision {
        CachePolicy.decide(status: status, headers: HTTPHeaders(headers), bodyCount: body, completeByFraming: framed,
                           routeClass: routeClass, settings: routeClass == .perUser ? perUserSettings : settings)
    }

    func testStatusesAndTTLs() {
        XCTAssertEqual(decide(200), .store(ttl: .seconds(300)))
        XCTAssertEqual(decide(404), .store(ttl: .seconds(30)))
        XCTAssertEqual(decide(500), .shareOnly(reason: "status"))
        XCTAssertEqual(decide(302), .shareOnly(reason: "status"))
    }

    func testOriginMayShortenNeverLengthen() {
        XCTAssertEqual(decide(200, [("Cache-Control", "public, max-age=10")]), .store(ttl: .seconds(10)))
        XCTAssertEqual(decide(200, [("Cache-Control", "max-age=100000")]), .store(ttl: .seconds(300)))
        XCTAssertEqual(decide(200, [("Cache-Control", "max-age=600, s-maxage=20")]), .store(ttl: .seconds(20)))
        XCTAssertEqual(decide(200, [("Cache-Control", "max-age=0")]), .shareOnly(reason: "max-age=0"))
    }

    func testPersonalResponsesAreNeverStoredOrShared() {
        XCTAssertEqual(decide(200, [("Set-Cookie", "a=1")]), .doNotShare(reason: "set-cookie"))
        XCTAssertEqual(decide(200, [("Cache-Control", "No-Store")]), .doNotShare(reason: "no-store"))
        XCTAssertEqual(decide(200, [("Cache-Control", "private")]), .doNotShare(reason: "private"))
        XCTAssertEqual(decide(200, [("Set-Cookie", "a=1")], .perUser), .doNotShare(reason: "set-cookie"))
    }

    func testPerUserRoutesMayStorePrivateButNeverShareWhatIsNotStored() {
        XCTAssertEqual(decide(200, [("Cache-Control", "private")], .perUser), .store(ttl: .seconds(300)))
        XCTAssertEqual(decide(500, [], .perUser), .doNotShare(reason: "status"))
        XCTAssertEqual(decide(200, [], body: 5000, .perUser), .doNotShare(reason: "too-large"))
    }

    func testVaryOnWhatTheKeyHoldsOrTheRouteAllowsIsStored() {
        // Allowed headers are stored as variants (the caller picks the variant).
        XCTAssertEqual(decide(200, [("Vary", "Accept-Encoding")]), .store(ttl: .seconds(300)))
        XCTAssertEqual(decide(200, [("Vary", "authorization")], .perUser), .store(ttl: .seconds(300)))
        XCTAssertEqual(decide(200, [("Vary", "Authorization, Accept")], .perUser), .store(ttl: .seconds(300)))
        XCTAssertEqual(decide(200, [("Vary", "X-Theme")]), .shareOnly(reason: "vary"))
        XCTAssertEqual(decide(200, [("Vary", "Cookie")]), .shareOnly(reason: "vary"))
        XCTAssertEqual(decide(200, [("Vary", "*")]), .shareOnly(reason: "vary"))
        XCTAssertEqual(decide(200, [("Vary", "Authorization, X-Theme")], .perUser), .doNotShare(reason: "vary"))
    }

    func testSizeFramingAndNoCache() {
        XCTAssertEqual(decide(200, body: 1000), .store(ttl: .seconds(300)))
        XCTAssertEqual(decide(200, body: 1001), .shareOnly(reason: "too-large"))
        XCTAssertEqual(decide(200, framed: false), .shareOnly(reason: "unframed"))
        XCTAssertEqual(decide(200, [("Cache-Control", "no-cache")]), .shareOnly(reason: "no-cache"))
    }

    func testIfNoneMatchUsesTheWeakComparison() {
        XCTAssertTrue(Conditional.matches(ifNoneMatch: "\"a\"", etag: "\"a\""))
        XCTAssertTrue(Conditional.matches(ifNoneMatch: "W/\"a\"", etag: "\"a\""))
        XCTAssertTrue(Conditional.matches(ifNoneMatch: "\"x\", \"a\"", etag: "W/\"a\""))
        XCTAssertTrue(Conditional.matches(ifNoneMatch: "*", etag: "\"a\""))
        XCTAssertFalse(Conditional.matches(ifNoneMatch: "\"b\"", etag: "\"a\""))
        XCTAssertFalse(Conditional.matches(ifNoneMatch: "\"a", etag: "\"a\""))
    }

    func testIfModifiedSinceAndHTTPDates() {
        XCTAssertEqual(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT"), 784_111_777)
        XCTAssertEqual(HTTPDate.parse("Thu, 01 Jan 1970 00:00:00 GMT"), 0)
        XCTAssertEqual(HTTPDate.parse("Tue, 29 Feb 2028 23:59:59 GMT"), 1_835_481_599)
        for bad in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 UTC",
                    "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nox 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT", ""] {
            XCTAssertNil(HTTPDate.parse(bad), bad)
        }
        let entry = CachedResponse(status: 200, headers: HTTPHeaders([("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"), ("ETag", "\"v1\"")]),
                                   body: [], storedAt: 0)
        func notModified(_ headers: [(String, String)]) -> Bool { Conditional.notModified(HTTPHeaders(headers), entry: entry) }
        XCTAssertTrue(notModified([("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")]))
        XCTAssertTrue(notModified([("If-Modified-Since", "Mon, 07 Nov 1994 00:00:00 GMT")]))
        XCTAssertFalse(notModified([("If-Modified-Since", "Sat, 05 Nov 1994 00:00:00 GMT")]))
        XCTAssertFalse(notModified([("If-Modified-Since", "yesterday")]), "an unreadable date is ignored")
        // If-None-Match wins, even when the date would say not modified.
        XCTAssertFalse(notModified([("If-None-Match", "\"v2\""), ("If-Modified-Since", "Mon, 07 Nov 1994 00:00:00 GMT")]))
        XCTAssertTrue(notModified([("If-None-Match", "\"v1\"")]))
    }

    func testHopByHopStripping() {
        let headers = HTTPHeaders([("Connection", "close, X-Internal"), ("X-Internal", "1"), ("Keep-Alive", "5"),
                                   ("Proxy-Foo", "x"), ("Transfer-Encoding", "chunked"), ("Content-Type", "a"), ("Set-Cookie", "s")])
        XCTAssertEqual(HeaderRules.endToEnd(headers).map(\.name), ["Content-Type", "Set-Cookie"])
        XCTAssertEqual(HeaderRules.endToEnd(headers, alsoDropping: ["set-cookie"]).map(\.name), ["Content-Type"])
    }
}
