import GatewayHTTP
import XCTest

@testable import GatewayCore

final class CacheKeyTests: XCTestCase {
    private func key(host: String? = nil, path: String = "/catalog/a", query: [String] = [], identity: String? = nil) -> String {
        CacheKey(prefix: "gw:", route: "catalog", host: host, path: path, query: query,
                 identityDigest: identity.map(CacheKey.identityDigest)).redisKey
    }

    func testShapeAndDeterminism() {
        let k = key(query: ["page=1"])
        XCTAssertTrue(k.hasPrefix("gw:e:catalog:"))
        XCTAssertEqual(k.count, "gw:e:catalog:".count + 64)
        XCTAssertEqual(k, key(query: ["page=1"]))
    }

    func testNamespacesCannotOverlapWhateverTheRouteIsCalled() {
        // A route called like another namespace's tag stays inside the entry namespace.
        let space = KeySpace(prefix: "gw:")
        for route in ["i", "idx", "e", "x-1"] {
            XCTAssertTrue(space.entryPrefix(route: route).hasPrefix("gw:e:"))
            XCTAssertFalse(space.entryPrefix(route: route).hasPrefix("gw:i:"))
        }
        XCTAssertEqual(space.pathIndex(path: "/a"), "gw:i:/a")
        XCTAssertEqual(space.path(ofIndex: "gw:i:/a/b"), "/a/b")
        XCTAssertNil(space.path(ofIndex: "gw:e:r:x"))
        XCTAssertEqual(space.tagIndex(tag: "user:42"), "gw:t:user:42")
        XCTAssertEqual(space.pathIndexPattern(under: "/catalog/[x]*"), "gw:i:/catalog/\\[x\\]\\**")
        XCTAssertEqual(space.entryPattern(route: "catalog"), "gw:e:catalog:*")
        // Glob characters in the prefix are matched literally by SCAN.
        XCTAssertEqual(KeySpace(prefix: "a*[b]?\\:").entryPattern(route: "r"), "a\\*\\[b\\]\\?\\\\:e:r:*")
    }

    func testEveryPartChangesTheKey() {
        let base = key(query: ["page=1"])
        XCTAssertNotEqual(base, key(path: "/catalog/b", query: ["page=1"]))
        XCTAssertNotEqual(base, key(query: ["page=2"]))
        XCTAssertNotEqual(base, key(query: []))
        XCTAssertNotEqual(base, key(host: "a.example", query: ["page=1"]))
        XCTAssertNotEqual(base, key(query: ["page=1"], identity: "Bearer a"))
        // `page` and `page=` are forwarded differently, so they are keyed differently.
        XCTAssertNotEqual(key(query: ["page"]), key(query: ["page="]))
        XCTAssertNotEqual(key(identity: "Bearer a"), key(identity: "Bearer b"))
    }

    func testNoSplitOfTheSameBytesCollides() {
        // Separators cannot be smuggled: each of these would read "a=b&c" if concatenated.
        let variants = [
            key(query: ["a=b&c"]),
            key(query: ["a=b", "c"]),
            key(query: ["a=b&c="]),
            key(path: "/catalog/a?a=b&c"),
        ]
        XCTAssertEqual(Set(variants).count, variants.count)
    }

    func testIdentityDigestIsTheDomainSeparatedHashOfTheCredential() {
        // SHA-256 of len("cachegateway-identity-v1") ‖ "cachegateway-identity-v1" ‖ len ‖ credential,
        // lengths as 4-byte big-endian; computed independently with Python's hashlib.
        XCTAssertEqual(SHA256.hex(CacheKey.identityDigest("Bearer secret-token")), "8e2d6400507f4495b7553e4f84bc44cd491174e96334a42af5646e5964478e44")
    }

    func testQueryParsingKeepsRawPieces() {
        let p = RequestTarget.parameters("b=2&a=1&flag&&c=")
        XCTAssertEqual(p.map(\.name), ["b", "a", "flag", "c"])
        XCTAssertEqual(p.map(\.piece), ["b=2", "a=1", "flag", "c="])
        XCTAssertEqual(RequestTarget.query(p), "b=2&a=1&flag&c=")
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
            // Tomcat-style path parameters on a dot segment.
            ("/catalog/..;/users", "dot segment in path"), ("/catalog/..;x=1/users", "dot segment in path"),
            ("/catalog/.;/x", "dot segment in path"), ("/catalog/%2e%2e;/x", "dot segment in path"),
        ]
        for (path, reason) in unsafe { XCTAssertEqual(RequestTarget.unsafePathReason(path), reason, path) }
    }

    /// The scan without allocations gives the reason the decode-each-segment version gave, for
    /// random paths over the bytes that matter (dots, `%`, hex digits, `;`, slashes, backslash).
    func testUnsafePathReasonMatchesTheDecodingReference() {
        func reference(_ path: String) -> String? {
            guard path.utf8.first == UInt8(ascii: "/") else { return "path must start with /" }
            func hex(_ c: UInt8) -> UInt8? {
                switch c {
                case 0x30...0x39: c - 0x30
                case 0x61...0x66: c - 0x61 + 10
                case 0x41...0x46: c - 0x41 + 10
                default: nil
                }
            }
            for segment in path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
                let s = Array(segment)
                var decoded: [UInt8] = []
                var i = 0
                while i < s.count {
                    if s[i] == UInt8(ascii: "\\") { return "backslash in path" }
                    if s[i] == UInt8(ascii: "%"), s.count - i >= 3, let h = hex(s[i + 1]), let l = hex(s[i + 2]) {
                        let v = h << 4 | l
                        if v == UInt8(ascii: "/") || v == UInt8(ascii: "\\") { return "encoded slash in path" }
                        if v == 0 { return "encoded NUL in path" }
                        decoded.append(v); i += 3; continue
                    }
                    decoded.append(s[i]); i += 1
                }
                if decoded == [0x2E] || decoded == [0x2E, 0x2E] { return "dot segment in path" }
                if let semi = decoded.firstIndex(of: UInt8(ascii: ";")),
                   decoded[..<semi].elementsEqual([0x2E]) || decoded[..<semi].elementsEqual([0x2E, 0x2E]) {
                    return "dot segment in path"
                }
            }
            return nil
        }
        let pieces = ["/", "/", ".", ".", "%", "2", "e", "E", "f", "5", "c", "0", ";", "\\", "a", "x", "%2e", "%2F", "%5c", "%00"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let path = (0..<Int.random(in: 0...9, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            for candidate in [path, "/" + path] {
                XCTAssertEqual(RequestTarget.unsafePathReason(candidate), reference(candidate), candidate)
            }
        }
    }

    func testCookieLookup() {
        let headers = HTTPHeaders([("Cookie", "theme=dark; session=abc=def"), ("Cookie", "other=1")])
        XCTAssertEqual(RequestTarget.cookie("session", in: headers), "abc=def")
        XCTAssertEqual(RequestTarget.cookie("other", in: headers), "1")
        XCTAssertNil(RequestTarget.cookie("sess", in: headers))
        XCTAssertNil(RequestTarget.cookie("Session", in: headers), "cookie names are case-sensitive")
        let twice = HTTPHeaders([("Cookie", "session=alice; session=bob")])
        XCTAssertEqual(RequestTarget.cookies("session", in: twice), ["alice", "bob"])
    }
}
