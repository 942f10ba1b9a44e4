import XCTest
@testable import GatewayRedis

final class ReconnectBackoffTests: XCTestCase {
    func testDoublesFromMinimumUpToMaximumAndResets() {
        let ms: UInt64 = 1_000_000
        var backoff = ReconnectBackoff(minimum: 50 * ms, maximum: 1_000 * ms)
        let delays = (0..<8).map { _ in backoff.nextDelay() / ms }
        XCTAssertEqual(delays, [50, 100, 200, 400, 800, 1_000, 1_000, 1_000])
        XCTAssertEqual(backoff.failures, 8)
        backoff.reset()
        XCTAssertEqual(backoff.nextDelay() / ms, 50)
    }

    func testNeverOverflows() {
        var backoff = ReconnectBackoff(minimum: UInt64.max / 3, maximum: UInt64.max)
        for _ in 0..<100 { XCTAssertGreaterThan(backoff.nextDelay(), 0) }
        var small = ReconnectBackoff(minimum: 7, maximum: 3)  // maximum raised to minimum
        XCTAssertEqual(small.nextDelay(), 7)
        XCTAssertEqual(small.nextDelay(), 7)
    }

    func testDurationNanoseconds() {
        XCTAssertEqual(Duration.milliseconds(250).clampedNanoseconds, 250_000_000)
        XCTAssertEqual(Duration.seconds(-1).clampedNanoseconds, 0)
        XCTAssertEqual(Duration.seconds(Int64.max).clampedNanoseconds, UInt64.max)
    }

    func testRingBufferKeepsOrderAcrossGrowth() {
        var ring = RingBuffer<Int>(initialCapacity: 2)
        var expected: [Int] = []
        var next = 0
        for round in 0..<50 {
            for _ in 0..<(round % 7 + 1) {
                ring.append(next)
                expected.append(next)
                next += 1
            }
            for _ in 0..<(round % 5) {
                XCTAssertEqual(ring.popFirst(), expected.isEmpty ? nil : expected.removeFirst())
            }
        }
        XCTAssertEqual(ring.count, expected.count)
        while let value = ring.popFirst() { XCTAssertEqual(value, expected.removeFirst()) }
        XCTAssertTrue(expected.isEmpty)
        XCTAssertNil(ring.first)
    }
}
