import GatewayHTTP
import XCTest

@testable import GatewayCore

final class LocalCacheTests: XCTestCase {
    private func entry(_ body: Int, expiresAt: UInt64 = .max) -> CachedResponse {
        CachedResponse(status: 200, headers: HTTPHeaders(), body: [UInt8](repeating: 1, count: body)[...], storedAt: 0, expiresAt: expiresAt)
    }

    func testExpiresAfterItsOwnTTLOrTheEntrysWhicheverIsFirst() {
        var cache = LocalCache(ttlMilliseconds: 1000, maxBytes: 1 << 20)
        cache.put("a", entry(10), now: 0)
        cache.put("b", entry(10, expiresAt: 300), now: 0)
        XCTAssertNotNil(cache.get("a", now: 999))
        XCTAssertNil(cache.get("a", now: 1000))
        XCTAssertNotNil(cache.get("b", now: 299))
        XCTAssertNil(cache.get("b", now: 300))
        XCTAssertEqual(cache.count, 0)
    }

    func testBoundedInBytesOldestFirst() {
        var cache = LocalCache(ttlMilliseconds: 10_000, maxBytes: 1000)
        for i in 0..<10 { cache.put("k\(i)", entry(200), now: 0) }
        XCTAssertLessThanOrEqual(cache.count, 4)
        XCTAssertNil(cache.get("k0", now: 1))
        XCTAssertNotNil(cache.get("k9", now: 1))
        cache.put("huge", entry(5000), now: 0)
        XCTAssertNil(cache.get("huge", now: 1), "an entry larger than the budget is not kept")
    }

    func testReplacingAKeyKeepsTheAccountingRight() {
        var cache = LocalCache(ttlMilliseconds: 10_000, maxBytes: 1000)
        for _ in 0..<100 { cache.put("same", entry(300), now: 0) }
        XCTAssertEqual(cache.count, 1)
        cache.put("other", entry(300), now: 0)
        XCTAssertEqual(cache.count, 2, "re-putting one key must not leak budget")
    }

    func testDisabledKeepsNothing() {
        var cache = LocalCache(ttlMilliseconds: 0, maxBytes: 1000)
        cache.put("a", entry(1), now: 0)
        XCTAssertNil(cache.get("a", now: 0))
    }
}
