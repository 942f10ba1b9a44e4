import GatewayTestSupport
import XCTest

@testable import GatewayHTTP

// MARK: - Harness

/// A request reduced to comparable values.
struct RequestSnapshot: Equatable, CustomStringConvertible {
    struct Field: Equatable {
        var name: String
        var value: String
    }
    var method: String
    var target: String
    var path: String
    var query: String?
    var version: HTTPVersion
    var headers: [Field]
    var keepAlive: Bool
    var body: [UInt8]

    init(_ request: HTTPRequest) {
        method = request.head.method
        target = request.head.target
        path = request.head.path
        query = request.head.query
        version = request.head.version
        headers = request.head.headers.map { Field(name: $0.name, value: $0.value) }
        keepAlive = request.head.keepAlive
        body = request.body
    }

    init(
        _ method: String, _ target: String, path: String, query: String? = nil,
        version: HTTPVersion = .http1_1, headers: [(String, String)], keepAlive: Bool = true, body: [UInt8] = []
    ) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers.map { Field(name: $0.0, value: $0.1) }
        self.keepAlive = keepAlive
        self.body = body
    }

    var description: String {
        "\(method) \(target) [path \(path) query \(query ?? "nil")] \(version) keepAlive=\(keepAlive) "
            + "headers=\(headers.map { "\($0.name)=\($0.value)" }) body=\(String(decoding: body, as: UTF8.self))"
    }
}

enum EventSnapshot: Equatable {
    case expectContinue
    case request(RequestSnapshot)

    init(_ event: HTTPParserEvent) {
        switch event {
        case .expectContinue: self = .expectContinue
        case .request(let request): self = .request(RequestSnapshot(request))
        }
    }
}

/// Everything a feeding produced.
struct Outcome: Equatable {
    var events: [EventSnapshot] = []
    var error: HTTPParseError?
    var finalPhase: HTTPParserPhase = .idle
    var finalBufferedByteCount = 0

    var requests: [RequestSnapshot] {
        events.compactMap { if case .request(let r) = $0 { r } else { nil } }
    }
    var expectContinueCount: Int { events.filter { $0 == .expectContinue }.count }
}

enum Split: CustomStringConvertible {
    case whole
    case byteByByte
    /// Random piece sizes; after some pieces `next()` is not called (backpressure).
    case random(seed: UInt64)

    var description: String {
        switch self {
        case .whole: "whole"
        case .byteByByte: "byte by byte"
        case .random(let seed): "random split, seed \(seed)"
        }
    }

    static let standard: [Split] = [.whole, .byteByByte] + (1...24).map { .random(seed: $0) }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Calls `next()` until nil or an error.
func drain(_ parser: inout HTTPRequestParser, into outcome: inout Outcome) -> Bool {
    do throws(HTTPParseError) {
        while let event = try parser.next() { outcome.events.append(EventSnapshot(event)) }
        return true
    } catch {
        outcome.error = error
        return false
    }
}

/// Feeds `input` split as asked, draining after each piece (except skipped ones), then at the end.
func feed(_ input: [UInt8], _ split: Split, limits: HTTPParserLimits = HTTPParserLimits()) -> Outcome {
    var parser = HTTPRequestParser(limits: limits)
    var outcome = Outcome()
    var rng = SplitMix64(seed: 0)
    if case .random(let seed) = split { rng = SplitMix64(seed: seed) }
    var offset = 0
    var pieceNumber = 0
    while offset < input.count {
        let size: Int
        switch split {
        case .whole: size = input.count
        case .byteByByte: size = 1
        case .random: size = 1 + Int(rng.next() % (rng.next() % 5 == 0 ? 200 : 12))
        }
        let piece = Array(input[offset..<min(input.count, offset + size)])
        offset += piece.count
        pieceNumber += 1
        // Exercise both append entry points.
        if pieceNumber % 2 == 0 {
            piece.withUnsafeBytes { parser.append($0) }
        } else {
            parser.append(contentsOf: piece)
        }
        if case .random = split, rng.next() % 3 == 0 { continue }
        if !drain(&parser, into: &outcome) { return outcome }
    }
    if !drain(&parser, into: &outcome) { return outcome }
    outcome.finalPhase = parser.phase
    outcome.finalBufferedByteCount = parser.bufferedByteCount
    return outcome
}

/// A request built from parts, with Content-Length matching the body.
func message(_ requestLine: String, _ fields: [(String, String)], body: [UInt8] = []) -> [UInt8] {
    var text = requestLine + "\r\n"
    for (name, value) in fields { text += "\(name): \(value)\r\n" }
    return bytes(text + "\r\n") + body
}

// MARK: - Valid requests

final class HTTPRequestParserValidTests: XCTestCase {
    struct Case {
        var name: String
        var input: [UInt8]
        var expected: [RequestSnapshot]
    }

    static let browserFields: [(String, String)] = [
        ("Host", "gateway.example:8080"),
        ("Connection", "keep-alive"),
        ("sec-ch-ua", #""Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99""#),
        ("sec-ch-ua-mobile", "?0"),
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
        ("sec-ch-ua-platform", #""Linux""#),
        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
        ("Sec-Fetch-Site", "same-origin"),
        ("Sec-Fetch-Mode", "navigate"),
        ("Sec-Fetch-User", "?1"),
        ("Sec-Fetch-Dest", "document"),
        ("Referer", "http://gateway.example:8080/catalog?page=2"),
        ("Accept-Encoding", "gzip, deflate, br, zstd"),
        ("Accept-Language", "en-GB,en;q=0.9,fr;q=0.8"),
        ("Cookie", "session=3f9a1c2b7d; theme=dark; _ga=GA1.1.123456789.1700000000; cart=%7B%22n%22%3A2%7D"),
        ("If-None-Match", #"W/"5e-18f2a""#),
        ("If-Modified-Since", "Sat, 28 Nov 2026 10:00:00 GMT"),
        ("Cache-Control", "max-age=0"),
        ("Upgrade-Insecure-Requests", "1"),
        ("DNT", "1"),
    ]

    static var cases: [Case] {
        var cases: [Case] = []

        cases.append(Case(
            name: "curl",
            input: bytes("GET /index.html?x=1&y=%20z HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"),
            expected: [RequestSnapshot(
                "GET", "/index.html?x=1&y=%20z", path: "/index.html", query: "x=1&y=%20z",
                headers: [("Host", "localhost:8080"), ("User-Agent", "curl/7.88.1"), ("Accept", "*/*")])]))

        cases.append(Case(
            name: "wrk",
            input: bytes("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"),
            expected: [RequestSnapshot("GET", "/", path: "/", headers: [("Host", "127.0.0.1:8080")])]))

        // Browser-like: many fields, plus whitespace trimming, an empty value and UTF-8 obs-text.
        let fields = browserFields
        let quirks = "X-Padded: \t  value with  inner  spaces \t \r\nX-Empty:\r\nX-Tight:v\r\nX-Utf8: caf\u{E9} \u{2603}\r\n"
        var browser = message("GET /catalog/item-42?ref=home&sort=price%2Cdesc HTTP/1.1", fields)
        browser.removeLast(2)
        browser += bytes(quirks + "\r\n")
        cases.append(Case(
            name: "browser",
            input: browser,
            expected: [RequestSnapshot(
                "GET", "/catalog/item-42?ref=home&sort=price%2Cdesc", path: "/catalog/item-42",
                query: "ref=home&sort=price%2Cdesc",
                headers: fields + [
                    ("X-Padded", "value with  inner  spaces"), ("X-Empty", ""), ("X-Tight", "v"),
                    // UTF-8 is obs-text like any other: one scalar per byte, so it is written back as sent.
                    ("X-Utf8", String(String("caf\u{E9} \u{2603}").utf8.map { Character(Unicode.Scalar($0)) })),
                ])]))

        cases.append(Case(
            name: "HTTP/1.0 without Host, closes",
            input: bytes("GET /legacy HTTP/1.0\r\nUser-Agent: ApacheBench/2.3\r\n\r\n"),
            expected: [RequestSnapshot(
                "GET", "/legacy", path: "/legacy", version: .http1_0,
                headers: [("User-Agent", "ApacheBench/2.3")], keepAlive: false)]))

        cases.append(Case(
            name: "HTTP/1.0 keep-alive",
            input: bytes("HEAD /ab HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: x\r\n\r\n"),
            expected: [RequestSnapshot(
                "HEAD", "/ab", path: "/ab", version: .http1_0,
                headers: [("Connection", "Keep-Alive"), ("Host", "x")], keepAlive: true)]))

        let json = bytes(#"{"name":"widget","qty":12,"tags":["a","b"]}"#)
        let postFields = [
            ("Host", "api.local"), ("Content-Type", "application/json"), ("Content-Length", "\(json.count)"),
            ("Connection", "upgrade, Close"),
        ]
        cases.append(Case(
            name: "POST with Content-Length",
            input: message("POST /api/items?dry-run HTTP/1.1", postFields, body: json),
            expected: [RequestSnapshot(
                "POST", "/api/items?dry-run", path: "/api/items", query: "dry-run", headers: postFields,
                keepAlive: false, body: json)]))

        cases.append(Case(
            name: "Content-Length repeated with the same value",
            input: bytes("PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 3 , 3\r\ncontent-length: 003\r\n\r\nabc"),
            expected: [RequestSnapshot(
                "PUT", "/k", path: "/k", headers: [("Host", "h"), ("Content-Length", "3 , 3"), ("content-length", "003")],
                body: bytes("abc"))]))

        cases.append(Case(
            name: "chunked with extensions and trailers",
            input: bytes(
                "POST /upload HTTP/1.1\r\nHost: up.local\r\nTransfer-Encoding: Chunked\r\nTrailer: X-Checksum\r\n\r\n"
                    + "5;name=value\r\nhello\r\n"
                    + "6 ; q=\"a \\\"b\\\" c\";flag\t;x = y\r\n world\r\n"
                    + "00A\r\n0123456789\r\n"
                    + "0;last\r\nX-Checksum: abc\r\nX-More:  two \r\n\r\n"),
            expected: [RequestSnapshot(
                "POST", "/upload", path: "/upload",
                headers: [("Host", "up.local"), ("Transfer-Encoding", "Chunked"), ("Trailer", "X-Checksum")],
                body: bytes("hello world0123456789"))]))

        cases.append(Case(
            name: "chunked, empty body, gzip-free list with empty elements",
            input: bytes("POST /e HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked,\r\n\r\n0\r\n\r\n"),
            expected: [RequestSnapshot(
                "POST", "/e", path: "/e", headers: [("Host", "h"), ("Transfer-Encoding", ", chunked,")])]))

        cases.append(Case(
            name: "absolute-form",
            input: bytes(
                "GET http://example.com:8080/a/b?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"
                    + "HEAD HTTPS://Example.com HTTP/1.1\r\nHost: Example.com\r\n\r\n"
                    + "GET http://[::1]:80?x=%41 HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"),
            expected: [
                RequestSnapshot(
                    "GET", "http://example.com:8080/a/b?q=1", path: "/a/b", query: "q=1",
                    headers: [("Host", "example.com:8080")]),
                RequestSnapshot("HEAD", "HTTPS://Example.com", path: "/", headers: [("Host", "Example.com")]),
                RequestSnapshot("GET", "http://[::1]:80?x=%41", path: "/", query: "x=%41", headers: [("Host", "[::1]:80")]),
            ]))

        cases.append(Case(
            name: "OPTIONS *",
            input: bytes("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
            expected: [RequestSnapshot("OPTIONS", "*", path: "*", headers: [("Host", "h")])]))

        cases.append(Case(
            name: "queries: empty, with ?, pchar and sub-delims",
            input: bytes(
                "GET /? HTTP/1.1\r\nHost: h\r\n\r\n"
                    + "GET /a?b?c/d HTTP/1.1\r\nHost: h\r\n\r\n"
                    + "DELETE /p:@!$&'()*+,;=-._~%7e/x HTTP/1.1\r\nHost: h\r\n\r\n"),
            expected: [
                RequestSnapshot("GET", "/?", path: "/", query: "", headers: [("Host", "h")]),
                RequestSnapshot("GET", "/a?b?c/d", path: "/a", query: "b?c/d", headers: [("Host", "h")]),
                RequestSnapshot(
                    "DELETE", "/p:@!$&'()*+,;=-._~%7e/x", path: "/p:@!$&'()*+,;=-._~%7e/x", headers: [("Host", "h")]),
            ]))

        cases.append(Case(
            name: "pipelined, with empty lines before a request line",
            input: bytes(
                "\r\nGET /1 HTTP/1.1\r\nHost: p\r\n\r\n"
                    + "POST /2 HTTP/1.1\r\nHost: p\r\nContent-Length: 5\r\n\r\nhello"
                    + "\r\n\r\nPOST /3 HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                    + "GET /4?last HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n"),
            expected: [
                RequestSnapshot("GET", "/1", path: "/1", headers: [("Host", "p")]),
                RequestSnapshot(
                    "POST", "/2", path: "/2", headers: [("Host", "p"), ("Content-Length", "5")], body: bytes("hello")),
                RequestSnapshot(
                    "POST", "/3", path: "/3", headers: [("Host", "p"), ("Transfer-Encoding", "chunked")],
                    body: bytes("abc")),
                RequestSnapshot(
                    "GET", "/4?last", path: "/4", query: "last", headers: [("Host", "p"), ("Connection", "close")],
                    keepAlive: false),
            ]))

        cases.append(Case(
            name: "Content-Length: 0 and unknown method",
            input: bytes("PURGE /cache/x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
            expected: [RequestSnapshot(
                "PURGE", "/cache/x", path: "/cache/x", headers: [("Host", "h"), ("Content-Length", "0")])]))

        return cases
    }

    func testCorpusGivesTheSameRequestsHoweverItIsSplit() {
        for testCase in Self.cases {
            for split in Split.standard {
                let outcome = feed(testCase.input, split)
                let context = "\(testCase.name), \(split)"
                XCTAssertNil(outcome.error, context)
                XCTAssertEqual(outcome.requests, testCase.expected, context)
                XCTAssertEqual(outcome.expectContinueCount, 0, context)
                XCTAssertEqual(outcome.finalPhase, .idle, context)
                XCTAssertEqual(outcome.finalBufferedByteCount, 0, context)
            }
        }
    }

    func testWholeCorpusPipelinedInOneStream() {
        let all = Self.cases.flatMap(\.input)
        let expected = Self.cases.flatMap(\.expected)
        for split in [Split.whole, .byteByByte, .random(seed: 99), .random(seed: 100)] {
            let outcome = feed(all, split)
            XCTAssertNil(outcome.error, "\(split)")
            XCTAssertEqual(outcome.requests, expected, "\(split)")
        }
    }

    func testObsTextIsKeptOneScalarPerByte() {
        let input = bytes("GET / HTTP/1.1\r\nHost: h\r\nX-Latin1: caf") + [0xE9, 0x80, 0xFF] + bytes("\r\n\r\n")
        let outcome = feed(input, .byteByByte)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.requests.first?.headers.last, .init(name: "X-Latin1", value: "caf\u{E9}\u{80}\u{FF}"))
    }

    func testHeaderSectionExactlyAtTheLimitIsAccepted() {
        let head = bytes("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: 123\r\n\r\n")
        let exact = HTTPParserLimits(maxHeaderBytes: head.count, maxHeaderCount: 2, maxBodyBytes: 0)
        for split in [Split.whole, .byteByByte] {
            XCTAssertEqual(feed(head, split, limits: exact).requests.count, 1, "\(split)")
            let oneLess = HTTPParserLimits(maxHeaderBytes: head.count - 1, maxHeaderCount: 2, maxBodyBytes: 0)
            XCTAssertEqual(feed(head, split, limits: oneLess).error?.status, 431, "\(split)")
        }
    }

    func testBodyExactlyAtTheLimitIsAccepted() {
        let limits = HTTPParserLimits(maxHeaderBytes: 1024, maxHeaderCount: 10, maxBodyBytes: 10)
        let fixed = bytes("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789")
        let chunked = bytes("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n")
        for input in [fixed, chunked] {
            for split in [Split.whole, .byteByByte] {
                let outcome = feed(input, split, limits: limits)
                XCTAssertNil(outcome.error, "\(split)")
                XCTAssertEqual(outcome.requests.first?.body, bytes("0123456789"), "\(split)")
            }
        }
    }
}

// MARK: - Rejections

final class HTTPRequestParserRejectionTests: XCTestCase {
    static let small = HTTPParserLimits(maxHeaderBytes: 256, maxHeaderCount: 8, maxBodyBytes: 16)

    /// Asserts that `input` is rejected with `status` (and `reason`, if given), fed whole, byte by
    /// byte and in a random split, without yielding a request first.
    func assertRejected(
        _ input: [UInt8], status: Int, reason: String? = nil, limits: HTTPParserLimits = HTTPParserLimits(),
        file: StaticString = #filePath, line: UInt = #line
    ) {
        for split in [Split.whole, .byteByByte, .random(seed: 7)] {
            let outcome = feed(input, split, limits: limits)
            let context = "\(split): \(String(decoding: input.prefix(80), as: UTF8.self).debugDescription)"
            XCTAssertEqual(outcome.error?.status, status, context, file: file, line: line)
            XCTAssertEqual(outcome.requests, [], context, file: file, line: line)
            if let reason {
                XCTAssertEqual(outcome.error?.reason, reason, context, file: file, line: line)
            }
        }
    }

    func assertRejected(
        _ input: String, status: Int, reason: String? = nil, limits: HTTPParserLimits = HTTPParserLimits(),
        file: StaticString = #filePath, line: UInt = #line
    ) {
        assertRejected(bytes(input), status: status, reason: reason, limits: limits, file: file, line: line)
    }

    func request(target: String = "/", version: String = "HTTP/1.1", fields: String = "Host: h\r\n") -> String {
        "GET \(target) \(version)\r\n\(fields)\r\n"
    }

    // 400: request line

    func testInvalidMethodIs400() {
        assertRejected("GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", status: 400, reason: "method contains invalid character")
        assertRejected("G\u{7F}T / HTTP/1.1\r\nHost: h\r\n\r\n", status: 400)
        assertRejected(" GET / HTTP/1.1\r\nHost: h\r\n\r\n", status: 400, reason: "request line does not start with a method")
        assertRejected("GET\r\nHost: h\r\n\r\n", status: 400)
    }

    func testMalformedRequestLineIs400() {
        assertRejected("GET /\r\nHost: h\r\n\r\n", status: 400, reason: "request line has no HTTP version")
        assertRejected("GET  HTTP/1.1\r\nHost: h\r\n\r\n", status: 400, reason: "empty request-target")
        assertRejected("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", status: 400)
        assertRejected("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", status: 400, reason: "malformed HTTP version")
    }

    func testInvalidTargetCharactersAre400() {
        for target in [
            "/a b", "/a\u{01}b", "/a\tb", "/a#frag", "/a{b}", "/a|b", "/a\"b", "/a<b>", "/a\\b", "/a^b", "/a`b",
            "/a[0]",
        ] {
            assertRejected(request(target: target), status: 400)
        }
        assertRejected(request(target: "/a#frag"), status: 400, reason: "request-target contains invalid character")
        assertRejected(bytes("GET /caf") + [0xC3, 0xA9] + bytes(" HTTP/1.1\r\nHost: h\r\n\r\n"), status: 400)
        assertRejected(bytes("GET /x") + [0x80] + bytes(" HTTP/1.1\r\nHost: h\r\n\r\n"), status: 400)
    }

    func testBrowserStyleQueryCharactersAreAcceptedOnlyInTheQuery() throws {
        var parser = HTTPRequestParser()
        parser.append(contentsOf: bytes("GET /search?filter={\"a\"}&x=[1]|^`\\ HTTP/1.1\r\nHost: h\r\n\r\n".replacingOccurrences(of: "\"", with: "%22")))
        guard case .request(let parsed)? = try parser.next() else { return XCTFail("no request") }
        XCTAssertEqual(parsed.head.path, "/search")
        XCTAssertEqual(parsed.head.query, "filter={%22a%22}&x=[1]|^`\\")
        for target in ["/search?q=\"x\"", "/search?q=<b>", "/search?q=a#b"] {
            assertRejected(request(target: target), status: 400)
        }
    }

    func testInvalidPercentEncodingIs400() {
        for target in ["/a%zz", "/a%2", "/a%", "/a?%g0", "/%%41"] {
            assertRejected(request(target: target), status: 400, reason: "invalid percent-encoding in request-target")
        }
    }

    func testTargetFormsThatAreNotAllowedAre400() {
        assertRejected(
            request(target: "*"), status: 400, reason: "asterisk-form request-target is only allowed for OPTIONS")
        assertRejected(request(target: "example.com:80"), status: 400)
        assertRejected(request(target: "a/b"), status: 400)
        assertRejected(request(target: "ftp://h/x"), status: 400)
        assertRejected(request(target: "http://user@h/x"), status: 400)
        assertRejected(request(target: "http:///x"), status: 400, reason: "absolute-form request-target has no host")
        assertRejected(request(target: "http://h/a b"), status: 400)
        assertRejected(request(target: "http://h%zz/"), status: 400)
    }

    func testMalformedVersionIs400() {
        for version in ["HTTP/1", "http/1.1", "HTTP/1.1x", "HTTP/1.10", "HTTP/11", "HTTP/a.b", "HTTP/1,1", "HTTPS/1.1", "HTTP/ 1.1"] {
            assertRejected(request(version: version), status: 400, reason: "malformed HTTP version")
        }
    }

    // 505

    func testOtherWellFormedVersionsAre505() {
        for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/3.0", "HTTP/0.9", "HTTP/9.9"] {
            assertRejected(request(version: version), status: 505, reason: "HTTP version not supported")
        }
    }

    // 400: line endings

    func testBareCRIs400() {
        assertRejected("GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", status: 400)
        assertRejected("GET / HTTP/1.1\rHost: h\r\n\r\n", status: 400)
        assertRejected("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", status: 400)
        assertRejected("GET / HTTP/1.1\r\nHost: h\r\r\n\r\n", status: 400)
        assertRejected("GET / HTTP/1.1\r\nHost: h\r\nX\r: a\r\n\r\n", status: 400)
        assertRejected("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", status: 400)
    }

    func testBareLFIs400() {
        assertRejected("GET / HTTP/1.1\nHost: h\r\n\r\n", status: 400, reason: "line ends in bare LF")
        assertRejected("GET / HTTP/1.1\r\nHost: h\n\r\n", status: 400, reason: "line ends in bare LF")
        assertRejected("GET / HTTP/1.1\r\nHost: h\r\n\n", status: 400, reason: "line ends in bare LF")
        assertRejected("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", status: 400, reason: "line ends in bare LF")
    }

    // 400: field lines

    func testWhitespaceBeforeColonIs400() {
        assertRejected(request(fields: "Host : h\r\n"), status: 400, reason: "whitespace between header name and colon")
        assertRejected(request(fields: "Host: h\r\nContent-Length\t: 0\r\n"), status: 400)
    }

    func testObsFoldIs400() {
        assertRejected(request(fields: "Host: h\r\nX-A: 1\r\n  continued\r\n"), status: 400)
        assertRejected(request(fields: "Host: h\r\nX-A: 1\r\n\tcontinued\r\n"), status: 400)
        assertRejected(request(fields: " Host: h\r\n"), status: 400)
    }

    func testInvalidHeaderNamesAre400() {
        assertRejected(request(fields: "Host: h\r\n: x\r\n"), status: 400, reason: "empty header name")
        assertRejected(request(fields: "Host: h\r\nX(A): 1\r\n"), status: 400, reason: "header name contains invalid character")
        assertRejected(request(fields: "Host: h\r\nX\u{7F}: 1\r\n"), status: 400)
        assertRejected(request(fields: "Host: h\r\nX/Y: 1\r\n"), status: 400)
        assertRejected(request(fields: "Host: h\r\nNoColon\r\n"), status: 400, reason: "header line has no colon")
        assertRejected(bytes("GET / HTTP/1.1\r\nHost: h\r\nN") + [0xC3, 0xA4] + bytes("me: 1\r\n\r\n"), status: 400)
    }

    func testControlCharactersInValuesAre400() {
        for control: UInt8 in [0x00, 0x01, 0x0B, 0x1B, 0x1F, 0x7F] {
            let input = bytes("GET / HTTP/1.1\r\nHost: h\r\nX-V: a") + [control] + bytes("b\r\n\r\n")
            assertRejected(input, status: 400, reason: "header value contains control character")
        }
    }

    func testHostRulesAre400() {
        assertRejected("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", status: 400, reason: "missing Host header")
        assertRejected(request(fields: "Host: a\r\nHost: a\r\n"), status: 400, reason: "more than one Host header")
        assertRejected(request(fields: "Host: a\r\nhost: b\r\n"), status: 400)
        assertRejected("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", status: 400)
        assertRejected(request(fields: "Host: a b\r\n"), status: 400, reason: "invalid Host header")
        assertRejected(request(fields: "Host: user@a\r\n"), status: 400)
        assertRejected(request(fields: "Host: a/b\r\n"), status: 400)
    }

    // 400: framing

    func testContentLengthWithTransferEncodingIs400() {
        let reason = "Content-Length and Transfer-Encoding together"
        assertRejected(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            status: 400, reason: reason)
        assertRejected(
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n",
            status: 400, reason: reason)
    }

    func testInvalidContentLengthIs400() {
        for value in ["+5", "-1", "0x10", "5 5", "", "5,", ",5", "1e3", "five", "5;", "\u{663}"] {
            assertRejected(request(fields: "Host: h\r\nContent-Length: \(value)\r\n"), status: 400)
        }
        assertRejected(request(fields: "Host: h\r\nContent-Length: 0x10\r\n"), status: 400, reason: "invalid Content-Length")
    }

    func testDifferingContentLengthsAre400() {
        let reason = "conflicting Content-Length values"
        assertRejected(request(fields: "Host: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n"), status: 400, reason: reason)
        assertRejected(request(fields: "Host: h\r\nContent-Length: 5, 6\r\n"), status: 400, reason: reason)
        assertRejected(request(fields: "Host: h\r\nContent-Length: 0\r\nContent-Length: 0, 1\r\n"), status: 400, reason: reason)
    }

    func testOverflowingContentLengthIs400() {
        assertRejected(
            request(fields: "Host: h\r\nContent-Length: 99999999999999999999\r\n"), status: 400, reason: "Content-Length too large")
        assertRejected(request(fields: "Host: h\r\nContent-Length: 9223372036854775808\r\n"), status: 400)
    }

    func testChunkedNotLastOrTwiceIs400() {
        assertRejected(
            request(fields: "Host: h\r\nTransfer-Encoding: chunked, chunked\r\n"), status: 400,
            reason: "chunked transfer coding given twice")
        assertRejected(
            request(fields: "Host: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), status: 400)
        assertRejected(
            request(fields: "Host: h\r\nTransfer-Encoding: chunked, gzip\r\n"), status: 400,
            reason: "chunked is not the last transfer coding")
        assertRejected(request(fields: "Host: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"), status: 400)
        assertRejected(request(fields: "Host: h\r\nTransfer-Encoding: chunked;q=1\r\n"), status: 400)
        assertRejected(request(fields: "Host: h\r\nTransfer-Encoding: \r\n"), status: 400, reason: "empty Transfer-Encoding")
        assertRejected(request(fields: "Host: h\r\nTransfer-Encoding: \"chunked\"\r\n"), status: 400)
    }

    func testTransferEncodingInHTTP10Is400() {
        assertRejected(
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400,
            reason: "Transfer-Encoding in an HTTP/1.0 request")
    }

    // 501

    func testUnsupportedTransferCodingsAre501() {
        for value in ["gzip", "identity", "gzip, chunked", "deflate,chunked", "x-custom"] {
            assertRejected(
                request(fields: "Host: h\r\nTransfer-Encoding: \(value)\r\n"), status: 501,
                reason: "transfer coding not supported")
        }
        assertRejected(request(fields: "Host: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), status: 501)
    }

    func testConnectIs501() {
        assertRejected(
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", status: 501,
            reason: "CONNECT is not supported")
    }

    // 400: chunked body

    func chunked(_ body: String) -> String {
        "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    }

    func testInvalidChunkSizesAre400() {
        assertRejected(chunked("G\r\nabc\r\n0\r\n\r\n"), status: 400, reason: "invalid chunk size")
        assertRejected(chunked("\r\n0\r\n\r\n"), status: 400, reason: "invalid chunk size")
        assertRejected(chunked("-1\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked(" 5\r\nhello\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked("0x5\r\nhello\r\n0\r\n\r\n"), status: 400)
        assertRejected(chunked("5\nhello\r\n0\r\n\r\n"), status: 400, reason: "line ends in bare LF")
    }

    func testOverflowingChunkSizeIs400() {
        assertRejected(chunked("FFFFFFFFFFFFFFFFFFFF\r\n"), status: 400, reason: "chunk size too large")
        assertRejected(chunked("10000000000000000\r\n"), status: 400, reason: "chunk size too large")
    }

    func testMissingCRLFAfterChunkDataIs400() {
        let reason = "chunk data not followed by CRLF"
        assertRejected(chunked("5\r\nhelloX\r\n0\r\n\r\n"), status: 400, reason: reason)
        assertRejected(chunked("5\r\nhello\rX0\r\n\r\n"), status: 400, reason: reason)
        assertRejected(chunked("5\r\nhello\n0\r\n\r\n"), status: 400, reason: reason)
        assertRejected(chunked("5\r\nhello0\r\n\r\n"), status: 400, reason: reason)
    }

    func testInvalidChunkExtensionsAre400() {
        for ext in [";", "; ", ";a=", ";=b", " ", ";a ", ";a=\"open", ";a=b c", ";a=\"x\u{01}\"", ";a,b"] {
            assertRejected(chunked("5\(ext)\r\nhello\r\n0\r\n\r\n"), status: 400)
        }
    }

    func testOverlongChunkExtensionsAre400() {
        let long = ";n=" + String(repeating: "x", count: 5000)
        assertRejected(chunked("5\(long)\r\nhello\r\n0\r\n\r\n"), status: 400, reason: "chunk size line too long")
        // Without its end: rejected while it arrives.
        assertRejected(chunked("5\(long)"), status: 400, reason: "chunk size line too long")
        let medium = ";n=" + String(repeating: "y", count: 1500)
        assertRejected(
            chunked("1\(medium)\r\na\r\n1\(medium)\r\nb\r\n1\(medium)\r\nc\r\n0\r\n\r\n"), status: 400,
            reason: "chunk extensions too long")
    }

    func testInvalidTrailerFieldsAre400() {
        assertRejected(chunked("0\r\nBad Name: x\r\n\r\n"), status: 400)
        assertRejected(chunked("0\r\nX-T: 1\r\n folded\r\n\r\n"), status: 400)
        assertRejected(chunked("0\r\nX-T: a\u{00}b\r\n\r\n"), status: 400)
        assertRejected(chunked("0\r\nX-T: 1\n\r\n"), status: 400, reason: "line ends in bare LF")
    }

    // 413

    func testContentLengthOverTheLimitIs413AsSoonAsTheHeadIsParsed() {
        let head = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n"
        assertRejected(head, status: 413, reason: "Content-Length exceeds the body limit", limits: Self.small)
        assertRejected(
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999\r\n\r\n", status: 413)
    }

    func testChunkedBodyOverTheLimitIs413() {
        assertRejected(
            chunked("8\r\n01234567\r\n9\r\n"), status: 413, reason: "chunked body exceeds the body limit",
            limits: Self.small)
        assertRejected(chunked("11\r\n"), status: 413, limits: Self.small)
        assertRejected(chunked("800001\r\n"), status: 413)
    }

    // 414

    func testOverlongRequestLineIs414() {
        let target = "/" + String(repeating: "a", count: 300)
        assertRejected(request(target: target), status: 414, reason: "request line too long", limits: Self.small)
        // Detected before the line ends.
        assertRejected("GET \(target)", status: 414, limits: Self.small)
    }

    // 417

    func testUnknownExpectationIs417() {
        for value in ["something", "100-continue-please", "200-ok", ""] {
            assertRejected(
                "POST / HTTP/1.1\r\nHost: h\r\nExpect: \(value)\r\nContent-Length: 1\r\n\r\nx", status: 417,
                reason: "unsupported expectation")
        }
    }

    // 431

    func testOverlongHeaderSectionIs431() {
        let many = (0..<7).map { "X-Field-\($0): \(String(repeating: "v", count: 30))\r\n" }.joined()
        assertRejected(
            request(fields: "Host: h\r\n" + many), status: 431, reason: "header section too large", limits: Self.small)
        // A single field line that never ends is rejected while it arrives.
        assertRejected(
            "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + String(repeating: "z", count: 400), status: 431, limits: Self.small)
        // A request line alone over the limit is 414, not 431; empty lines before it are bounded apart.
        assertRejected(
            String(repeating: "\r\n", count: 129) + "GET / HTTP/1.1\r\nHost: h\r\n\r\n", status: 400,
            reason: "too many empty lines before the request line", limits: Self.small)
    }

    func testTooManyFieldsIs431() {
        let nine = (0..<8).map { "X-\($0): 1\r\n" }.joined()
        assertRejected(request(fields: "Host: h\r\n" + nine), status: 431, reason: "too many header fields", limits: Self.small)
    }

    func testOverlongTrailerSectionIs431() {
        let big = "X-T: " + String(repeating: "t", count: 300) + "\r\n"
        assertRejected(chunked("0\r\n" + big + "\r\n"), status: 431, reason: "trailer section too large", limits: Self.small)
        assertRejected(chunked("0\r\n" + big), status: 431, limits: Self.small)
        let many = (0..<9).map { "T\($0): 1\r\n" }.joined()
        assertRejected(chunked("0\r\n" + many + "\r\n"), status: 431, reason: "too many trailer fields", limits: Self.small)
    }

    // Error handling

    func testRequestBeforeAnErrorIsDeliveredAndTheErrorSticks() {
        var parser = HTTPRequestParser()
        parser.append(contentsOf: bytes("GET /ok HTTP/1.1\r\nHost: h\r\n\r\nGET /bad HTTP/9.0\r\n\r\nGET /never HTTP/1.1\r\nHost: h\r\n\r\n"))
        guard case .request(let first)? = try? parser.next() else { return XCTFail("first request expected") }
        XCTAssertEqual(first.head.path, "/ok")
        XCTAssertThrowsError(try parser.next()) { XCTAssertEqual(($0 as? HTTPParseError)?.status, 505) }
        XCTAssertThrowsError(try parser.next()) { XCTAssertEqual(($0 as? HTTPParseError)?.status, 505) }
    }

    func testErrorDescriptionNamesStatusAndReason() {
        let outcome = feed(bytes("GET / HTTP/2.0\r\n\r\n"), .whole)
        XCTAssertEqual(outcome.error?.description, "505 HTTP Version Not Supported: HTTP version not supported")
    }
}

// MARK: - Expect, backpressure, phase, buffer

final class HTTPRequestParserFlowTests: XCTestCase {
    static let expectHead = "POST /upload HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n"

    func next(_ parser: inout HTTPRequestParser, file: StaticString = #filePath, line: UInt = #line) -> EventSnapshot? {
        do throws(HTTPParseError) {
            return try parser.next().map(EventSnapshot.init)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
            return nil
        }
    }

    func testExpectContinueIsYieldedOnceBeforeTheBody() {
        var parser = HTTPRequestParser()
        parser.append(contentsOf: bytes(Self.expectHead))
        XCTAssertEqual(next(&parser), .expectContinue)
        XCTAssertNil(next(&parser))
        XCTAssertEqual(parser.phase, .body)
        parser.append(contentsOf: bytes("hel"))
        XCTAssertNil(next(&parser))
        parser.append(contentsOf: bytes("lo"))
        guard case .request(let request)? = next(&parser) else { return XCTFail("request expected") }
        XCTAssertEqual(request.body, bytes("hello"))
        XCTAssertNil(next(&parser))
        XCTAssertEqual(parser.phase, .idle)
    }

    func testExpectContinueByteByByteComesOnceAndFirst() {
        let input = bytes(Self.expectHead + "hello")
        let outcome = feed(input, .byteByByte)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.events.count, 2)
        XCTAssertEqual(outcome.events.first, .expectContinue)
        XCTAssertEqual(outcome.requests.first?.body, bytes("hello"))
    }

    func testExpectContinueForChunkedBody() {
        let head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        let outcome = feed(bytes(head + "5\r\nhello\r\n0\r\n\r\n"), .byteByByte)
        XCTAssertEqual(outcome.expectContinueCount, 1)
        XCTAssertEqual(outcome.events.first, .expectContinue)
        XCTAssertEqual(outcome.requests.map(\.body), [bytes("hello")])
    }

    func testNoExpectContinueWhenTheBodyIsAlreadyBuffered() {
        let outcome = feed(bytes(Self.expectHead + "hello"), .whole)
        XCTAssertEqual(outcome.events.count, 1)
        XCTAssertEqual(outcome.expectContinueCount, 0)
        XCTAssertEqual(outcome.requests.first?.body, bytes("hello"))
    }

    func testNoExpectContinueWithoutBodyOrForHTTP10() {
        let noBody = feed(bytes("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n"), .byteByByte)
        XCTAssertEqual(noBody.expectContinueCount, 0)
        XCTAssertEqual(noBody.requests.count, 1)
        let old = feed(bytes("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"), .byteByByte)
        XCTAssertEqual(old.expectContinueCount, 0)
        XCTAssertEqual(old.requests.map(\.body), [bytes("ok")])
    }

    func testPipelinedRequestsComeOutLaterWithoutAppending() {
        var parser = HTTPRequestParser()
        let input = bytes(
            "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                + "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                + "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n")
        input.withUnsafeBytes { parser.append($0) }
        guard case .request(let first)? = next(&parser) else { return XCTFail("request 1 expected") }
        XCTAssertEqual(first.path, "/1")
        XCTAssertEqual(parser.phase, .head)
        XCTAssertEqual(parser.bufferedByteCount, input.count - 28)

        // Later, no new bytes.
        guard case .request(let second)? = next(&parser) else { return XCTFail("request 2 expected") }
        XCTAssertEqual(second.path, "/2")
        XCTAssertEqual(second.body, bytes("abc"))
        guard case .request(let third)? = next(&parser) else { return XCTFail("request 3 expected") }
        XCTAssertEqual(third.path, "/3")
        XCTAssertNil(next(&parser))
        XCTAssertEqual(parser.phase, .idle)
        XCTAssertEqual(parser.bufferedByteCount, 0)
    }

    func testPhaseAndBufferedByteCount() {
        var parser = HTTPRequestParser()
        XCTAssertEqual(parser.phase, .idle)
        XCTAssertNil(next(&parser))
        XCTAssertEqual(parser.phase, .idle)

        parser.append(contentsOf: bytes("\r\n"))
        XCTAssertNil(next(&parser))
        XCTAssertEqual(parser.phase, .head, "skipped empty lines belong to the next request")
        XCTAssertEqual(parser.bufferedByteCount, 0)

        parser.append(contentsOf: bytes("POST / HT"))
        XCTAssertEqual(parser.phase, .head)
        XCTAssertNil(next(&parser))
        XCTAssertEqual(parser.bufferedByteCount, 9, "a partial line stays buffered")

        parser.append(contentsOf: bytes("TP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab"))
        XCTAssertNil(next(&parser))
        XCTAssertEqual(parser.phase, .body)
        XCTAssertEqual(parser.bufferedByteCount, 0, "body bytes move into the request")

        parser.append(contentsOf: bytes("cdGE"))
        guard case .request(let request)? = next(&parser) else { return XCTFail("request expected") }
        XCTAssertEqual(request.body, bytes("abcd"))
        XCTAssertEqual(parser.phase, .head)
        XCTAssertEqual(parser.bufferedByteCount, 2)
    }

    func testBufferStaysBoundedWhileStreamingManyPipelinedRequests() {
        let one = bytes("GET /stream HTTP/1.1\r\nHost: h\r\n\r\n")
        let stream = Array((0..<2000).map { _ in one }.joined())
        var parser = HTTPRequestParser()
        var outcome = Outcome()
        var offset = 0
        var largest = 0
        var round = 0
        while offset < stream.count {
            let end = min(stream.count, offset + 4096)
            parser.append(contentsOf: Array(stream[offset..<end]))
            offset = end
            largest = max(largest, parser.buffer.count)
            round += 1
            // Drain only every other read: the consumed prefix is not dropped on every append.
            if round % 2 == 0 { XCTAssertTrue(drain(&parser, into: &outcome)) }
        }
        XCTAssertTrue(drain(&parser, into: &outcome))
        XCTAssertEqual(outcome.requests.count, 2000)
        XCTAssertLessThanOrEqual(largest, 4 * 4096)
        XCTAssertEqual(parser.bufferedByteCount, 0)
    }

    func testPipelinedRequestsDoNotMoveTheRestOfTheBuffer() {
        // Ten requests in one append: consuming them advances the read index, the buffer is untouched.
        let one = bytes("GET /p HTTP/1.1\r\nHost: h\r\n\r\n")
        var parser = HTTPRequestParser()
        parser.append(contentsOf: Array((0..<10).map { _ in one }.joined()))
        for k in 1...3 {
            guard case .request? = next(&parser) else { return XCTFail("request \(k) expected") }
            XCTAssertEqual(parser.buffer.count, 10 * one.count)
            XCTAssertEqual(parser.readIndex, k * one.count)
        }
        // Less than half consumed: an append does not move the rest either.
        parser.append(contentsOf: one)
        XCTAssertEqual(parser.readIndex, 3 * one.count)
        XCTAssertEqual(parser.buffer.count, 11 * one.count)
        for k in 4...6 {
            guard case .request? = next(&parser) else { return XCTFail("request \(k) expected") }
        }
        // Now over half consumed: the next append drops the consumed prefix, once.
        parser.append(contentsOf: one)
        XCTAssertEqual(parser.readIndex, 0)
        XCTAssertEqual(parser.buffer.count, 6 * one.count)
        for k in 7...12 {
            guard case .request(let request)? = next(&parser) else { return XCTFail("request \(k) expected") }
            XCTAssertEqual(request.path, "/p")
        }
        XCTAssertNil(next(&parser))
        parser.append(contentsOf: bytes("G"))
        XCTAssertEqual(parser.buffer, bytes("G"), "a fully consumed buffer is reset on the next append")
    }
}

// MARK: - Consistency and byte helpers

final class HTTPRequestParserConsistencyTests: XCTestCase {
    /// Every one-byte mutation of some valid inputs gives the same outcome (requests, error status
    /// and reason) fed whole, byte by byte or randomly split.
    func testMutatedInputsGiveTheSameOutcomeHoweverSplit() {
        let seeds = [
            "GET /a?b=1 HTTP/1.1\r\nHost: h\r\nX-A:  v \r\n\r\n",
            "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.0\r\n\r\n",
            "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;e=\"q\"\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        ].map(bytes)
        let replacements: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x20, 0x22, 0x25, 0x2C, 0x3A, 0x3B, 0x41, 0x7F, 0x80]
        let limits = HTTPParserLimits(maxHeaderBytes: 96, maxHeaderCount: 4, maxBodyBytes: 8)
        var rejected = 0
        var mutations = 0
        for seed in seeds {
            for position in seed.indices {
                for replacement in replacements where seed[position] != replacement {
                    var input = seed
                    input[position] = replacement
                    mutations += 1
                    let whole = feed(input, .whole, limits: limits)
                    if whole.error != nil { rejected += 1 }
                    for split in [Split.byteByByte, .random(seed: UInt64(position))] {
                        let other = feed(input, split, limits: limits)
                        XCTAssertEqual(other.requests, whole.requests, "\(split) at \(position)")
                        XCTAssertEqual(other.error, whole.error, "\(split) at \(position): \(input)")
                    }
                }
            }
        }
        // The mutations must actually exercise the error paths.
        XCTAssertGreaterThan(rejected, mutations / 4, "\(rejected) of \(mutations) rejected")
        XCTAssertLessThan(rejected, mutations, "\(rejected) of \(mutations) rejected")
    }

    func testASCIISetConstantsMatchTheirDefinitions() {
        XCTAssertEqual(ASCIISet.token, ASCIISet(members: ASCIISet.tokenMembers))
        XCTAssertEqual(ASCIISet.pathQuery, ASCIISet(members: ASCIISet.pathQueryMembers))
        XCTAssertEqual(ASCIISet.authority, ASCIISet(members: ASCIISet.authorityMembers))
        for byte in UInt8(0x80)...UInt8(0xFF) {
            XCTAssertFalse(ASCIISet.token.contains(byte))
        }
        XCTAssertTrue(ASCIISet.token.contains(UInt8(ascii: "~")))
        XCTAssertFalse(ASCIISet.token.contains(UInt8(ascii: ":")))
        XCTAssertFalse(ASCIISet.pathQuery.contains(UInt8(ascii: "#")))
        XCTAssertFalse(ASCIISet.authority.contains(UInt8(ascii: "@")))
    }

    func testFieldValueCheckMatchesAByteLoop() {
        var rng = SplitMix64(seed: 7)
        let interesting: [UInt8] = [0x00, 0x09, 0x0A, 0x0D, 0x1F, 0x20, 0x7E, 0x7F, 0x80, 0xA0, 0xFF]
        var rejected = 0
        for length in 0..<40 {
            for _ in 0..<40 {
                var data = (0..<length).map { _ in UInt8(0x21 + rng.next() % 0x5E) }
                if length > 0 {
                    for _ in 0..<Int(rng.next() % 3) {
                        data[Int(rng.next() % UInt64(length))] = interesting[Int(rng.next() % UInt64(interesting.count))]
                    }
                }
                let expected = data.allSatisfy(ASCII.isFieldValueByte)
                if !expected { rejected += 1 }
                data.withUnsafeBufferPointer { buffer in
                    XCTAssertEqual(buffer.allFieldValueBytes(0..<length), expected, "\(data)")
                }
            }
        }
        XCTAssertGreaterThan(rejected, 100)
        for byte in UInt8(0)...UInt8(0xFF) {
            XCTAssertEqual(ASCII.isFieldValueByte(byte), byte == 0x09 || (byte >= 0x20 && byte != 0x7F), "\(byte)")
        }
    }

    func testFirstLineFeedMatchesALinearSearch() {
        var rng = SplitMix64(seed: 42)
        for length in 0..<48 {
            for _ in 0..<20 {
                var data = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next() % 256) }
                for i in data.indices where data[i] == ASCII.lf { data[i] = 0x0B }  // only planted LFs
                if length > 0 && rng.next() % 4 != 0 {
                    for _ in 0..<(1 + Int(rng.next() % 3)) { data[Int(rng.next() % UInt64(length))] = ASCII.lf }
                }
                let from = length == 0 ? 0 : Int(rng.next() % UInt64(length))
                data.withUnsafeBufferPointer { buffer in
                    XCTAssertEqual(
                        buffer.firstLineFeed(from: from, to: length),
                        data[from...].firstIndex(of: ASCII.lf), "length \(length) from \(from)")
                }
            }
        }
    }
}
