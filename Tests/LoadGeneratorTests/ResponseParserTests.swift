import XCTest

@testable import LoadGenerator

/// The response parser on its own: framing, split at every possible point.
final class ResponseParserTests: XCTestCase {
    private struct Parsed: Hashable {
        var status: Int
        var bodyBytes: Int
        var cacheStatus: String?
        var mustClose: Bool
        /// Bytes left over after the response.
        var leftover: Int
    }

    /// Feeds `text` in pieces of `piece` bytes; `eof` ends the input after it.
    private func parse(_ text: String, piece: Int = .max, head: Bool = false, eof: Bool = false) -> Parsed? {
        var parser = ResponseParser()
        parser.reset(isHeadRequest: head)
        let bytes = Array(text.utf8)
        var offset = 0
        var outcome = ResponseParser.Outcome.needMore
        while offset < bytes.count {
            let end = min(bytes.count, offset + piece)
            outcome = bytes[offset..<end].withUnsafeBytes { parser.feed($0) }
            if case let .complete(consumed) = outcome {
                offset += consumed
                break
            }
            if outcome == .invalid { return nil }
            offset = end
        }
        if eof, outcome == .needMore { outcome = parser.endOfInput() }
        guard case .complete = outcome else { return nil }
        let cache = parser.cacheStatus.map { String(decoding: parser.head[$0], as: UTF8.self) }
        return Parsed(status: parser.status, bodyBytes: parser.bodyBytes, cacheStatus: cache, mustClose: parser.mustClose,
                      leftover: bytes.count - offset)
    }

    private func parseAtEverySplit(_ text: String, head: Bool = false, eof: Bool = false) -> Set<Parsed?> {
        Set((1...text.utf8.count).map { parse(text, piece: $0, head: head, eof: eof) })
    }

    func testContentLength() {
        let r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Status: CacheGateway; hit \r\n\r\nhello"
        XCTAssertEqual(parseAtEverySplit(r), [Parsed(status: 200, bodyBytes: 5, cacheStatus: "CacheGateway; hit", mustClose: false, leftover: 0)])
    }

    func testChunkedWithExtensionsAndTrailers() {
        let r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
        XCTAssertEqual(parseAtEverySplit(r), [Parsed(status: 200, bodyBytes: 15, cacheStatus: nil, mustClose: false, leftover: 0)])
    }

    func testBodylessResponses() {
        XCTAssertEqual(parse("HTTP/1.1 204 No Content\r\n\r\n")?.bodyBytes, 0)
        XCTAssertEqual(parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")?.bodyBytes, 0)
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", head: true),
                       Parsed(status: 200, bodyBytes: 0, cacheStatus: nil, mustClose: false, leftover: 0))
    }

    func testInterimResponsesAreSkipped() {
        let r = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        XCTAssertEqual(parseAtEverySplit(r), [Parsed(status: 201, bodyBytes: 2, cacheStatus: nil, mustClose: false, leftover: 0)])
    }

    func testBodyUntilClose() {
        XCTAssertNil(parse("HTTP/1.1 200 OK\r\n\r\nabc"), "not complete before the close")
        XCTAssertEqual(parseAtEverySplit("HTTP/1.1 200 OK\r\n\r\nabc", eof: true),
                       [Parsed(status: 200, bodyBytes: 3, cacheStatus: nil, mustClose: true, leftover: 0)])
    }

    func testConnectionCloseAndHTTP10() {
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nconnection: Close\r\nContent-Length: 0\r\n\r\n")?.mustClose, true)
        XCTAssertEqual(parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")?.mustClose, true)
        XCTAssertEqual(parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")?.mustClose, false)
    }

    func testBytesAfterTheResponseAreLeftOver() {
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")?.leftover, 5)
    }

    func testTruncatedAndMalformedResponses() {
        XCTAssertNil(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", eof: true))
        XCTAssertNil(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n"))
        XCTAssertNil(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX"))
        XCTAssertNil(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n"))
        XCTAssertNil(parse("SSH-2.0-OpenSSH\r\n\r\n"))
        XCTAssertNil(parse("HTTP/1.1 2x0 OK\r\n\r\n"))
        XCTAssertNil(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"))
        XCTAssertNil(parse("HTTP/1.1 101 Switching Protocols\r\n\r\n"))
    }

    func testParserIsReusable() {
        var parser = ResponseParser()
        for body in ["a", "bb", "ccc"] {
            parser.reset(isHeadRequest: false)
            let bytes = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n\(body)".utf8)
            XCTAssertEqual(bytes.withUnsafeBytes { parser.feed($0) }, .complete(consumed: bytes.count))
            XCTAssertEqual(parser.bodyBytes, body.count)
        }
    }

    func testRequestEncoding() {
        let encoder = RequestEncoder(host: "127.0.0.1", port: 8080)
        var out: [UInt8] = []
        encoder.encode(LoadRequest(target: "/a?b=1", headers: [("Authorization", "Bearer x")]), into: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "GET /a?b=1 HTTP/1.1\r\nAuthorization: Bearer x\r\nHost: 127.0.0.1:8080\r\n\r\n")
        encoder.encode(LoadRequest(method: "POST", target: "/p", headers: [("host", "example")], body: Array("xyz".utf8)), into: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "POST /p HTTP/1.1\r\nhost: example\r\nContent-Length: 3\r\n\r\nxyz")
        XCTAssertEqual(String(decoding: RequestEncoder(host: "::1", port: 80).hostValue, as: UTF8.self), "[::1]:80")
    }
}

