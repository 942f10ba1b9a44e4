import Foundation
import GatewayTestSupport
import XCTest

final class PassThroughTests: GatewayTestCase {
    func testMethodsWithBodiesReachTheBackendUnchanged() throws {
        backend.setBehaviour(.echo, forPath: "/api/things")
        try startGateway()
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let body = "{\"method\": \"\(method)\", \"bytes\": \"\\u0000 é\"}"
            let response = try get("/api/things?x=1", headers: ["Content-Type": "application/json", "X-Custom": "v"], method: method, body: body)
            XCTAssertEqual(response.status, 200, method)
            XCTAssertEqual(response.text, body, method)
            XCTAssertEqual(response.header("X-Echo-Method"), method)
            XCTAssertEqual(response.header("X-Echo-Target"), "/api/things?x=1")
            XCTAssertEqual(response.cacheStatus, "CacheGateway; fwd=bypass; detail=pass")
            let seen = try XCTUnwrap(backend.lastRequest)
            XCTAssertEqual(seen.header("X-Custom"), "v")
            XCTAssertEqual(seen.header("Content-Type"), "application/json")
            XCTAssertEqual(seen.header("X-Forwarded-For"), "127.0.0.1")
            XCTAssertEqual(seen.header("X-Forwarded-Proto"), "http")
        }
        XCTAssertEqual(try cacheKeys(), [])
    }

    func testAbsoluteFormIsForwardedInOriginForm() throws {
        backend.setBehaviour(.echo, forPath: "/api/abs")
        try startGateway()
        let response = try get("http://test/api/abs?y=1")
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("X-Echo-Target"), "/api/abs?y=1")
    }

    func testHopByHopHeadersAreNotForwardedEitherWay() throws {
        backend.setBehaviour(.ok("x", headers: [("Connection", "X-Hop"), ("X-Hop", "1"), ("Keep-Alive", "timeout=5"), ("X-End", "2")]), forPath: "/api/hop")
        try startGateway()
        let response = try get("/api/hop", headers: ["Connection": "X-Private", "X-Private": "secret", "Keep-Alive": "300", "TE": "trailers", "Proxy-Authorization": "p"])
        XCTAssertNil(response.header("X-Hop"))
        XCTAssertNil(response.header("Keep-Alive"))
        XCTAssertEqual(response.header("X-End"), "2")
        let seen = try XCTUnwrap(backend.lastRequest)
        for name in ["X-Private", "Keep-Alive", "TE", "Proxy-Authorization"] {
            XCTAssertNil(seen.header(name), "\(name) was forwarded")
        }
    }

    func testObsTextInHeadersPassesThroughByteForByteAndFromTheCache() throws {
        let obsText: [UInt8] = [0x63, 0x61, 0x66, 0xE9, 0x20, 0x80, 0xFF]  // "caf" + Latin-1 e-acute + ...
        let answer = Array("HTTP/1.1 200 OK\r\nX-Latin1: ".utf8) + obsText + Array("\r\nContent-Length: 2\r\n\r\nok".utf8)
        backend.setBehaviour(.raw(answer, close: false), forPath: "/catalog/latin1")
        try startGateway(extra: "cache: { forward_headers: [X-Client] }")  // fills send listed headers only
        for expected in ["CacheGateway; fwd=miss; stored", "CacheGateway; hit"] {
            let client = try TestClient(port: port, timeout: 10)
            try client.send(Array("GET /catalog/latin1 HTTP/1.1\r\nHost: test\r\nX-Client: ".utf8) + obsText + Array("\r\n\r\n".utf8))
            let response = try client.readResponse()
            XCTAssertEqual(response.cacheStatus, expected)
            XCTAssertTrue(response.rawHead.contains(Array("\r\nX-Latin1: ".utf8) + obsText + [13, 10]),
                          "\(expected): \(String(decoding: response.rawHead, as: UTF8.self))")
        }
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/latin1"), 1)
        let seen = try XCTUnwrap(backend.lastRequest?.rawHead)
        XCTAssertTrue(seen.contains(Array("\r\nX-Client: ".utf8) + obsText + [13, 10]), String(decoding: seen, as: UTF8.self))
    }

    func testPostOnACachedRouteIsForwardedNotCached() throws {
        backend.setBehaviour(.echo, forPath: "/catalog/form")
        try startGateway(routes: """
            routes:
              - { name: catalog, match: "/catalog/**", class: public, ttl: 1m }
              - { name: rest, match: "/**", class: pass }
            """)
        let response = try get("/catalog/form", method: "POST", body: "a=1")
        XCTAssertEqual(response.text, "a=1")
        XCTAssertEqual(response.cacheStatus, "CacheGateway; fwd=bypass; detail=pass")
        XCTAssertEqual(try cacheKeys(), [])
    }
}
