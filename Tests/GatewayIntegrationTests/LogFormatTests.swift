import Foundation
import GatewayCore
import GatewayHTTP
import Logging
import XCTest
@testable import GatewayRuntime

/// The formatters alone, on records and events a socket cannot produce (the parser refuses
/// quotes, controls and raw UTF-8 in a target; a log call can carry anything).
final class LogFormatTests: XCTestCase {
    private func record(target: String, requestID: String? = "rid-1") -> RequestRecord {
        RequestRecord(
            startedAt: 1_798_761_599_999, client: SocketAddress(host: "::1", port: 5000)!, method: "GET",
            target: target, status: 200, bodyBytes: 12, durationNanoseconds: 1_500_000, route: "catalog",
            cacheStatus: .hit, outcome: .hit, upstreamNanoseconds: nil, redisNanoseconds: 250_000,
            waitNanoseconds: nil, requestID: requestID)
    }

    private func line(_ r: RequestRecord, _ format: GatewayConfig.AccessLog.Format) -> String {
        var formatter = AccessLogFormatter(format: format, query: .keep)
        var out: [UInt8] = []
        formatter.append(r, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private let nasty = "/a\"b\\c\u{01}\u{7F}✓\r\n{\"status\":500} status=500 x\" rid=fake"

    func testJSONLineRoundTripsAnyPath() throws {
        let text = line(record(target: nasty), .json)
        XCTAssertTrue(text.hasSuffix("}\n"))
        XCTAssertEqual(text.filter { $0 == "\n" }.count, 1, "one line")
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(object["path"] as? String, nasty)
        XCTAssertEqual(object["status"] as? Int, 200)
        XCTAssertEqual(object["time"] as? String, "2026-12-31T23:59:59.999Z")
        XCTAssertEqual(object["client"] as? String, "::1")
        XCTAssertEqual(object["duration_ms"] as? Double, 1.5)
        XCTAssertEqual(object["redis_ms"] as? Double, 0.25)
        XCTAssertEqual(object["cache_status"] as? String, "CacheGateway; hit")
        XCTAssertNil(object["upstream_ms"])
        XCTAssertEqual(Set(object.keys), ["time", "client", "method", "path", "status", "bytes", "duration_ms", "route",
                                          "outcome", "cache_status", "redis_ms", "request_id"])
    }

    func testLogfmtLineRoundTripsAnyPath() throws {
        let text = line(record(target: nasty), .logfmt)
        XCTAssertEqual(text.filter { $0 == "\n" }.count, 1)
        let fields = try Logfmt.parse(String(text.dropLast()))
        XCTAssertEqual(fields["path"], nasty)
        XCTAssertEqual(fields["status"], "200", "the path's fake status=500 stays inside the path")
        XCTAssertEqual(fields["request_id"], "rid-1")
        XCTAssertEqual(fields["time"], "2026-12-31T23:59:59.999Z")
        XCTAssertEqual(fields["duration_ms"], "1.500")
    }

    func testCombinedLineCannotBeSplitByThePath() {
        let text = line(record(target: nasty), .combined)
        XCTAssertEqual(text, #"::1 - - [31/Dec/2026:23:59:59 +0000] "GET /a\x22b\x5cc\x01\x7f\xe2\x9c\x93\x0d\x0a{\x22status\x22:500} status=500 x\x22 rid=fake HTTP/1.1" 200 12 "-" "-" rt=0.002 urt=- rdt=0.000 wt=- cs="CacheGateway; hit" rid=rid-1 route=catalog outcome=hit"# + "\n")
        // Exactly the quotes the format puts there: the request's, referer, user agent, cs.
        XCTAssertEqual(text.filter { $0 == "\"" }.count, 8)
    }

    func testApplicationLogLinesInEachFormat() throws {
        let metadata: Logger.Metadata = ["request_id": "r1", "error": "timeout\n\"x\"", "message": "fake"]
        func line(_ format: GatewayConfig.Log.Format) -> String {
            String(decoding: StructuredLogHandler.line(time: 1_709_164_800_123, level: .warning, label: "gateway",
                                                       message: "upstream request failed", metadata: metadata, format: format),
                   as: UTF8.self)
        }
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line(.json).utf8)) as? [String: String])
        XCTAssertEqual(json, ["time": "2024-02-29T00:00:00.123Z", "level": "warning", "label": "gateway",
                              "message": "upstream request failed", "request_id": "r1", "error": "timeout\n\"x\"",
                              "meta.message": "fake"])
        XCTAssertEqual(line(.logfmt), #"time=2024-02-29T00:00:00.123Z level=warning label=gateway message="upstream request failed" error="timeout\n\"x\"" meta.message=fake request_id=r1"# + "\n")
        XCTAssertEqual(try Logfmt.parse(String(line(.logfmt).dropLast()))["error"], "timeout\n\"x\"")
        XCTAssertEqual(line(.text), #"2024-02-29T00:00:00.123Z warning gateway: upstream request failed error="timeout\n\"x\"" meta.message=fake request_id=r1"# + "\n")
    }
}
