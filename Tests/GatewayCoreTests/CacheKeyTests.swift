import GatewayHTTP
import XCTest

@testable import GatewayCore

final class CacheKeyTests: XCTestCase {
    private func key(host: String? = nil, path: String = "/catalog/a", query: [(String, String)] = [], identity: String? = nil) -> String {
        CacheKey(prefix: "gw:", route: "catalog", host: host, path: path,
                 query: query.map { (name: $0.0, value: $0.1) },
                 identityDigest: identity.map(CacheKey.identityDigest)).redisKey
    }

    func testShapeAndDeterminism() {
        let k = key(query: [("page", "1")])
        XCTAssertTrue(k.hasPrefix("gw:catalog:"))
        XCTAssertEqual(k.count, "gw:catalog:".count + 64)
        XCTAssertEqual(k, key(query: [("page", "1")]))
    }

    func testEveryPartChangesTheKey() {
        let base = key(query: [("page", "1")])
        XCTAssertNotEqual(base, key(path: "/catalog/b", query: [("page", "1")]))
        XCTAssertNotEqual(base, key(query: [("page", "2")]))
        XCTAssertNotEqual(base, key(query: []))
        XCTAssertNotEqual(base, key(host: "a.example", query: [("page", "1")]))
        XCTAssertNotEqual(base, key(query: [("page", "1")], identity: "Bearer a"))
        XCTAssertNotEqual(key(identity: "Bearer a"), key(identity: "Bearer b"))
    }

    func testNoSplitOfTheSameBytesCollides() {
        // Separators cannot be smuggled: each of these would read "a=b&c" if concatenated.
        let variants = [
            key(query: [("a", "b&c")]),
            key(query: [("a", "b"), ("c", "")]),
            key(query: [("a=b&c", "")]),
            key(path: "/catalog/a?a=b&c"),
        ]
        XCTAssertEqual(Set(variants).count, variants.count)
    }

    func testIdentityDigestHidesTheCredential() {
        let digest = SHA256.hex(CacheKey.identityDigest("Bearer secret-token"))
        XCTAssertFalse(digest.contains("secret"))
        XCTAssertEqual(digest.count, 64)
        XCTAssertFalse(key(identity: "Bearer secret-token").contains("secret"))
    }

    func testQueryParsingKeepsRawPieces() {
        let p = RequestTarget.parameters("b=2&a=1&flag&&c=")
        XCTAssertEqual(p.map(\.name), ["b", "a", "flag", "c"])
        XCTAssertEqual(p.map(\.value), ["2", "1", "", ""])
        XCTAssertEqual(RequestTarget.query(p), "b=2&a=1&flag&c")
        XCTAssertNil(RequestTarget.query([]))
        XCTAssertEqual(RequestTarget.parameters(nil).count, 0)
    }

    func testUnsafePaths() {
        for safe in ["/", "/catalog/a", "/catalog/a.b", "/catalog/..a", "/a/%41", "/a//b"] {
            XCTAssertNil(RequestTarget.unsafePathReason(safe), safe)
        }
        let unsafe: [(String, String)] = [
            ("/catalog/../users", "dot segment in path"), ("/catalog/./x", "dot segment in path"),
            ("/catalog/..", "dot segment in path"), ("/catalog/%2e%2E/x", "dot segment in path"),
            ("/catalog/.%2e", "dot segment in path"), ("/a%2fb", "encoded slash in path"),
            ("/a%5Cb", "encoded slash in path"), ("/a\\b", "backslash in path"), ("/a%00", "encoded NUL in path"),
        ]
        for (path, reason) in unsafe { XCTAssertEqual(RequestTarget.unsafePathReason(path), reason, path) }
    }

    func testCookieLookup() {
        let headers = HTTPHeaders([("Cookie", "theme=dark; session=abc=def"), ("Cookie", "other=1")])
        XCTAssertEqual(RequestTarget.cookie("session", in: headers), "abc=def")
        XCTAssertEqual(RequestTarget.cookie("other", in: headers), "1")
        XCTAssertNil(RequestTarget.cookie("sess", in: headers))
        XCTAssertNil(RequestTarget.cookie("Session", in: headers), "cookie names are case-sensitive")
    }
}
