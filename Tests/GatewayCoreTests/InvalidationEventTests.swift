import XCTest

@testable import GatewayCore

final class InvalidationEventTests: XCTestCase {
    private func parse(_ text: String) -> Result<InvalidationEvent, InvalidationEvent.Malformed> {
        InvalidationEvent.parse(Array(text.utf8))
    }

    func testJSONAndTextCommands() {
        XCTAssertEqual(try parse(#"{"purge": {"paths": ["/users/42/resources"], "routes": ["catalog"]}, "soft": true}"#).get(),
                       InvalidationEvent(paths: ["/users/42/resources"], routes: ["catalog"], soft: true))
        XCTAssertEqual(try parse(#"{"purge": {"paths": ["/a"], "tags": ["user:42"], "prefixes": ["/catalog/items/"]}, "sent_by": "django"}"#).get(),
                       InvalidationEvent(paths: ["/a"], tags: ["user:42"], prefixes: ["/catalog/items/"]), "unknown keys are ignored")
        XCTAssertEqual(try parse("purge /users/42/resources").get(), InvalidationEvent(paths: ["/users/42/resources"]))
        XCTAssertEqual(try parse("  purge-route catalog \n").get(), InvalidationEvent(routes: ["catalog"]))
    }

    func testMalformedMessagesSayWhy() {
        func reason(_ text: String) -> String? {
            if case .failure(let m) = parse(text) { return m.reason }
            return nil
        }
        XCTAssertEqual(reason("{"), "invalid JSON for an event")
        XCTAssertEqual(reason(#"{"purge": {"paths": "/a"}}"#), "invalid JSON for an event")
        XCTAssertEqual(reason(#"{"purge": {}}"#), "the event purges nothing")
        XCTAssertEqual(reason(#"{"purge": {"paths": ["a"]}}"#), "a purged path must start with /")
        XCTAssertEqual(reason("purge users/1"), "a purged path must start with /")
        XCTAssertEqual(reason("flush everything"), "unknown command")
        XCTAssertEqual(reason("purge"), "expected JSON or 'purge <path>' / 'purge-route <name>'")
    }

    func testSoftPurgeKeepsTheWindowLengthsFromNow() {
        let e = CachedResponse(status: 200, headers: .init(), body: [], storedAt: 0, expiresAt: 10_000,
                               staleWhileRevalidateUntil: 40_000, staleIfErrorUntil: 610_000)
        let soft = e.softPurged(at: 2_000)
        XCTAssertEqual(soft.expiresAt, 2_000)
        XCTAssertEqual(soft.staleWhileRevalidateUntil, 32_000)
        XCTAssertEqual(soft.staleIfErrorUntil, 602_000)
        XCTAssertEqual(soft.freshness(at: 2_001), .staleWhileRevalidate)
        XCTAssertEqual(e.softPurged(at: 20_000).expiresAt, 10_000, "already stale: unchanged")
    }
}
