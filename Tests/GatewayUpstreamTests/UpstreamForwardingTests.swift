import GatewayTestSupport
import GatewayUpstream
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// What goes out is what was given; what comes back is what the upstream sent.
final class UpstreamForwardingTests: XCTestCase {
    var backend: TestHTTPBackend!
    var harness: ClientHarness!

    override func setUpWithError() throws {
        backend = try TestHTTPBackend(defaultBehaviour: .echo)
        harness = ClientHarness(baseURL: backend.baseURL)
    }

    override func tearDown() {
        harness.shutdown()
        backend.stop()
    }

    /// Every byte value, CR, LF and NUL included.
    let binaryBody: [UInt8] = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }

    func testEveryMethodReachesTheBackendUnchangedAndTheAnswerComesBack() throws {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"] {
            let headers: [(name: String, value: String)] = [
                ("X-First", "1"), ("Content-Type", "application/octet-stream"), ("x-lower", "MiXeD Case"),
                ("X-Dup", "a"), ("X-Dup", "b"), ("Authorization", "Bearer t0ken"),
            ]
            let request = UpstreamRequest(method: method, pathAndQuery: "/echo/\(method)?a=1&b=%20x&c",
                                          headers: headers, body: binaryBody)
            let response = try XCTUnwrap(harness.run(request).success, method)
            let seen = try XCTUnwrap(backend.lastRequest)
            XCTAssertEqual(seen.method, method)
            XCTAssertEqual(seen.target, "/echo/\(method)?a=1&b=%20x&c")
            XCTAssertEqual(seen.body, binaryBody, method)
            XCTAssertEqual(seen.header("Content-Length"), "1000", method)
            // Our fields in our order and spelling (libcurl adds only Host and Content-Length).
            let ours = seen.headers.filter { !["host", "content-length"].contains($0.name.lowercased()) }
            XCTAssertEqual(ours.map(\.name), headers.map(\.name), method)
            XCTAssertEqual(ours.map(\.value), headers.map(\.value), method)

            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.headers.map(\.name), ["X-Echo-Method", "X-Echo-Target", "Content-Length"])
            XCTAssertEqual(response.headerValue("x-echo-method"), method)
            XCTAssertEqual(response.body, binaryBody, method)
            XCTAssertTrue(response.isCompleteByFraming)
        }
        XCTAssertEqual(backend.totalRequests, 7)
    }

    func testHeadGetsHeadersWithoutBody() throws {
        let response = try XCTUnwrap(harness.run(UpstreamRequest(method: "HEAD", pathAndQuery: "/h")).success)
        XCTAssertEqual(backend.lastRequest?.method, "HEAD")
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.headerValue("Content-Length"), "0")
        XCTAssertEqual(response.body, [])
        XCTAssertTrue(response.isCompleteByFraming)

        backend.setBehaviour(.ok(String(repeating: "b", count: 500)), forPath: "/big")
        let head = try XCTUnwrap(harness.run(UpstreamRequest(method: "HEAD", pathAndQuery: "/big")).success)
        XCTAssertEqual(head.headerValue("Content-Length"), "500")
        XCTAssertEqual(head.body, [])
        XCTAssertTrue(head.isCompleteByFraming)
        // The connection is still in sync: a GET on it gets its own body.
        XCTAssertEqual(harness.run(UpstreamRequest(pathAndQuery: "/big")).success?.body.count, 500)
    }

    func testLibcurlAddsNoFieldsOfItsOwn() throws {
        _ = try XCTUnwrap(harness.run(UpstreamRequest(pathAndQuery: "/plain")).success)
        var seen = try XCTUnwrap(backend.lastRequest)
        XCTAssertEqual(seen.headers.map { $0.name.lowercased() }, ["host"], "a GET carries only Host")
        XCTAssertEqual(seen.header("Host"), "127.0.0.1:\(backend.port)")

        // 2 MiB without Content-Type: no Expect: 100-continue, no form Content-Type, exact bytes.
        let big = (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        _ = try XCTUnwrap(harness.run(UpstreamRequest(method: "POST", pathAndQuery: "/big", body: big)).success)
        seen = try XCTUnwrap(backend.lastRequest)
        XCTAssertEqual(seen.headers.map { $0.name.lowercased() }.sorted(), ["content-length", "host"])
        XCTAssertEqual(seen.header("Content-Length"), "\(2 << 20)")
        XCTAssertTrue(seen.body == big)

        // A given Host and Accept are forwarded once, as given; an empty value is kept.
        _ = try XCTUnwrap(harness.run(UpstreamRequest(pathAndQuery: "/h", headers: [
            ("Accept", "text/html"), ("Host", "api.example.com"), ("X-Empty", ""),
        ])).success)
        seen = try XCTUnwrap(backend.lastRequest)
        XCTAssertEqual(seen.headerValues("Host"), ["api.example.com"])
        XCTAssertEqual(seen.headerValues("Accept"), ["text/html"])
        XCTAssertEqual(seen.headerValues("X-Empty"), [""])
        XCTAssertEqual(seen.headers.count, 3)
    }

    func testEmptyBodiesAreFramedPerMethod() throws {
        for method in ["POST", "PUT", "PATCH"] {
            _ = try XCTUnwrap(harness.run(UpstreamRequest(method: method, pathAndQuery: "/e")).success)
            XCTAssertEqual(backend.lastRequest?.method, method)
            XCTAssertEqual(backend.lastRequest?.header("Content-Length"), "0", method)
        }
        for method in ["GET", "DELETE", "OPTIONS"] {
            _ = try XCTUnwrap(harness.run(UpstreamRequest(method: method, pathAndQuery: "/e")).success)
            XCTAssertEqual(backend.lastRequest?.method, method)
            XCTAssertNil(backend.lastRequest?.header("Content-Length"), method)
        }
    }

    func testCallerFramingFieldsAreReplacedByOurs() throws {
        // A stale Content-Length (or a Transfer-Encoding) from the caller must not reach the upstream
        // next to the real one: that is a request-smuggling desync.
        let request = UpstreamRequest(method: "POST", pathAndQuery: "/f",
                                      headers: [("Content-Length", "3"), ("Transfer-Encoding", "chunked")],
                                      body: Array("hello".utf8))
        _ = try XCTUnwrap(harness.run(request).success)
        XCTAssertEqual(backend.lastRequest?.headerValues("Content-Length"), ["5"])
        XCTAssertEqual(backend.lastRequest?.headerValues("Transfer-Encoding"), [])
        XCTAssertEqual(backend.lastRequest?.body, Array("hello".utf8))
    }

    func testTargetIsSentAsGiven() throws {
        for target in ["/a/../b/./c//d?x=%2F&y=&z", "/%7Euser/%2e%2e/", "/?", "/p;matrix=1?q=[1]"] {
            _ = try XCTUnwrap(harness.run(UpstreamRequest(pathAndQuery: target)).success, target)
            XCTAssertEqual(backend.lastRequest?.target, target)
        }
    }

    func testBasePathIsPrefixed() throws {
        let prefixed = ClientHarness(baseURL: backend.baseURL + "/api/v2/")
        defer { prefixed.shutdown() }
        _ = try XCTUnwrap(prefixed.run(UpstreamRequest(pathAndQuery: "/items?id=3")).success)
        XCTAssertEqual(backend.lastRequest?.target, "/api/v2/items?id=3")
    }

    func testRequestsThatWouldInjectAreRefusedAndNothingIsSent() {
        let bad: [UpstreamRequest] = [
            UpstreamRequest(pathAndQuery: "/x", headers: [("X-A", "ok\r\nX-Injected: 1")]),
            UpstreamRequest(pathAndQuery: "/x", headers: [("X-A", "ok\nX-Injected: 1")]),
            UpstreamRequest(pathAndQuery: "/x", headers: [("X-A", "ok\rX-Injected: 1")]),
            UpstreamRequest(pathAndQuery: "/x", headers: [("X-A", "nul\u{0}byte")]),
            UpstreamRequest(pathAndQuery: "/x", headers: [("X-A\r\nX-Injected", "1")]),
            UpstreamRequest(pathAndQuery: "/x", headers: [("X-A: 1\r\nX-B", "2")]),
            UpstreamRequest(pathAndQuery: "/x", headers: [("Bad Name", "1")]),
            UpstreamRequest(pathAndQuery: "/x", headers: [("", "1")]),
            UpstreamRequest(pathAndQuery: "/x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /y"),
            UpstreamRequest(pathAndQuery: "/x y"),
            UpstreamRequest(pathAndQuery: "/x#frag"),
            UpstreamRequest(pathAndQuery: "/caf\u{e9}"),
            UpstreamRequest(pathAndQuery: "x"),
            UpstreamRequest(pathAndQuery: ""),
            UpstreamRequest(method: "GET /x HTTP/1.1\r\n", pathAndQuery: "/x"),
            UpstreamRequest(method: "", pathAndQuery: "/x"),
            UpstreamRequest(method: "CONNECT", pathAndQuery: "/x"),
            UpstreamRequest(method: "HEAD", pathAndQuery: "/x", body: [1]),
            UpstreamRequest(method: "GET", pathAndQuery: "*"),
        ]
        let results = harness.run(bad)
        for (request, result) in zip(bad, results) {
            XCTAssertEqual(result.failure, .invalidRequest, "\(request.method) \(request.pathAndQuery) \(request.headers)")
            XCTAssertEqual(result.failure?.suggestedStatus, 400)
        }
        Thread.sleep(forTimeInterval: 0.1)
        XCTAssertEqual(backend.acceptedConnections, 0, "the backend was contacted")
        XCTAssertEqual(backend.totalRequests, 0)
        // The client is still usable.
        XCTAssertEqual(harness.run(UpstreamRequest(pathAndQuery: "/ok")).success?.status, 200)
    }

    func testInterimResponsesAreSkipped() throws {
        let raw = "HTTP/1.1 100 Continue\r\n\r\n"
            + "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            + "HTTP/1.1 201 Created\r\nX-Final: yes\r\nContent-Length: 2\r\n\r\nok"
        backend.setBehaviour(.raw(Array(raw.utf8), close: false), forPath: "/interim")
        let response = try XCTUnwrap(harness.run(UpstreamRequest(pathAndQuery: "/interim")).success)
        XCTAssertEqual(response.status, 201)
        XCTAssertEqual(response.headers.map(\.name), ["X-Final", "Content-Length"])
        XCTAssertEqual(response.body, Array("ok".utf8))
        XCTAssertTrue(response.isCompleteByFraming)
    }

    func testResponseHeadersKeepOrderAndSpellingAndTrimWhitespace() throws {
        let raw = "HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nX-Spaced:   padded value \t\r\nSet-Cookie: b=2\r\n"
            + "X-Folded: first\r\n  second\r\nContent-Length: 0\r\n\r\n"
        backend.setBehaviour(.raw(Array(raw.utf8), close: false), forPath: "/h")
        let response = try XCTUnwrap(harness.run(UpstreamRequest(pathAndQuery: "/h")).success)
        XCTAssertEqual(response.headers.map(\.name), ["set-cookie", "X-Spaced", "Set-Cookie", "X-Folded", "Content-Length"])
        XCTAssertEqual(response.headerValues("Set-Cookie"), ["a=1", "b=2"])
        XCTAssertEqual(response.headerValue("X-Spaced"), "padded value")
        XCTAssertEqual(response.headerValue("X-Folded"), "first second")
    }

    func testObsTextInARequestHeaderIsSentByteForByte() throws {
        // A value as the HTTP parser hands it over: each byte 0x80-0xFF as the scalar U+0080-U+00FF.
        let request = UpstreamRequest(pathAndQuery: "/latin1", headers: [("X-Latin1", "caf\u{E9} \u{80}\u{FF}"), ("X-After", "1")])
        _ = try XCTUnwrap(harness.run(request).success)
        let raw = try XCTUnwrap(backend.lastRequest?.rawHead)
        XCTAssertTrue(raw.contains(Array("\r\nX-Latin1: caf".utf8) + [0xE9, 0x20, 0x80, 0xFF, 0x0D, 0x0A]),
                      String(decoding: raw, as: UTF8.self))
    }

    func testObsTextInAResponseHeaderIsReadOneScalarPerByte() throws {
        let raw = Array("HTTP/1.1 200 OK\r\nX-Latin1: caf".utf8) + [0xE9, 0x80, 0xFF]
            + Array("\r\nX-Folded: a\r\n ".utf8) + [0xE9] + Array("\r\nX-Utf8: ".utf8) + Array("\u{2603}".utf8)
            + Array("\r\nContent-Length: 0\r\n\r\n".utf8)
        backend.setBehaviour(.raw(raw, close: false), forPath: "/latin1")
        let response = try XCTUnwrap(harness.run(UpstreamRequest(pathAndQuery: "/latin1")).success)
        XCTAssertEqual(response.headerValue("X-Latin1")?.unicodeScalars.map(\.value), [0x63, 0x61, 0x66, 0xE9, 0x80, 0xFF])
        XCTAssertEqual(response.headerValue("X-Folded"), "a \u{E9}")
        // UTF-8 is not special: its bytes are obs-text too, and come back as the same bytes.
        XCTAssertEqual(response.headerValue("X-Utf8")?.unicodeScalars.map(\.value), [0xE2, 0x98, 0x83])
    }

    func testRedirectsAreNotFollowed() throws {
        backend.setBehaviour(.respond(status: 302, headers: [("Location", "/target")], body: [], framing: .contentLength), forPath: "/from")
        let response = try XCTUnwrap(harness.run(UpstreamRequest(pathAndQuery: "/from")).success)
        XCTAssertEqual(response.status, 302)
        XCTAssertEqual(response.headerValue("Location"), "/target")
        XCTAssertEqual(backend.requestCount(forPath: "/target"), 0)
    }

    func testBodiesAreNotDecoded() throws {
        let gzipish: [UInt8] = [0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x0d, 0x0a]
        backend.setBehaviour(.respond(status: 200, headers: [("Content-Encoding", "gzip")], body: gzipish, framing: .chunked), forPath: "/gz")
        let response = try XCTUnwrap(harness.run(UpstreamRequest(pathAndQuery: "/gz", headers: [("Accept-Encoding", "gzip")])).success)
        XCTAssertEqual(response.body, gzipish)
        XCTAssertEqual(response.headerValue("Content-Encoding"), "gzip")
        XCTAssertEqual(backend.lastRequest?.header("Accept-Encoding"), "gzip")
    }

    func testNoCookieEngine() throws {
        backend.setBehaviour(.respond(status: 200, headers: [("Set-Cookie", "session=abc; Path=/")], body: [], framing: .contentLength), forPath: "/login")
        _ = harness.run(UpstreamRequest(pathAndQuery: "/login"))
        _ = harness.run(UpstreamRequest(pathAndQuery: "/next"))
        XCTAssertNil(backend.lastRequest?.header("Cookie"))
    }

    func testProxyEnvironmentIsIgnored() throws {
        // libcurl would otherwise send every request to whatever http_proxy / ALL_PROXY name.
        let port = try UpstreamConnectionTests.closedPort()
        setenv("http_proxy", "http://127.0.0.1:\(port)", 1)
        setenv("ALL_PROXY", "http://127.0.0.1:\(port)", 1)
        defer {
            unsetenv("http_proxy")
            unsetenv("ALL_PROXY")
        }
        let fresh = ClientHarness(baseURL: backend.baseURL)
        defer { fresh.shutdown() }
        XCTAssertEqual(fresh.run(UpstreamRequest(pathAndQuery: "/direct")).success?.status, 200)
        XCTAssertEqual(backend.lastRequest?.target, "/direct")
    }
}
