import Dispatch
import Synchronization
import XCTest

@testable import GatewayCore

final class SingleFlightTests: XCTestCase {
    func testOneLeaderManyWaitersAllGetTheResult() {
        let flight = SingleFlight<Int>()
        let received = Mutex<[Int]>([])
        let leaderTokens = Mutex<[SingleFlight<Int>.Token]>([])
        DispatchQueue.concurrentPerform(iterations: 1000) { _ in
            if case .leader(let token) = flight.join("k", callback: { v in received.withLock { $0.append(v) } }) {
                leaderTokens.withLock { $0.append(token) }
            }
        }
        let leaders = leaderTokens.withLock { $0 }
        XCTAssertEqual(leaders.count, 1)
        flight.complete(leaders[0], with: 42, hold: false)
        XCTAssertEqual(received.withLock { $0 }, [Int](repeating: 42, count: 999))
        XCTAssertEqual(flight.count, 0)
    }

    func testHeldResultServesLateJoinersUntilReleased() {
        let flight = SingleFlight<String>()
        guard case .leader(let token) = flight.join("k", callback: { _ in }) else { return XCTFail("not leader") }
        flight.complete(token, with: "v", hold: true)
        guard case .finished("v") = flight.join("k", callback: { _ in XCTFail("callback after finish") }) else {
            return XCTFail("late joiner did not get the held result")
        }
        flight.release(token)
        guard case .leader = flight.join("k", callback: { _ in }) else { return XCTFail("no new flight after release") }
    }

    func testLeaveRemovesOnlyThatWaiter() {
        let flight = SingleFlight<Int>()
        let got = Mutex<[String]>([])
        guard case .leader(let token) = flight.join("k", callback: { _ in }) else { return XCTFail() }
        guard case .waiter(let a) = flight.join("k", callback: { _ in got.withLock { $0.append("a") } }) else { return XCTFail() }
        guard case .waiter = flight.join("k", callback: { _ in got.withLock { $0.append("b") } }) else { return XCTFail() }
        XCTAssertTrue(flight.leave("k", waiter: a))
        XCTAssertFalse(flight.leave("k", waiter: a))
        flight.complete(token, with: 1, hold: false)
        XCTAssertEqual(got.withLock { $0 }, ["b"])
    }

    func testStaleTokenCannotTouchNewerFlight() {
        let flight = SingleFlight<Int>()
        guard case .leader(let old) = flight.join("k", callback: { _ in }) else { return XCTFail() }
        flight.complete(old, with: 1, hold: false)
        guard case .leader(let new) = flight.join("k", callback: { _ in }) else { return XCTFail() }
        let woken = Mutex(0)
        _ = flight.join("k", callback: { _ in woken.withLock { $0 += 1 } })
        flight.release(old)
        flight.complete(old, with: 2, hold: false)
        XCTAssertEqual(woken.withLock { $0 }, 0, "an old leader must not complete a newer flight")
        flight.complete(new, with: 3, hold: false)
        XCTAssertEqual(woken.withLock { $0 }, 1)
    }

    func testAPurgeMarksFlightsAndHeldResultsAreNotHandedOut() {
        let flight = SingleFlight<String>()
        guard case .leader(let a) = flight.join("ka", tag: "/a", callback: { _ in }) else { return XCTFail() }
        guard case .leader(let b) = flight.join("kb", tag: "/b", callback: { _ in }) else { return XCTFail() }
        flight.complete(b, with: "b0", hold: true)
        flight.invalidate { _, tag in tag == "/a" || tag == "/b" }
        XCTAssertTrue(flight.isInvalidated(a), "a fetching flight is marked")
        XCTAssertTrue(flight.isInvalidated(b), "so is a held one")
        // The held pre-purge result is not handed to a late joiner: it leads a new flight.
        guard case .leader(let b2) = flight.join("kb", tag: "/b", callback: { _ in }) else { return XCTFail("got the purged result") }
        XCTAssertTrue(flight.isInvalidated(b), "the replaced flight still reads as purged")
        XCTAssertFalse(flight.isInvalidated(b2))
        flight.release(b)
        XCTAssertEqual(flight.count, 2, "releasing the old token leaves the new flight")
        XCTAssertFalse(flight.isInvalidated(flight.tryLead("kc", tag: "/c")!))
        // A refresh may replace a held result a purge matched, not one it did not.
        guard case .leader(let d) = flight.join("kd", tag: "/d", callback: { _ in }) else { return XCTFail() }
        flight.complete(d, with: "d0", hold: true)
        XCTAssertNil(flight.tryLead("kd"))
        flight.invalidate { _, tag in tag == "/d" }
        XCTAssertNotNil(flight.tryLead("kd"))
    }
}
