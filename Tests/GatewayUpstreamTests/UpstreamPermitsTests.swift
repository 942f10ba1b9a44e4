import Dispatch
import Foundation
import GatewayTestSupport
import Synchronization
import XCTest

@testable import GatewayUpstream

/// One cap for several clients (one per event loop): the backend never sees more than `limit`.
final class UpstreamPermitsTests: XCTestCase {
    func testAPermitGoesToTheOldestWaiterThenBackToThePool() {
        let permits = UpstreamPermits(limit: 1, maxQueued: 2)
        let woken = Mutex<[Int]>([])
        let a = ObjectIdentifier(NSObject()), b = ObjectIdentifier(NSObject())
        XCTAssertEqual(permits.acquire(orWait: a) { woken.withLock { $0.append(0) } }, .acquired)
        XCTAssertEqual(permits.acquire(orWait: b) { woken.withLock { $0.append(1) } }, .queued)
        XCTAssertEqual(permits.acquire(orWait: a) { woken.withLock { $0.append(2) } }, .queued)
        XCTAssertEqual(permits.acquire(orWait: b) { woken.withLock { $0.append(3) } }, .full(running: 1, queued: 2))
        permits.release()
        XCTAssertEqual(woken.withLock { $0 }, [1], "handed over, not returned to the pool")
        XCTAssertEqual(permits.availableCount, 0)
        permits.cancelWaits(of: a)
        permits.release()
        XCTAssertEqual(woken.withLock { $0 }, [1], "a cancelled waiter is not woken")
        XCTAssertEqual(permits.availableCount, 1)
    }

    /// A reload lowers the cap from 3 to 1 while 3 transfers run: the new pool admits no one
    /// until those have given back enough permits, and then exactly one at a time.
    func testAHandOverCountsTheOldPoolsHeldPermitsAgainstTheNewLimit() {
        let old = UpstreamPermits(limit: 3, maxQueued: 4)
        let a = ObjectIdentifier(NSObject()), b = ObjectIdentifier(NSObject())
        let woken = Mutex<[Int]>([])
        for _ in 0..<3 { XCTAssertEqual(old.acquire(orWait: a) { XCTFail("not queued") }, .acquired) }
        XCTAssertEqual(old.acquire(orWait: a) { woken.withLock { $0.append(0) } }, .queued, "an old waiter")
        let new = UpstreamPermits(limit: 1, maxQueued: 4)
        old.handOver(to: new)
        XCTAssertEqual(new.availableCount, -2, "three held against a limit of one")
        XCTAssertEqual(new.acquire(orWait: b) { woken.withLock { $0.append(1) } }, .queued)
        XCTAssertEqual(old.acquire(orWait: a) { woken.withLock { $0.append(2) } }, .queued, "an old client asks the new pool")
        old.release()
        old.release()
        XCTAssertEqual(woken.withLock { $0 }, [], "two releases only pay the debt")
        old.release()
        XCTAssertEqual(woken.withLock { $0 }, [0], "the oldest waiter, the old pool's, goes first")
        new.release()
        new.release()
        XCTAssertEqual(woken.withLock { $0 }, [0, 1, 2])
        new.release()
        XCTAssertEqual(new.availableCount, 1, "steady state: exactly the new limit")
        XCTAssertEqual(new.acquire(orWait: b) { XCTFail("not queued") }, .acquired)
        XCTAssertEqual(old.acquire(orWait: a) { woken.withLock { $0.append(3) } }, .queued, "one at a time across both")
    }

    /// A higher limit frees permits at once: the old pool's waiters do not wait for a release.
    func testAHandOverToAHigherLimitWakesWaitersAtOnce() {
        let old = UpstreamPermits(limit: 1, maxQueued: 4)
        let a = ObjectIdentifier(NSObject())
        let woken = Mutex<[Int]>([])
        XCTAssertEqual(old.acquire(orWait: a) { XCTFail("not queued") }, .acquired)
        for i in 0..<3 { XCTAssertEqual(old.acquire(orWait: a) { woken.withLock { $0.append(i) } }, .queued) }
        let new = UpstreamPermits(limit: 3, maxQueued: 4)
        old.handOver(to: new)
        XCTAssertEqual(woken.withLock { $0 }, [0, 1], "two free permits, two waiters woken in order")
        XCTAssertEqual(new.availableCount, 0)
        old.cancelWaits(of: a)
        for _ in 0..<3 { old.release() }
        XCTAssertEqual(woken.withLock { $0 }, [0, 1], "a cancelled waiter is not woken, whichever pool it waits in")
        XCTAssertEqual(new.availableCount, 3)
    }

    func testTwoClientsSharingPermitsNeverExceedTheCap() throws {
        let backend = try TestHTTPBackend(defaultBehaviour: .delayed(0.1, .ok("slow")))
        defer { backend.stop() }
        let permits = UpstreamPermits(limit: 2, maxQueued: 100)
        let harnesses = (0..<2).map { _ in
            ClientHarness(UpstreamConfiguration(baseURL: backend.baseURL, maxConnections: 2, permits: permits))
        }
        defer { for h in harnesses { h.shutdown() } }
        let results = Mutex<[UpstreamResult]>([])
        let group = DispatchGroup()
        for harness in harnesses {
            group.enter()
            DispatchQueue.global().async {
                let r = harness.run((0..<5).map { UpstreamRequest(pathAndQuery: "/slow?i=\($0)") })
                results.withLock { $0 += r }
                group.leave()
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 20), .success)
        XCTAssertEqual(results.withLock { $0.filter { $0.success?.status == 200 }.count }, 10)
        XCTAssertEqual(backend.maxConcurrentRequests, 2)
        XCTAssertEqual(permits.availableCount, 2, "every permit came back")
    }

    func testShuttingDownOneClientLeaksNoPermit() throws {
        let backend = try TestHTTPBackend(defaultBehaviour: .delayed(0.2, .ok("slow")))
        defer { backend.stop() }
        let permits = UpstreamPermits(limit: 1, maxQueued: 100)
        let first = ClientHarness(UpstreamConfiguration(baseURL: backend.baseURL, maxConnections: 1, permits: permits))
        let second = ClientHarness(UpstreamConfiguration(baseURL: backend.baseURL, maxConnections: 1, permits: permits))
        defer { second.shutdown() }
        // The first client holds the permit and has more waiting; then it shuts down.
        let failed = DispatchSemaphore(value: 0)
        first.queue.async { [client = first.client] in
            for i in 0..<3 {
                client.execute(UpstreamRequest(pathAndQuery: "/slow?i=\(i)")) { _ in failed.signal() }
            }
        }
        XCTAssertTrue(eventually { backend.requestCount(forPath: "/slow") == 1 })
        first.shutdown()
        for _ in 0..<3 { XCTAssertEqual(failed.wait(timeout: .now() + 5), .success) }
        let result = second.run(UpstreamRequest(pathAndQuery: "/after"), timeout: 5)
        XCTAssertEqual(result.success?.status, 200)
        XCTAssertTrue(eventually { permits.availableCount == 1 })
    }
}
