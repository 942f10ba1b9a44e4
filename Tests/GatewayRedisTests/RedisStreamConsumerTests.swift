import Dispatch
import Foundation
import GatewayRedis
import GatewayTestSupport
import Logging
import XCTest

/// RedisStreamConsumer against a real redis-server (from RedisTestCase). Timings are shortened so
/// that retries, claims and lag polls happen within a test; every wait is a poll with a deadline.
final class RedisStreamConsumerTests: RedisTestCase {
    private var consumers: [RedisStreamConsumer] = []

    override func tearDown() {
        for consumer in consumers { consumer.stop() }
        consumers = []
        super.tearDown()
    }

    /// Every handler call, in order: (consumer name, entry ID, value of field "v").
    private let calls = Locked<[(consumer: String, id: String, value: String)]>([])

    private func makeConsumer(
        _ name: String, claimIdle: Duration = .seconds(30), batchSize: Int = 100,
        decide: @escaping @Sendable (_ id: String, _ value: String, _ completion: @escaping @Sendable (RedisStreamConsumer.Outcome) -> Void) -> Void
    ) -> RedisStreamConsumer {
        let configuration = RedisStreamConsumer.Configuration(
            stream: "inval", group: "gw-1", consumer: name, batchSize: batchSize, block: .milliseconds(200),
            claimIdle: claimIdle, claimInterval: .milliseconds(200), retryDelay: .milliseconds(300),
            lagPollInterval: .milliseconds(200))
        let calls = self.calls
        let consumer = RedisStreamConsumer(
            redis: RedisConfiguration(port: server.port, reconnectBackoffMin: .milliseconds(20), reconnectBackoffMax: .milliseconds(200)),
            configuration: configuration, liveness: RedisLiveness(replyTimeout: .seconds(1)), logger: makeLogger()
        ) { id, fields, completion in
            let value = fields.first { $0.0 == "v" }.map { String(decoding: $0.1, as: UTF8.self) } ?? ""
            calls.mutate { $0.append((name, id, value)) }
            decide(id, value, completion)
        }
        consumers.append(consumer)
        consumer.start()
        return consumer
    }

    private func stop(_ consumer: RedisStreamConsumer) {
        consumer.stop()
        consumers.removeAll { $0 === consumer }
    }

    /// XADDs `values` over one connection; returns their IDs.
    private func add(_ values: [String]) throws -> [String] {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        return try values.map { value in
            let reply = send(connection, ["XADD", "inval", "*", "v", value])
            guard case .success(.string(let id))? = reply else {
                // A failed XADD is a failed test, never a skip: the server is the test's own.
                throw XADDFailed(reply: "\(String(describing: reply))")
            }
            return String(decoding: id, as: UTF8.self)
        }
    }

    private func pendingCount() throws -> Int { Int(try server.cli("XPENDING", "inval", "gw-1").first ?? "") ?? -1 }

    private func poll(_ timeout: TimeInterval = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    func testEntriesAddedWhileStoppedAreAllAppliedOnceInOrderAndAcknowledged() throws {
        // The group exists from an earlier run of this instance (a new group starts at `$`).
        let first = makeConsumer("a") { _, _, done in done(.applied) }
        XCTAssertTrue(poll { first.snapshot.isConnected })
        stop(first)

        let ids = try add((0..<100).map { "e\($0)" })
        let started = Date()
        let consumer = makeConsumer("a") { _, _, done in DispatchQueue.global().async { done(.applied) } }
        XCTAssertTrue(poll { consumer.snapshot.applied == 100 })
        print("100 entries applied in \(Date().timeIntervalSince(started)) s")
        XCTAssertEqual(calls.mutate { $0.map(\.id) }, ids, "each once, in stream order")
        XCTAssertEqual(consumer.snapshot.lastID, ids.last)
        XCTAssertTrue(poll { (try? self.pendingCount()) == 0 }, "all acknowledged")
        XCTAssertEqual(consumer.snapshot.retried, 0)
        XCTAssertEqual(consumer.snapshot.poison, 0)
    }

    func testRetriedEntryIsDeliveredAgainAfterTheRetryDelayAndAcknowledgedOnceApplied() throws {
        let attempts = Locked<[Date]>([])
        let consumer = makeConsumer("a") { _, value, done in
            guard value == "flaky" else { return done(.applied) }
            let n = attempts.mutate { a in
                a.append(Date())
                return a.count
            }
            done(n < 3 ? .retry : .applied)
        }
        XCTAssertTrue(poll { consumer.snapshot.isConnected })
        let ids = try add(["flaky", "after"])
        XCTAssertTrue(poll { consumer.snapshot.applied == 2 })
        let times = attempts.mutate { $0 }
        XCTAssertEqual(times.count, 3)
        for (earlier, later) in zip(times, times.dropFirst()) {
            XCTAssertGreaterThan(later.timeIntervalSince(earlier), 0.25, "re-delivered after the retry delay, not in a tight loop")
        }
        XCTAssertEqual(consumer.snapshot.retried, 2)
        XCTAssertEqual(calls.mutate { $0.map(\.id) }, [ids[0], ids[1], ids[0], ids[0]], "the entry behind it is not held up")
        XCTAssertTrue(poll { (try? self.pendingCount()) == 0 })
    }

    func testEntryReadButNotAcknowledgedBeforeACrashIsAppliedAgainBySameNameOrClaimedByAnother() throws {
        // "Crash" 1: the handler never completes; the consumer is stopped with the entry pending.
        let crashing = makeConsumer("a") { _, _, _ in }
        XCTAssertTrue(poll { crashing.snapshot.isConnected })
        let first = try add(["one"])[0]
        XCTAssertTrue(poll { self.calls.mutate { $0.count } == 1 })
        let stopping = Date()
        stop(crashing)
        XCTAssertLessThan(Date().timeIntervalSince(stopping), 2, "stop() does not wait for a handler that never completes")
        XCTAssertEqual(try pendingCount(), 1)

        // The same name reads its pending entries first thing after starting.
        let restarted = makeConsumer("a") { _, _, done in done(.applied) }
        XCTAssertTrue(poll { restarted.snapshot.applied == 1 })
        XCTAssertEqual(calls.mutate { $0.map(\.id) }, [first, first])
        XCTAssertTrue(poll { (try? self.pendingCount()) == 0 })
        stop(restarted)

        // "Crash" 2, and a consumer of another name takes the entry over once it was idle long enough.
        let crashingB = makeConsumer("b") { _, _, _ in }
        let second = try add(["two"])[0]
        XCTAssertTrue(poll { self.calls.mutate { $0.last?.id } == second })
        stop(crashingB)
        let other = makeConsumer("c", claimIdle: .milliseconds(500)) { _, _, done in done(.applied) }
        XCTAssertTrue(poll { other.snapshot.applied == 1 })
        XCTAssertEqual(calls.mutate { $0.last.map { [$0.consumer, $0.id] } }, ["c", second])
        XCTAssertEqual(other.snapshot.claimed, 1)
        XCTAssertTrue(poll { (try? self.pendingCount()) == 0 })
    }

    func testPoisonEntryIsAcknowledgedCountedAndDoesNotStopTheEntriesBehindIt() throws {
        let consumer = makeConsumer("a", batchSize: 2) { _, value, done in done(value == "garbage" ? .poison : .applied) }
        XCTAssertTrue(poll { consumer.snapshot.isConnected })
        let ids = try add(["a", "garbage", "b", "c"])
        XCTAssertTrue(poll { consumer.snapshot.applied == 3 })
        XCTAssertEqual(consumer.snapshot.poison, 1)
        XCTAssertEqual(calls.mutate { $0.map(\.id) }, ids)
        XCTAssertTrue(poll { (try? self.pendingCount()) == 0 })
        XCTAssertEqual(logCount("poison stream entry acknowledged"), 1)
    }

    func testEntriesAddedAfterRedisRestartsAreConsumed() throws {
        let consumer = makeConsumer("a") { _, _, done in done(.applied) }
        XCTAssertTrue(poll { consumer.snapshot.isConnected })
        _ = try add(["before"])
        XCTAssertTrue(poll { consumer.snapshot.applied == 1 })

        server.stop()  // no persistence: the stream and its group are gone with it
        try server.start()
        // Added at once, possibly before the consumer is back: the group it creates again starts at 0.
        let after = try add(["after-1", "after-2"])
        XCTAssertTrue(poll { consumer.snapshot.applied == 3 }, "consumed after the restart")
        XCTAssertEqual(Array(calls.mutate { $0.map(\.id) }.suffix(2)), after)
        XCTAssertEqual(consumer.snapshot.connections, 2)
        XCTAssertEqual(logCount("stream consumer connection lost, reconnecting"), 1, "the loss is logged once")
    }

    /// A silent server while the consumer is blocked in XREADGROUP: no reply within BLOCK plus the
    /// reply timeout is a dead connection, logged once; consuming resumes once Redis answers.
    func testSilentServerIsDetectedAndConsumingResumes() throws {
        let consumer = makeConsumer("a") { _, _, done in done(.applied) }
        XCTAssertTrue(poll { consumer.snapshot.isConnected })
        server.pause()
        XCTAssertTrue(poll(3) { !consumer.snapshot.isConnected }, "noticed while the server is still silent")
        XCTAssertEqual(logCount("stream consumer connection lost, reconnecting"), 1)
        server.resume()
        XCTAssertTrue(poll { consumer.snapshot.isConnected && consumer.snapshot.connections >= 2 })
        _ = try add(["after"])
        XCTAssertTrue(poll { consumer.snapshot.applied == 1 })
        XCTAssertEqual(logCount("stream consumer connection lost, reconnecting"), 1, "reconnect attempts while silent log nothing more")
    }

    func testLagIsReported() throws {
        let first = makeConsumer("a") { _, _, done in done(.applied) }
        XCTAssertTrue(poll { first.snapshot.isConnected })
        XCTAssertTrue(poll { first.snapshot.lag == 0 })
        stop(first)
        _ = try add((0..<5).map { "e\($0)" })

        // Holds the first entry until released, so the lag read before it stays visible.
        let release = DispatchSemaphore(value: 0)
        let consumer = makeConsumer("a", batchSize: 1) { _, value, done in
            if value == "e0" {
                DispatchQueue.global().async {
                    release.wait()
                    done(.applied)
                }
            } else {
                done(.applied)
            }
        }
        XCTAssertTrue(poll { consumer.snapshot.lag == 5 })
        release.signal()
        XCTAssertTrue(poll { consumer.snapshot.applied == 5 })
        XCTAssertTrue(poll { consumer.snapshot.lag == 0 })
    }
}

private struct XADDFailed: Error, CustomStringConvertible {
    let reply: String
    var description: String { "XADD did not return an entry ID: \(reply)" }
}
