import GatewayTestSupport
import GatewayUpstream
import XCTest

/// Cut-off responses are errors; complete ones say whether their framing proves it.
final class UpstreamFramingTests: XCTestCase {
    var backend: TestHTTPBackend!
    var harness: ClientHarness!

    override func setUpWithError() throws {
        backend = try TestHTTPBackend()
        harness = ClientHarness(baseURL: backend.baseURL, maxResponseBodyBytes: 1000)
    }

    override func tearDown() {
        harness.shutdown()
        backend.stop()
    }

    func get(_ path: String, method: String = "GET") -> UpstreamResult {
        harness.run(UpstreamRequest(method: method, pathAndQuery: path))
    }

    func testContentLengthAndChunkedBodiesAreCompleteByFraming() throws {
        let body = Array(String(repeating: "0123456789", count: 100).utf8)
        backend.setBehaviour(.respond(status: 200, headers: [], body: body, framing: .contentLength), forPath: "/cl")
        backend.setBehaviour(.respond(status: 200, headers: [], body: body, framing: .chunked), forPath: "/chunked")
        for path in ["/cl", "/chunked"] {
            let response = try XCTUnwrap(get(path).success, path)
            XCTAssertEqual(response.body, body, path)
            XCTAssertTrue(response.isCompleteByFraming, path)
        }
        XCTAssertEqual(get("/chunked").success?.headerValue("Transfer-Encoding"), "chunked")
    }

    func testResponsesWithoutBodyAreComplete() throws {
        backend.setBehaviour(.respond(status: 204, headers: [], body: [], framing: .closeDelimited), forPath: "/204")
        backend.setBehaviour(.raw(Array("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".utf8), close: false), forPath: "/304")
        for path in ["/204", "/304"] {
            let response = try XCTUnwrap(get(path).success, path)
            XCTAssertTrue(response.isCompleteByFraming, path)
            XCTAssertEqual(response.body, [])
        }
        backend.setBehaviour(.ok("body", framing: .closeDelimited), forPath: "/head")
        XCTAssertEqual(get("/head", method: "HEAD").success?.isCompleteByFraming, true)
    }

    func testCloseDelimitedBodySucceedsButIsNotProvenComplete() throws {
        backend.setBehaviour(.ok("until the end", framing: .closeDelimited), forPath: "/close")
        let response = try XCTUnwrap(get("/close").success)
        XCTAssertEqual(response.body, Array("until the end".utf8))
        XCTAssertFalse(response.isCompleteByFraming)
        // A transfer coding that is not chunked is also delimited by the close.
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nraw-bytes"
        backend.setBehaviour(.raw(Array(raw.utf8), close: true), forPath: "/te")
        let te = try XCTUnwrap(get("/te").success)
        XCTAssertFalse(te.isCompleteByFraming)
    }

    func testCloseInsideHeadersIsAnError() {
        backend.setBehaviour(.closeMidHeaders, forPath: "/cut")
        XCTAssertEqual(get("/cut").failure, .truncated)
        XCTAssertEqual(get("/cut").failure?.suggestedStatus, 502)
        // Status line only, no header terminator.
        backend.setBehaviour(.raw(Array("HTTP/1.1 200 OK\r\n".utf8), close: true), forPath: "/status-only")
        XCTAssertEqual(get("/status-only").failure, .truncated)
    }

    func testBodyShortOfContentLengthIsTruncated() {
        backend.setBehaviour(.closeMidBody(contentLength: 100, sentBytes: 40), forPath: "/short")
        XCTAssertEqual(get("/short").failure, .truncated)
        backend.setBehaviour(.closeMidBody(contentLength: 100, sentBytes: 0), forPath: "/none")
        XCTAssertEqual(get("/none").failure, .truncated)
    }

    func testBrokenOrCutChunkedBodyIsTruncated() {
        backend.setBehaviour(.brokenChunked, forPath: "/broken")
        XCTAssertEqual(get("/broken").failure, .truncated)
        backend.setBehaviour(.chunkedCutShort, forPath: "/cut")
        XCTAssertEqual(get("/cut").failure, .truncated)
    }

    func testEmptyReplyAndGarbageAreInvalid() {
        backend.setBehaviour(.raw([], close: true), forPath: "/empty")
        XCTAssertEqual(get("/empty").failure, .invalidResponse)
        backend.setBehaviour(.raw(Array("hello there\r\n\r\n".utf8), close: true), forPath: "/garbage")
        XCTAssertEqual(get("/garbage").failure, .invalidResponse)
        backend.setBehaviour(.raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".utf8), close: true), forPath: "/two-lengths")
        XCTAssertEqual(get("/two-lengths").failure, .invalidResponse)
        backend.setBehaviour(.raw(Array("HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n".utf8), close: true), forPath: "/bad-line")
        XCTAssertEqual(get("/bad-line").failure, .invalidResponse)
    }

    func testControlCharactersInTheResponseHeadAreInvalid() {
        // Each is one header line as the upstream sends it (CRLF included), or a whole status line.
        let lines: [(String, [UInt8])] = [
            ("bare CR in a value", Array("X-A: one\rX-Injected-CR: two\r\n".utf8)),
            ("CR before CRLF", Array("X-A: one\r\r\n".utf8)),
            ("NUL", Array("X-A: a".utf8) + [0x00] + Array("b\r\n".utf8)),
            ("VT", Array("X-A: a".utf8) + [0x0B] + Array("b\r\n".utf8)),
            ("ESC", Array("X-A: ".utf8) + [0x1B] + Array("[31mred\r\n".utf8)),
            ("DEL", Array("X-A: a".utf8) + [0x7F] + Array("\r\n".utf8)),
            ("control byte in a name", Array("X-".utf8) + [0x01] + Array("A: b\r\n".utf8)),
            ("bare CR in an obs-fold line", Array("X-A: one\r\n two\rX-Injected-CR: three\r\n".utf8)),
            ("NUL in an obs-fold line", Array("X-A: one\r\n\ttwo".utf8) + [0x00] + Array("\r\n".utf8)),
        ]
        var paths: [String] = []
        for (i, (name, line)) in lines.enumerated() {
            let raw = Array("HTTP/1.1 200 OK\r\n".utf8) + line + Array("Content-Length: 2\r\n\r\nok".utf8)
            backend.setBehaviour(.raw(raw, close: false), forPath: "/ctl\(i)")
            paths.append(name)
        }
        backend.setBehaviour(.raw(Array("HTTP/1.1 200 O\u{1}K\r\nContent-Length: 2\r\n\r\nok".utf8), close: false), forPath: "/reason")
        for (i, name) in paths.enumerated() {
            let result = get("/ctl\(i)")
            XCTAssertEqual(result.failure, .invalidResponse, name)
            XCTAssertEqual(result.failure?.suggestedStatus, 502, name)
            XCTAssertFalse(result.failure?.detail?.contains(where: { $0.isASCII && $0.asciiValue! < 0x20 }) ?? true,
                           "raw control bytes in the detail: \(name)")
        }
        XCTAssertEqual(get("/reason").failure, .invalidResponse, "control byte in the reason phrase")

        // What a field value may hold: VCHAR, SP, HTAB and obs-text.
        let allowed = Array("HTTP/1.1 200 OK\r\nX-Ok: a\tb ~!".utf8) + [0x80, 0xE9, 0xFF] + Array("\r\nContent-Length: 2\r\n\r\nok".utf8)
        backend.setBehaviour(.raw(allowed, close: false), forPath: "/allowed")
        XCTAssertEqual(get("/allowed").success?.headerValue("X-Ok"), "a\tb ~!\u{80}\u{E9}\u{FF}")
    }

    func testInformationalStatusesOtherThan100And103AreInvalid() {
        // libcurl itself switches protocols only when it asked to (h2c, WebSocket); an unasked 101
        // must not reach a client as the answer to a GET.
        let upgrade = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        backend.setBehaviour(.raw(Array(upgrade.utf8), close: false), forPath: "/101")
        let then200 = "\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        for status in ["102 Processing", "104 Upload Resumption Supported", "150 Whatever", "199 Last"] {
            let raw = "HTTP/1.1 \(status)" + then200
            backend.setBehaviour(.raw(Array(raw.utf8), close: false), forPath: "/\(status.prefix(3))")
        }
        for path in ["/101", "/102", "/104", "/150", "/199"] {
            let result = get(path)
            XCTAssertEqual(result.failure, .invalidResponse, path)
            XCTAssertEqual(result.failure?.suggestedStatus, 502, path)
        }
        XCTAssertEqual(get("/after").success?.status, 200, "the client recovers")
    }

    func testBodyOverTheLimitIsRefused() {
        let exactly = [UInt8](repeating: 7, count: 1000)
        let over = [UInt8](repeating: 7, count: 1001)
        backend.setBehaviour(.respond(status: 200, headers: [], body: exactly, framing: .contentLength), forPath: "/exact")
        backend.setBehaviour(.respond(status: 200, headers: [], body: over, framing: .contentLength), forPath: "/cl")
        backend.setBehaviour(.respond(status: 200, headers: [], body: over, framing: .chunked), forPath: "/chunked")
        backend.setBehaviour(.respond(status: 200, headers: [], body: over, framing: .closeDelimited), forPath: "/close")
        XCTAssertEqual(get("/exact").success?.body.count, 1000)
        for path in ["/cl", "/chunked", "/close"] {
            XCTAssertEqual(get(path).failure, .bodyTooLarge, path)
        }
        XCTAssertEqual(get("/exact").success?.body.count, 1000, "the client recovers")
    }

    func testHeaderSectionOverTheLimitIsInvalid() throws {
        let small = ClientHarness(UpstreamConfiguration(baseURL: backend.baseURL, maxResponseHeaderBytes: 1024))
        defer { small.shutdown() }
        let fields = (0..<40).map { (name: "X-Field-\($0)", value: String(repeating: "v", count: 40)) }
        backend.setBehaviour(.respond(status: 200, headers: fields, body: [], framing: .contentLength), forPath: "/many")
        XCTAssertEqual(small.run(UpstreamRequest(pathAndQuery: "/many")).failure, .invalidResponse)
        XCTAssertEqual(small.run(UpstreamRequest(pathAndQuery: "/few")).success?.status, 200)
    }

    func testTrailersAreNotHeaders() throws {
        let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n"
        backend.setBehaviour(.raw(Array(raw.utf8), close: false), forPath: "/trailer")
        let response = try XCTUnwrap(get("/trailer").success)
        XCTAssertEqual(response.body, Array("abc".utf8))
        XCTAssertNil(response.headerValue("X-Sum"))
        XCTAssertTrue(response.isCompleteByFraming)
    }

    func testErrorsDoNotPoisonLaterRequests() {
        backend.setBehaviour(.closeMidBody(contentLength: 10, sentBytes: 3), forPath: "/bad")
        for i in 0..<30 {
            if i % 3 == 0 {
                XCTAssertEqual(get("/bad").failure, .truncated)
            } else {
                XCTAssertEqual(get("/good").success?.body, Array("ok".utf8))
            }
        }
    }
}
