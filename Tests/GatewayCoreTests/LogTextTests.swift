import Foundation
import XCTest
@testable import GatewayCore

/// The log formats' building blocks: escaping that a parser reads back exactly, calendar time
/// from epoch milliseconds, fixed-point durations, query redaction.
final class LogTextTests: XCTestCase {
    private func json(_ s: String) -> String {
        var out: [UInt8] = []
        LogText.appendJSONString(s.utf8, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private func logfmt(_ s: String) -> String {
        var out: [UInt8] = []
        LogText.appendLogfmtValue(Array(s.utf8), to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private func combined(_ s: String) -> String {
        var out: [UInt8] = []
        LogText.appendCombinedEscaped(s.utf8, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private let nasty = "a\"b\\c\u{01}\u{1F}\u{7F}\td\r\ne ✓ \"}, \"status\": 200"

    func testJSONStringsParseBackExactly() throws {
        XCTAssertEqual(json("plain"), "\"plain\"")
        XCTAssertEqual(json("q\"b\\"), #""q\"b\\""#)
        XCTAssertEqual(json("\u{01}\n\u{7F}"), #""\u0001\n\u007f""#)
        for s in [nasty, "", "ü€𝄞", String(repeating: "\\\"", count: 50)] {
            let encoded = json(s)
            XCTAssertFalse(encoded.contains("\n"), "one line")
            let decoded = try JSONSerialization.jsonObject(with: Data(encoded.utf8), options: .fragmentsAllowed) as? String
            XCTAssertEqual(decoded, s)
        }
    }

    /// A collection without contiguous storage (a bridged or lazy view) takes the generic walk;
    /// it must write exactly what the buffer path writes.
    func testJSONStringsFromAnyCollectionMatchTheBufferPath() {
        for s in [nasty, "", "plain", "ü€𝄞", "\u{00}x\"", String(repeating: "ab\"", count: 40)] {
            var viaBuffer: [UInt8] = [], viaWalk: [UInt8] = []
            LogText.appendJSONString(Array(s.utf8), to: &viaBuffer)
            LogText.appendJSONString(s.utf8.lazy.map { $0 }, to: &viaWalk)
            XCTAssertEqual(viaBuffer, viaWalk)
            XCTAssertEqual(String(decoding: viaBuffer, as: UTF8.self), json(s))
        }
    }

    /// Random strings of every kind of byte, escapes at the start, the end and next to each
    /// other: the run-copying writer always gives what a byte-at-a-time one would.
    func testJSONStringsOfRandomBytesParseBackExactly() throws {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [Character] = ["a", "Z", "0", "/", "?", "=", "\"", "\\", "\n", "\r", "\t", "\u{01}", "\u{1F}", "\u{7F}", " ", "ü", "✓", "𝄞"]
        for _ in 0..<2_000 {
            let s = String((0..<Int.random(in: 0...24, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            let encoded = json(s)
            XCTAssertFalse(encoded.contains("\n") || encoded.contains("\r"), "one line: \(encoded)")
            let decoded = try JSONSerialization.jsonObject(with: Data(encoded.utf8), options: .fragmentsAllowed) as? String
            XCTAssertEqual(decoded, s, encoded)
        }
    }

    func testLogfmtValuesAreBareOnlyWhenSafe() {
        XCTAssertEqual(logfmt("/catalog/a?page=2"), #""/catalog/a?page=2""#, "= would split the pair")
        XCTAssertEqual(logfmt("/catalog/a"), "/catalog/a")
        XCTAssertEqual(logfmt(""), "\"\"")
        XCTAssertEqual(logfmt("a b"), "\"a b\"")
        XCTAssertEqual(logfmt("fake status=500"), "\"fake status=500\"")
        XCTAssertEqual(logfmt("ü"), "\"ü\"")
        XCTAssertEqual(logfmt(nasty), json(nasty), "quoted values use the JSON escapes")
        XCTAssertFalse(logfmt(nasty).contains("\n"))
    }

    func testCombinedEscapesLikeNginx() {
        XCTAssertEqual(combined(#"/a"b\c"#), #"/a\x22b\x5Cc"#.replacingOccurrences(of: "5C", with: "5c"))
        XCTAssertEqual(combined("\u{01}\n✓"), #"\x01\x0a\xe2\x9c\x93"#)
        XCTAssertEqual(combined("/plain?q=1"), "/plain?q=1")
    }

    func testCivilTimeFromEpochSeconds() {
        func t(_ s: Int64) -> [Int] {
            let c = LogText.CivilTime(secondsSince1970: s)
            return [c.year, c.month, c.day, c.hour, c.minute, c.second]
        }
        XCTAssertEqual(t(0), [1970, 1, 1, 0, 0, 0])
        XCTAssertEqual(t(951_782_400), [2000, 2, 29, 0, 0, 0], "2000 is a leap year (divisible by 400)")
        XCTAssertEqual(t(951_868_800), [2000, 3, 1, 0, 0, 0])
        XCTAssertEqual(t(1_709_164_800), [2024, 2, 29, 0, 0, 0])
        XCTAssertEqual(t(1_709_251_199), [2024, 2, 29, 23, 59, 59])
        XCTAssertEqual(t(1_740_787_200), [2025, 3, 1, 0, 0, 0], "2025 has no 29 February")
        XCTAssertEqual(t(4_107_542_400), [2100, 3, 1, 0, 0, 0], "2100 is not a leap year")
        XCTAssertEqual(t(1_798_761_599), [2026, 12, 31, 23, 59, 59])
        XCTAssertEqual(t(1_798_761_600), [2027, 1, 1, 0, 0, 0])
        XCTAssertEqual(t(946_684_799), [1999, 12, 31, 23, 59, 59])
        XCTAssertEqual(t(-1), [1969, 12, 31, 23, 59, 59])
    }

    func testCivilTimeAgreesWithGmtimeOverManyDays() {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var seconds = time_t(Int64.random(in: 0...4_102_444_800, using: &random))
            var tm = tm()
            gmtime_r(&seconds, &tm)
            let c = LogText.CivilTime(secondsSince1970: Int64(seconds))
            XCTAssertEqual([c.year, c.month, c.day, c.hour, c.minute, c.second],
                           [Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec)],
                           "\(seconds)")
        }
    }

    func testTimestampsWithMilliseconds() {
        var clock = LogText.Clock()
        func rfc(_ ms: UInt64) -> String {
            var out: [UInt8] = []
            clock.appendRFC3339(milliseconds: ms, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        func common(_ ms: UInt64) -> String {
            var out: [UInt8] = []
            clock.appendCommonLogTime(milliseconds: ms, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        XCTAssertEqual(rfc(1_798_761_599_999), "2026-12-31T23:59:59.999Z")
        XCTAssertEqual(rfc(1_798_761_599_007), "2026-12-31T23:59:59.007Z", "same second, cached prefix")
        XCTAssertEqual(rfc(1_798_761_600_000), "2027-01-01T00:00:00.000Z", "the next second recomputes")
        XCTAssertEqual(common(1_709_164_800_123), "29/Feb/2024:00:00:00 +0000")
        XCTAssertEqual(rfc(1_709_164_800_123), "2024-02-29T00:00:00.123Z")
    }

    func testDurations() {
        func ms(_ ns: UInt64) -> String {
            var out: [UInt8] = []
            LogText.appendMilliseconds(nanoseconds: ns, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        func s(_ ns: UInt64) -> String {
            var out: [UInt8] = []
            LogText.appendSeconds(nanoseconds: ns, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        XCTAssertEqual(ms(0), "0.000")
        XCTAssertEqual(ms(1_234_567), "1.235")
        XCTAssertEqual(ms(999_499), "0.999")
        XCTAssertEqual(ms(999_500), "1.000")
        XCTAssertEqual(ms(12_345_000_000), "12345.000")
        XCTAssertEqual(s(12_345_678), "0.012")
        XCTAssertEqual(s(1_999_600_000), "2.000")
        var out: [UInt8] = []
        LogText.appendDecimal(UInt64.max, to: &out)
        LogText.appendDecimal(-42, to: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "18446744073709551615-42")
    }

    func testQueryKeepRedactDrop() {
        func target(_ t: String, _ q: GatewayConfig.AccessLog.Query) -> String {
            var out: [UInt8] = []
            LogText.appendTarget(t, query: q, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
        XCTAssertEqual(target("/a?page=2&token=x", .keep), "/a?page=2&token=x")
        XCTAssertEqual(target("/a?page=2&token=x", .drop), "/a")
        XCTAssertEqual(target("/a?page=2&token=x=y&secret&&", .redact), "/a?page=REDACTED&token=REDACTED&REDACTED&&")
        XCTAssertEqual(target("/a?", .redact), "/a?")
        XCTAssertEqual(target("/a", .redact), "/a")
    }
}

final class LogConfigTests: XCTestCase {
    private let base = """
        listen: 127.0.0.1:8080
        upstream: { url: http://127.0.0.1:9000 }
        redis: { url: redis://127.0.0.1:6379/0 }
        routes: [{ name: all, match: "/**", class: pass }]

        """

    func testDefaultsOffAndValues() throws {
        let defaults = try GatewayConfig.parse(yaml: base, fileName: "gateway.yaml")
        XCTAssertEqual(defaults.accessLog, GatewayConfig.AccessLog(destination: .stdout, format: .json, query: .keep))
        XCTAssertEqual(defaults.log, GatewayConfig.Log(format: .text, destination: .stderr))
        XCTAssertNil(try GatewayConfig.parse(yaml: base + "access_log: off\n", fileName: "g").accessLog)
        let set = try GatewayConfig.parse(yaml: base + """
            access_log: { path: /var/log/gw/access.log, format: combined, query: redact }
            log: { format: logfmt, path: stdout }
            """, fileName: "g")
        XCTAssertEqual(set.accessLog, GatewayConfig.AccessLog(destination: .file("/var/log/gw/access.log"), format: .combined, query: .redact))
        XCTAssertEqual(set.log, GatewayConfig.Log(format: .logfmt, destination: .stdout))
    }

    func testErrorsNameLineAndField() {
        XCTAssertEqual(diagnostics(base + """
            access_log: { path: logs/access.log, format: apache, query: hide, color: true }
            log: { format: xml, path: "" }
            """), """
            gateway.yaml:5:21: error: access_log.path: expected stdout, stderr or an absolute file path, found "logs/access.log"
            gateway.yaml:5:46: error: access_log.format: expected json, logfmt or combined, found "apache"
            gateway.yaml:5:61: error: access_log.query: expected keep, redact or drop, found "hide"
            gateway.yaml:5:67: error: access_log: unknown key "color" (expected one of: path, format, query)
            gateway.yaml:6:16: error: log.format: expected text, json or logfmt, found "xml"
            gateway.yaml:6:27: error: log.path: expected stdout, stderr or an absolute file path, found ""
            """)
        XCTAssertEqual(diagnostics(base + "access_log: on\n"), """
            gateway.yaml:5:13: error: access_log: expected off or a mapping with path, format and query, found "on"
            """)
    }
}
