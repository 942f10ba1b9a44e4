import Foundation
import GatewayCore
import GatewayRuntime
import GatewayTestSupport
import XCTest

/// The access log as written by a running gateway to a file: one line per answer, parsed back
/// field by field, in each format; request IDs end to end.
final class AccessLogTests: GatewayTestCase {
    private var logPath = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(prefix)\(getpid()).log").path
    }

    override func tearDown() {
        super.tearDown()
        try? FileManager.default.removeItem(atPath: logPath)
    }

    private func start(format: String = "json", query: String = "keep") throws {
        try startGateway(extra: "access_log: { path: \(logPath), format: \(format), query: \(query) }")
    }

    private func lines() -> [String] {
        guard let data = FileManager.default.contents(atPath: logPath) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .dropLast().map(String.init)
    }

    /// Waits (bounded) for `count` lines, then parses each as JSON.
    private func jsonLines(_ count: Int) throws -> [[String: Any]] {
        XCTAssertTrue(waitUntil { lines().count >= count }, "\(lines().count) lines: \(lines())")
        return try lines().map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
            return try XCTUnwrap(object as? [String: Any], line)
        }
    }

    func testEachKindOfAnswerIsOneJSONLineWithItsFields() throws {
        backend.setBehaviour(.delayed(0.3, .ok("hot")), forPath: "/catalog/hot")
        backend.setBehaviour(.ok("passed"), forPath: "/other")
        backend.setBehaviour(.closeMidBody(contentLength: 100, sentBytes: 10), forPath: "/catalog/broken")
        try start()

        XCTAssertEqual(try burst(4) { _ in "/catalog/hot" }.map(\.status), [200, 200, 200, 200])
        XCTAssertEqual(try get("/catalog/hot").cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/other?x=1").status, 200)
        XCTAssertEqual(try get("/catalog/broken").status, 502)
        XCTAssertEqual(try get("/catalog/bad", headers: ["Connection": "Authorization"]).status, 400)

        let records = try jsonLines(8)
        XCTAssertEqual(records.count, 8)
        for r in records {
            let time = try XCTUnwrap(r["time"] as? String)
            XCTAssertNotNil(time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"#, options: .regularExpression), time)
            XCTAssertEqual(r["client"] as? String, "127.0.0.1")
            XCTAssertEqual(r["method"] as? String, "GET")
            XCTAssertNotNil(r["duration_ms"] as? Double)
            XCTAssertNotNil(r["request_id"] as? String)
        }
        func only(_ outcome: String) throws -> [String: Any] {
            let matching = records.filter { $0["outcome"] as? String == outcome }
            XCTAssertEqual(matching.count, 1, "\(outcome): \(records)")
            return try XCTUnwrap(matching.first)
        }
        let miss = try only("miss")
        XCTAssertEqual(miss["path"] as? String, "/catalog/hot")
        XCTAssertEqual(miss["status"] as? Int, 200)
        XCTAssertEqual(miss["bytes"] as? Int, 3)
        XCTAssertEqual(miss["route"] as? String, "catalog")
        XCTAssertEqual(miss["cache_status"] as? String, "CacheGateway; fwd=miss; stored")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(miss["upstream_ms"] as? Double), 300, "the backend's delay")
        XCTAssertNotNil(miss["redis_ms"] as? Double)
        XCTAssertNil(miss["wait_ms"])

        let shared = records.filter { ["collapsed", "hit"].contains($0["outcome"] as? String) && $0["path"] as? String == "/catalog/hot" }
        XCTAssertEqual(shared.count, 4, "three waiters and the later hit")
        let waiters = shared.filter { $0["outcome"] as? String == "collapsed" }
        XCTAssertFalse(waiters.isEmpty, "the burst collapsed onto the leader's fill")
        for waiter in waiters {
            XCTAssertNotNil(waiter["wait_ms"] as? Double)
            XCTAssertNil(waiter["upstream_ms"], "a waiter did not call the upstream")
        }

        let pass = try only("bypass")
        XCTAssertEqual(pass["path"] as? String, "/other?x=1")
        XCTAssertEqual(pass["route"] as? String, "rest")
        XCTAssertEqual(pass["bytes"] as? Int, 6)
        XCTAssertEqual(pass["cache_status"] as? String, "CacheGateway; fwd=bypass; detail=pass")

        let error = try only("error")
        XCTAssertEqual(error["status"] as? Int, 502)
        XCTAssertEqual(error["route"] as? String, "catalog")
        XCTAssertNotNil(error["upstream_ms"] as? Double)

        let refused = try only("rejected")
        XCTAssertEqual(refused["status"] as? Int, 400)
        XCTAssertTrue(refused["route"] is NSNull, "no route: null")
        XCTAssertTrue(refused["cache_status"] is NSNull)
    }

    /// The parser's own refusals never reach the gateway's handler; they are logged all the same,
    /// and nothing of the malformed bytes (here a credential in a header without a colon) is kept.
    func testAMalformedRequestIsOneRejectedLineWithoutItsBytes() throws {
        try start()
        let client = try TestClient(port: port, timeout: 5)
        try client.send("GET /catalog/a?token=leak-me HTTP/1.1\r\nHost: test\r\nAuthorization Bearer secret-token-123\r\n\r\n")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 400)
        XCTAssertTrue(client.waitForClose(), "a parse error closes the connection")

        let records = try jsonLines(1)
        XCTAssertEqual(records.count, 1, "\(records)")
        let r = try XCTUnwrap(records.first)
        XCTAssertEqual(r["status"] as? Int, 400)
        XCTAssertEqual(r["outcome"] as? String, "rejected")
        XCTAssertEqual(r["method"] as? String, "-")
        XCTAssertEqual(r["path"] as? String, "-")
        XCTAssertEqual(r["client"] as? String, "127.0.0.1")
        XCTAssertEqual(r["bytes"] as? Int, response.body.count, "the parser's reason, as sent")
        XCTAssertTrue(r["route"] is NSNull)
        XCTAssertTrue(r["cache_status"] is NSNull)
        for line in lines() {
            XCTAssertFalse(line.contains("secret-token-123"), line)
            XCTAssertFalse(line.contains("leak-me"), line)
        }
    }

    func testCredentialsNeverReachTheLog() throws {
        backend.setBehaviour(.ok("mine"), forPath: "/users/alice/resources")
        backend.setBehaviour(.ok("passed"), forPath: "/other")
        for format in ["json", "logfmt", "combined"] {
            try? FileManager.default.removeItem(atPath: logPath)
            try start(format: format)
            let secrets = ["Authorization": "Bearer secret-token-123", "Cookie": "session=s3cr3t"]
            XCTAssertEqual(try get("/users/alice/resources", headers: secrets).status, 200)
            XCTAssertEqual(try get("/other", headers: secrets).status, 200)
            XCTAssertEqual(try get("/catalog/a", headers: secrets).status, 200)
            XCTAssertTrue(waitUntil { lines().count == 3 }, "\(format): \(lines())")
            for line in lines() {
                XCTAssertFalse(line.contains("secret-token-123"), line)
                XCTAssertFalse(line.contains("s3cr3t"), line)
            }
            stopGateway()
        }
    }

    func testEscapedPathsRoundTripInJSONAndLogfmt() throws {
        // What the parser lets through: a backslash and browser characters in the query, and
        // percent-escapes of a quote, a control character, a newline and UTF-8 (kept encoded).
        let target = #"/other/%22%01%0A%E2%9C%93?q=a\b"c"#.replacingOccurrences(of: "\"c", with: "{}|^[]`")
        backend.setBehaviour(.ok("x"), forPath: "/other/%22%01%0A%E2%9C%93")
        try start(format: "json")
        XCTAssertEqual(try get(target).status, 200)
        XCTAssertEqual(try jsonLines(1).first?["path"] as? String, target)
        stopGateway()

        try FileManager.default.removeItem(atPath: logPath)
        try start(format: "logfmt")
        XCTAssertEqual(try get(target).status, 200)
        XCTAssertTrue(waitUntil { lines().count == 1 })
        let fields = try Logfmt.parse(try XCTUnwrap(lines().first))
        XCTAssertEqual(fields["path"], target)
        XCTAssertEqual(fields["outcome"], "bypass")
        XCTAssertEqual(fields["cache_status"], "CacheGateway; fwd=bypass; detail=pass")
        XCTAssertEqual(fields["status"], "200")
        XCTAssertNotNil(fields["upstream_ms"].flatMap(Double.init))
    }

    func testQueryRedactAndDrop() throws {
        backend.setBehaviour(.ok("p"), forPath: "/other")
        try start(query: "redact")
        XCTAssertEqual(try get("/other?page=2&token=abc&flag&=v").status, 200)
        XCTAssertEqual(try jsonLines(1).first?["path"] as? String, "/other?page=REDACTED&token=REDACTED&REDACTED&=REDACTED")
        stopGateway()

        try FileManager.default.removeItem(atPath: logPath)
        try start(format: "combined", query: "drop")
        XCTAssertEqual(try get("/other?page=2&token=abc").status, 200)
        XCTAssertTrue(waitUntil { lines().count == 1 })
        let line = try XCTUnwrap(lines().first)
        XCTAssertFalse(line.contains("token"), line)
        let pattern = #"^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /other HTTP/1\.1" 200 1 "-" "-" rt=\d+\.\d{3} urt=\d+\.\d{3} rdt=- wt=- cs="CacheGateway; fwd=bypass; detail=pass" rid=[0-9a-f]{16}-[0-9a-f]{8} route=rest outcome=bypass$"#
        XCTAssertNotNil(line.range(of: pattern, options: .regularExpression), line)
    }

    func testRequestIDIsKeptWhenValidReplacedWhenNotAndForwarded() throws {
        backend.setBehaviour(.ok("p"), forPath: "/other")
        backend.setBehaviour(.ok("c"), forPath: "/catalog/id")
        try start()

        let given = "abc-123_x.y:z+/=="
        let kept = try get("/other", headers: ["X-Request-ID": given])
        XCTAssertEqual(kept.header("X-Request-ID"), given)
        XCTAssertEqual(backend.lastRequest?.headerValues("X-Request-ID"), [given], "forwarded on a pass")

        let bad = try get("/catalog/id", headers: ["X-Request-ID": "a b<script>"])
        let replaced = try XCTUnwrap(bad.header("X-Request-ID"))
        XCTAssertNotEqual(replaced, "a b<script>")
        XCTAssertTrue(replaced.range(of: "^[0-9a-f]{16}-[0-9a-f]{8}$", options: .regularExpression) != nil, replaced)
        XCTAssertEqual(backend.lastRequest?.headerValues("X-Request-ID"), [replaced], "the fill carries the new ID, not the client's")

        let tooLong = String(repeating: "a", count: 129)
        XCTAssertNotEqual(try get("/other", headers: ["X-Request-ID": tooLong]).header("X-Request-ID"), tooLong)
        XCTAssertNotNil(try get("/healthz").header("X-Request-ID"), "the gateway's own endpoints too")

        let logged = try jsonLines(4).compactMap { $0["request_id"] as? String }
        // Each loop flushes its own buffer: lines are in order per loop, not across them.
        XCTAssertEqual(logged.count, 4)
        XCTAssertTrue(logged.contains(given) && logged.contains(replaced), "\(logged)")
        XCTAssertFalse(logged.contains("a b<script>"))
    }

    func testGeneratedIDsAreUniqueAcrossAThousandRequests() throws {
        try start()
        var seen = Set<String>()
        let client = try TestClient(port: port, timeout: 10)
        for _ in 0..<1000 {
            try client.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            seen.insert(try XCTUnwrap(try client.readResponse().header("X-Request-ID")))
        }
        XCTAssertEqual(seen.count, 1000)
        // No waiting: what the loops still buffer is written when the gateway stops.
        stopGateway()
        XCTAssertEqual(lines().count, 1000, "every answer logged")
        XCTAssertTrue(Set(try lines().map { try Self.requestID($0) }) == seen, "the logged IDs are the returned ones")
    }
}

extension AccessLogTests {
    static func requestID(_ line: String) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        return try XCTUnwrap(object?["request_id"] as? String, line)
    }
}

/// Reads the logfmt this gateway writes: `key=value` separated by spaces, values bare or quoted
/// with JSON escapes.
enum Logfmt {
    struct Malformed: Error { let line: String }

    static func parse(_ line: String) throws -> [String: String] {
        var fields: [String: String] = [:]
        var rest = Substring(line)
        while !rest.isEmpty {
            guard let equals = rest.firstIndex(of: "=") else { throw Malformed(line: line) }
            let key = String(rest[..<equals])
            rest = rest[rest.index(after: equals)...]
            if rest.first == "\"" {
                // The closing quote is the first one not escaped.
                var i = rest.index(after: rest.startIndex)
                var escaped = false
                while i < rest.endIndex {
                    if escaped { escaped = false } else if rest[i] == "\\" { escaped = true } else if rest[i] == "\"" { break }
                    i = rest.index(after: i)
                }
                guard i < rest.endIndex else { throw Malformed(line: line) }
                let quoted = rest[...i]
                let value = try JSONSerialization.jsonObject(with: Data(quoted.utf8), options: .fragmentsAllowed)
                fields[key] = try XCTUnwrap(value as? String)
                rest = rest[rest.index(after: i)...]
            } else {
                let end = rest.firstIndex(of: " ") ?? rest.endIndex
                fields[key] = String(rest[..<end])
                rest = rest[end...]
            }
            guard fields[key] != nil, rest.isEmpty || rest.first == " " else { throw Malformed(line: line) }
            rest = rest.drop { $0 == " " }
        }
        return fields
    }
}
