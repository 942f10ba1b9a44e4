import XCTest

@testable import GatewayUpstream

/// The response-head parser on its own: bytes in, head or error out, no sockets.
final class ResponseHeadParserTests: XCTestCase {
    private func parse(_ text: String, isHead: Bool = false, maxHeaderBytes: Int = 64 << 10) -> Result<ParsedHead, UpstreamError> {
        ResponseHeadParser.parse(Array(text.utf8), isHead: isHead, maxHeaderBytes: maxHeaderBytes)
    }

    private func head(_ bytes: [UInt8]) -> [UInt8] {
        Array("HTTP/1.1 200 OK\r\n".utf8) + bytes + Array("\r\nContent-Length: 0\r\n\r\n".utf8)
    }

    func testStatusFieldsAndFraming() throws {
        let parsed = try parse("HTTP/1.1 200 OK\r\nX-A:  one \t\r\nx-b: two\r\nContent-Length: 5\r\n\r\nhello").get()
        XCTAssertEqual(parsed.status, 200)
        XCTAssertEqual(parsed.headers.map(\.name), ["X-A", "x-b", "Content-Length"])
        XCTAssertEqual(parsed.headers.map(\.value), ["one", "two", "5"])
        XCTAssertEqual(parsed.framing, .contentLength(5))
        // Bare LF line ends, a status line without a reason, whitespace before the colon.
        let lf = try parse("HTTP/1.0 404\nX-A : b\n\n").get()
        XCTAssertEqual(lf.status, 404)
        XCTAssertEqual(lf.headers.first?.name, "X-A")
        XCTAssertEqual(lf.framing, .closeDelimited)
    }

    func testFramingFollowsRFC9112Section6_3() throws {
        let cases: [(String, String, BodyFraming)] = [
            ("no length", "HTTP/1.1 200 OK\r\n\r\n", .closeDelimited),
            ("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .chunked),
            ("chunked last", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", .chunked),
            ("other coding last", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .closeDelimited),
            ("TE beats CL", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", .chunked),
            ("CL list", "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n", .contentLength(7)),
            ("204", "HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", .none),
            ("304", "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", .none),
        ]
        for (name, text, framing) in cases {
            XCTAssertEqual(try parse(text).get().framing, framing, name)
        }
        XCTAssertEqual(try parse("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", isHead: true).get().framing, .none)
        for value in ["", "-1", "+1", "1 2", "0x10", "5,", "1234567890123456789", "\u{E9}"] {
            XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nContent-Length: \(value)\r\n\r\n").failure, .invalidResponse, value)
        }
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\t6\r\n\r\n").failure?.detail, "bad Content-Length '5?6'")
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").failure?.detail,
                       "conflicting Content-Length values")
    }

    func testInterim100And103AreSkippedAndOtherInformationalStatusesAreInvalid() throws {
        let parsed = try parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
            + "HTTP/1.1 201 Created\r\nX-Final: 1\r\n\r\n").get()
        XCTAssertEqual(parsed.status, 201)
        XCTAssertEqual(parsed.headers.map(\.name), ["X-Final"])

        for status in [101, 102, 104, 150, 199] {
            let result = parse("HTTP/1.1 \(status) Whatever\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            XCTAssertEqual(result.failure, .invalidResponse, "\(status)")
            XCTAssertEqual(result.failure?.detail, "unexpected informational status \(status)")
        }
        // After an interim response, a final one is still required.
        XCTAssertEqual(parse("HTTP/1.1 100 Continue\r\n\r\n").failure, .truncated)
    }

    func testEveryControlByteButHTABIsInvalidAnywhereInTheHead() {
        // LF included: inside a line it ends the line, and what follows is then no header line.
        let controls = Array(UInt8(0x00)...UInt8(0x1F)).filter { $0 != 0x09 } + [0x7F]
        for byte in controls {
            let label = "byte 0x\(String(byte, radix: 16))"
            XCTAssertEqual(ResponseHeadParser.parse(head(Array("X-A: a".utf8) + [byte] + Array("b".utf8)), isHead: false).failure,
                           .invalidResponse, "\(label) in a value")
            XCTAssertEqual(ResponseHeadParser.parse(head(Array("X-A: a\r\n b".utf8) + [byte] + Array("c".utf8)), isHead: false).failure,
                           .invalidResponse, "\(label) in an obs-fold line")
            XCTAssertEqual(ResponseHeadParser.parse(head(Array("X-".utf8) + [byte] + Array("A: b".utf8)), isHead: false).failure,
                           .invalidResponse, "\(label) in a name")
            let status = Array("HTTP/1.1 200 O".utf8) + [byte] + Array("K\r\n\r\n".utf8)
            XCTAssertEqual(ResponseHeadParser.parse(status, isHead: false).failure, .invalidResponse, "\(label) in the reason phrase")
        }
    }

    func testControlByteDetailNamesTheByteAndShowsNoRawControls() {
        let result = ResponseHeadParser.parse(head(Array("X-A: one\rX-Injected-CR: two".utf8)), isHead: false)
        XCTAssertEqual(result.failure?.detail, "control character 0x0D in header line 'X-A: one?X-Injected-CR: two'")
        let esc = ResponseHeadParser.parse(head(Array("X-A: ".utf8) + [0x1B, 0x5B, 0x32, 0x4A]), isHead: false)
        XCTAssertEqual(esc.failure?.detail, "control character 0x1B in header line 'X-A: ?[2J'")
    }

    func testVisibleBytesSpaceTabAndObsTextAreKeptOneScalarPerByte() throws {
        let allowed = [UInt8(0x09)] + Array(UInt8(0x20)...UInt8(0x7E)) + Array(UInt8(0x80)...UInt8(0xFF))
        let parsed = try ResponseHeadParser.parse(head(Array("X-All: <".utf8) + allowed + Array(">".utf8)), isHead: false).get()
        let value = try XCTUnwrap(parsed.headers.first?.value)
        XCTAssertEqual(value.unicodeScalars.map { UInt8($0.value) }, Array("<".utf8) + allowed + Array(">".utf8))
        XCTAssertEqual(value.unicodeScalars.count, allowed.count + 2)
    }

    func testObsFoldJoinsWithOneSpaceAndMayNotComeFirst() throws {
        let parsed = try parse("HTTP/1.1 200 OK\r\nX-F: a\r\n \t b \r\n\tc\r\n\r\n").get()
        XCTAssertEqual(parsed.headers.first?.value, "a b c")
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\n folded\r\n\r\n").failure?.detail, "continuation line before any header field")
    }

    func testObsFoldWithAnEmptySideLeavesTheValueTrimmed() throws {
        // Found by the fuzzer (Fuzz/corpus/response-head-parser/regression-*).
        XCTAssertEqual(try parse("HTTP/1.1 200 OK\r\nX-Folded: a\r\n \r\n\r\n").get().headers.first?.value, "a")
        XCTAssertEqual(try parse("HTTP/1.1 200 OK\r\nX-Folded:\r\n b\r\n\r\n").get().headers.first?.value, "b")
        XCTAssertEqual(try parse("HTTP/1.1 200 OK\r\nX-Folded:\r\n \r\n\r\n").get().headers.first?.value, "")
    }

    func testMalformedLinesAreInvalid() {
        for text in ["hello\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 099 Low\r\n\r\n",
                     "HTTP/11 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "HTTP/1.1 200 OK\r\n: empty\r\n\r\n",
                     "HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n", "HTTP/1.1 200 OK\r\nX(A): 1\r\n\r\n"] {
            XCTAssertEqual(parse(text).failure, .invalidResponse, text)
        }
    }

    func testHeaderSectionLimitCountsEveryByteOfTheFinalResponse() {
        let text = "HTTP/1.1 200 OK\r\nX-A: 12345\r\n\r\n"
        XCTAssertNotNil(parse(text, maxHeaderBytes: text.utf8.count).success)
        XCTAssertEqual(parse(text, maxHeaderBytes: text.utf8.count - 1).failure?.detail, "header section over \(text.utf8.count - 1) bytes")
        // An interim response counts on its own.
        let interim = "HTTP/1.1 100 Continue\r\n\r\n"
        XCTAssertNotNil(parse(interim + text, maxHeaderBytes: text.utf8.count).success)
    }

    func testBytesEndingInsideTheHeadAreTruncated() {
        XCTAssertEqual(parse("").failure, .truncated)
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nX-A: 1\r\n").failure, .truncated)
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\n\r").failure, .truncated, "an unterminated last line is not a line")
    }

    func testLineByLineAfterTheHeadAndAfterAnError() {
        var parser = ResponseHeadParser(isHead: false, maxHeaderBytes: 1024)
        func feed(_ line: String) -> Bool {
            Array(line.utf8).withUnsafeBytes { parser.consume(line: $0) }
        }
        XCTAssertTrue(feed("HTTP/1.1 200 OK"), "no line end needed")
        XCTAssertTrue(feed("Transfer-Encoding: chunked\r\n"))
        XCTAssertFalse(parser.isComplete)
        XCTAssertNil(parser.head)
        XCTAssertTrue(feed("\r\n"))
        XCTAssertEqual(parser.head?.framing, .chunked)
        XCTAssertTrue(feed("X-Trailer: \u{1}ignored\r\n"), "trailer lines are not looked at")
        XCTAssertEqual(parser.head?.headers.count, 1)

        var broken = ResponseHeadParser(isHead: false, maxHeaderBytes: 1024)
        XCTAssertFalse(Array("nonsense\r\n".utf8).withUnsafeBytes { broken.consume(line: $0) })
        XCTAssertFalse(Array("HTTP/1.1 200 OK\r\n".utf8).withUnsafeBytes { broken.consume(line: $0) }, "an error sticks")
        XCTAssertEqual(broken.error, .invalidResponse)
    }
}
