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

    /// A hot set re-stored every `local_ttl` never fills the byte budget; the FIFO must still not
    /// grow with every put (it did: 200 keys re-put 10,000 times left 2,000,000 records).
    func testRePuttingAHotSetKeepsTheOrderListBounded() {
        var cache = LocalCache(ttlMilliseconds: 100, maxBytes: 64 << 20)
        var now: UInt64 = 0
        for round in 0..<10_000 {
            for i in 0..<200 { cache.put("hot\(i)", entry(10), now: now) }
            now += 100
            if round % 1000 == 0 {
                XCTAssertLessThanOrEqual(cache.orderCount, 3 * cache.count + 64, "round \(round)")
            }
        }
        XCTAssertEqual(cache.count, 200)
        XCTAssertLessThanOrEqual(cache.orderCount, 3 * cache.count + 64)
        XCTAssertNotNil(cache.get("hot0", now: now - 1))
        XCTAssertNotNil(cache.get("hot199", now: now - 1))
    }

    func testExpiredEntriesReadAgainDoNotAccumulateRecords() {
        var cache = LocalCache(ttlMilliseconds: 10, maxBytes: 64 << 20)
        for step in 0..<50_000 {
            let now = UInt64(step) * 10
            XCTAssertNil(cache.get("k", now: now), "expired at each step")
            cache.put("k", entry(10), now: now)
        }
        XCTAssertLessThanOrEqual(cache.orderCount, 3 * cache.count + 64)
    }

    func testBoundedInEntriesOldestFirst() {
        var cache = LocalCache(ttlMilliseconds: 10_000, maxBytes: 64 << 20, maxEntries: 100)
        for i in 0..<1000 { cache.put("k\(i)", entry(10), now: 0) }
        XCTAssertEqual(cache.count, 100)
        XCTAssertNil(cache.get("k899", now: 1))
        XCTAssertNotNil(cache.get("k900", now: 1))
        XCTAssertNotNil(cache.get("k999", now: 1))
        XCTAssertLessThanOrEqual(cache.orderCount, 3 * cache.count + 64)
        // Re-putting a live key replaces it without evicting another.
        cache.put("k950", entry(10), now: 0)
        XCTAssertEqual(cache.count, 100)
        XCTAssertNotNil(cache.get("k900", now: 1))
    }

    func testDisabledKeepsNothing() {
        var cache = LocalCache(ttlMilliseconds: 0, maxBytes: 1000)
        cache.put("a", entry(1), now: 0)
        XCTAssertNil(cache.get("a", now: 0))
        var noEntries = LocalCache(ttlMilliseconds: 1000, maxBytes: 1000, maxEntries: 0)
        noEntries.put("a", entry(1), now: 0)
        XCTAssertNil(noEntries.get("a", now: 0))
    }

    // MARK: Coherence

    func testAwaitingTrackingTheTierIsBypassedThenServesOnceEstablished() {
        var cache = LocalCache(ttlMilliseconds: 300_000, maxBytes: 1 << 20, untrackedTTLMilliseconds: 0, coherence: .awaitingTracking)
        XCTAssertFalse(cache.isEnabled)
        cache.finishRead(cache.beginRead("a"), filling: entry(10), now: 0)
        XCTAssertNil(cache.get("a", now: 1), "nothing is kept before tracking is established")
        cache.trackingEstablished()
        XCTAssertTrue(cache.isEnabled)
        cache.finishRead(cache.beginRead("a"), filling: entry(10), now: 0)
        XCTAssertNotNil(cache.get("a", now: 299_999), "the tracked TTL is a long cap")
        XCTAssertNil(cache.get("a", now: 300_000))
        cache.finishRead(cache.beginRead("a"), filling: entry(10), now: 0)
        cache.trackingLost()
        XCTAssertNil(cache.get("a", now: 1), "flushed when tracking is lost")
        XCTAssertFalse(cache.isEnabled, "and bypassed until it is back")
        XCTAssertEqual(cache.readsInFlight, 0)
    }

    /// The GET's answer and the invalidation come on different connections: an answer that
    /// arrives after an invalidation of its key may predate the change, and must not be kept.
    func testAReadRacingAnInvalidationDoesNotFillTheTier() {
        var cache = LocalCache(ttlMilliseconds: 300_000, maxBytes: 1 << 20, coherence: .tracked)
        let early = cache.beginRead("a")
        cache.invalidate("a")
        let late = cache.beginRead("a")
        cache.finishRead(early, filling: entry(10), now: 0)
        XCTAssertNil(cache.get("a", now: 1), "read before the change: dropped")
        cache.finishRead(late, filling: entry(10), now: 0)
        XCTAssertNotNil(cache.get("a", now: 1), "read after the change was heard: kept")
        let other = cache.beginRead("b")
        cache.invalidate("a")
        cache.finishRead(other, filling: entry(10), now: 0)
        XCTAssertNotNil(cache.get("b", now: 1), "another key's invalidation does not matter")
        XCTAssertNil(cache.get("a", now: 1))
        XCTAssertEqual(cache.readsInFlight, 0, "the bookkeeping does not outlive the reads")
    }

    func testAReadRacingAFlushOrAPurgeDoesNotFillTheTier() {
        var cache = LocalCache(ttlMilliseconds: 300_000, maxBytes: 1 << 20, coherence: .tracked)
        let beforeFlush = cache.beginRead("a")
        cache.removeAll()
        cache.finishRead(beforeFlush, filling: entry(10), now: 0)
        XCTAssertNil(cache.get("a", now: 1))
        let beforeReconnect = cache.beginRead("a")
        cache.trackingLost()
        cache.trackingEstablished()
        cache.finishRead(beforeReconnect, filling: entry(10), now: 0)
        XCTAssertNil(cache.get("a", now: 1), "what was read while tracking was down may be stale")
        let beforePurge = cache.beginRead("x:a")
        cache.remove { $0.hasPrefix("x:") }
        cache.finishRead(beforePurge, filling: entry(10), now: 0)
        XCTAssertNil(cache.get("x:a", now: 1))
    }

    func testTrackingRefusedFallsBackToTheUntrackedTTL() {
        var cache = LocalCache(ttlMilliseconds: 300_000, maxBytes: 1 << 20, untrackedTTLMilliseconds: 0, coherence: .awaitingTracking)
        cache.trackingUnavailable(untrackedTTLMilliseconds: 1000)
        XCTAssertEqual(cache.coherence, .untracked)
        cache.put("a", entry(10), now: 0)
        XCTAssertNotNil(cache.get("a", now: 999))
        XCTAssertNil(cache.get("a", now: 1000), "a plain TTL, not the tracked cap")
        cache.trackingUnavailable(untrackedTTLMilliseconds: 0)
        XCTAssertFalse(cache.isEnabled, "no local_ttl in the file: off")
    }
}
