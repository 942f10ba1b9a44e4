import GatewayHTTP
import XCTest

@testable import GatewayCore

final class CachedResponseTests: XCTestCase {
    private let sample = CachedResponse(
        status: 404,
        headers: HTTPHeaders([("Content-Type", "application/json"), ("X-Bin", "a\u{0}b")]),
        body: [0, 13, 10, 255, 1],
        storedAt: 1_764_000_000_123,
        expiresAt: 1_764_000_300_123
    )

    func testRoundTrip() {
        XCTAssertEqual(CachedResponse.decode(sample.encode()), sample)
        let empty = CachedResponse(status: 200, headers: HTTPHeaders(), body: [], storedAt: 0)
        XCTAssertEqual(CachedResponse.decode(empty.encode()), empty)
    }

    func testObsTextValuesRoundTrip() {
        // The HTTP parsers hand obs-text over as U+0080-U+00FF; the entry must give back those scalars.
        let latin1 = CachedResponse(
            status: 200, headers: HTTPHeaders([("X-Latin1", "caf\u{E9}\u{80}\u{FF}"), ("X-Other", "\u{2603}")]),
            body: [], storedAt: 1)
        let decoded = CachedResponse.decode(latin1.encode())
        XCTAssertEqual(decoded, latin1)
        XCTAssertEqual(decoded?.headers["X-Latin1"]?.unicodeScalars.map(\.value), [0x63, 0x61, 0x66, 0xE9, 0x80, 0xFF])
    }

    func testRejectsAnythingNotExactlyOneEntry() {
        let bytes = sample.encode()
        XCTAssertNil(CachedResponse.decode([]))
        XCTAssertNil(CachedResponse.decode(Array(bytes.dropLast())), "truncated")
        XCTAssertNil(CachedResponse.decode(bytes + [0]), "trailing byte")
        var otherVersion = bytes
        otherVersion[2] = 1  // the format before stale windows
        XCTAssertNil(CachedResponse.decode(otherVersion))
        XCTAssertNil(CachedResponse.decode(Array("plain text value".utf8)))
        // Every truncation point fails, none crashes.
        for n in 0..<bytes.count { XCTAssertNil(CachedResponse.decode(Array(bytes[0..<n]))) }
    }
}
