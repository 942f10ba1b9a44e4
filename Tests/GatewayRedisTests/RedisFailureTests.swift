import GatewayTestSupport
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GatewayRedis
import XCTest

/// Redis gone, paused, or not there yet: commands fail fast and the client comes back by itself.
final class RedisFailureTests: RedisTestCase {
    func testStoppedRedisFailsFastAndIsUsedAgainSoonAfterRestart() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        XCTAssertNoThrow(try XCTUnwrap(get(connection, Array("k".utf8))).get())

        server.stop()
        // For half a second of outage, every command fails quickly; none hangs.
        let outageEnd = Date().addingTimeInterval(0.5)
        var failures: [String: Int] = [:]
        while Date() < outageEnd {
            let timed = try XCTUnwrap(timedGet(connection, Array("k".utf8)))
            XCTAssertLessThan(timed.seconds, 0.05, "a command took \(timed.seconds) s during the outage")
            let error = try XCTUnwrap(timed.result.failure, "no failure while Redis is down: \(timed.result)")
            failures[error.shortDescription, default: 0] += 1
            usleep(20_000)
        }
        XCTAssertTrue(Set(failures.keys).isSubset(of: ["not_connected", "disconnected"]), "\(failures)")

        try server.start()
        let seconds = try XCTUnwrap(secondsUntilGetSucceeds(connection, timeout: 3), "never reconnected")
        XCTAssertLessThan(seconds, 1.5, "cache used again only after \(seconds) s")
    }

    func testPausedRedisTimesOutAndClientRecoversAfterContinue() throws {
        let timeout = 0.2
        let connection = makeConnection {
            $0.commandTimeout = .milliseconds(200)
            $0.connectTimeout = .milliseconds(300)
        }
        XCTAssertTrue(waitUntilConnected(connection))

        server.pause()
        defer { server.resume() }
        let timed = try XCTUnwrap(timedGet(connection, Array("k".utf8)))
        XCTAssertEqual(timed.result.failure, .timeout)
        XCTAssertGreaterThanOrEqual(timed.seconds, timeout - 0.001)
        XCTAssertLessThan(timed.seconds, timeout + 0.1, "timed out only after \(timed.seconds) s")

        // Still paused: TCP connects succeed (the kernel accepts them) but the handshake is never
        // answered, so each attempt ends by the connect timeout; meanwhile commands fail fast.
        let pauseEnd = Date().addingTimeInterval(1.0)
        while Date() < pauseEnd {
            let timed = try XCTUnwrap(timedGet(connection, Array("k".utf8)))
            XCTAssertNotNil(timed.result.failure)
            XCTAssertLessThan(timed.seconds, timeout + 0.1)
            usleep(50_000)
        }
        XCTAssertGreaterThanOrEqual(logCount("redis.connect_failed"), 1, "\(logs.value)")
        XCTAssertEqual(logCount("redis.connected"), 1)

        server.resume()
        let seconds = try XCTUnwrap(secondsUntilGetSucceeds(connection, timeout: 3), "never recovered")
        XCTAssertLessThan(seconds, 1.5)
    }

    /// Thousands in flight when the timeout hits: each completes once, with .timeout, in time; a command
    /// sent from inside such a completion fails fast instead of joining the dying connection.
    func testTimeoutFailsEveryPendingCommandOnceEvenWhenCompletionsSendAgain() throws {
        let connection = makeConnection { $0.commandTimeout = .milliseconds(150) }
        XCTAssertTrue(waitUntilConnected(connection))
        server.pause()
        defer { server.resume() }
        let count = 10_000
        let calls = Locked([Int](repeating: 0, count: count))
        let outcomes = Locked<[String: Int]>([:])
        let followUps = Locked<[String: Int]>([:])
        let done = expectation(description: "all completions")
        done.expectedFulfillmentCount = count * 2
        let latest = Locked(0.0)
        onQueue {
            let start = Date()
            let value = [UInt8](repeating: 7, count: 100)
            for i in 0..<count {
                connection.set(Array("t:\(i)".utf8), value, ttlMilliseconds: 1_000) { result in
                    calls.mutate { $0[i] += 1 }
                    outcomes.mutate { $0[result.failure?.shortDescription ?? "ok", default: 0] += 1 }
                    latest.mutate { $0 = max($0, Date().timeIntervalSince(start)) }
                    connection.get(Array("again".utf8)) { again in
                        followUps.mutate { $0[again.failure?.shortDescription ?? "ok", default: 0] += 1 }
                        done.fulfill()
                    }
                    done.fulfill()
                }
            }
        }
        wait(for: [done], timeout: 5)
        XCTAssertEqual(calls.value, [Int](repeating: 1, count: count))
        XCTAssertEqual(outcomes.value, ["timeout": count])
        XCTAssertEqual(followUps.value, ["not_connected": count])
        // One deadline fails them all together; one at a time would take 10,000 × 150 ms. The margin
        // is for a loaded machine (TSan with builds beside it measured 0.52 s), not a speed target.
        XCTAssertLessThan(latest.value, 0.15 + 2.0, "the last of 10,000 timeouts arrived after \(latest.value) s")
    }

    func testConnectsOnceAServerAppearsOnTheRefusingPort() throws {
        let port = try RedisServerProcess.freePort()
        let connection = makeConnection(port: port)
        usleep(300_000)  // several refused attempts
        let timed = try XCTUnwrap(timedGet(connection, Array("k".utf8)))
        XCTAssertEqual(timed.result.failure, .notConnected)
        XCTAssertLessThan(timed.seconds, 0.01)

        let late = try RedisServerProcess(port: port)
        try late.start()
        let seconds = try XCTUnwrap(secondsUntilGetSucceeds(connection, timeout: 3), "never connected")
        XCTAssertLessThan(seconds, 1.5)
        queue.sync { connection.close() }
        late.stop()
    }

    /// Many server-side disconnects and reconnects: no crash, no fd leak, no retained objects.
    func testManyReconnectCyclesLeakNothing() throws {
        let cycles = 40
        weak var weakConnection: RedisConnection?
        // Warm up first, so that anything created lazily on first use exists before counting.
        do {
            let warmUp = RedisConnection(configuration: RedisConfiguration(port: server.port), queue: queue)
            onQueue { warmUp.start() }
            XCTAssertTrue(waitUntilConnected(warmUp))
            queue.sync { warmUp.close() }
        }
        usleep(50_000)
        queue.sync {}
        let fdsBefore = openFileDescriptors()
        let fdTargetsBefore = openFileDescriptorTargets()
        do {
            let connection = RedisConnection(
                configuration: RedisConfiguration(port: server.port, reconnectBackoffMin: .milliseconds(1)),
                queue: queue,
                logger: makeLogger()
            )
            weakConnection = connection
            onQueue { connection.start() }
            for cycle in 0..<cycles {
                XCTAssertTrue(waitUntilConnected(connection), "cycle \(cycle)")
                // Commands in flight when the server kills every client, this one included.
                let done = expectation(description: "cycle \(cycle)")
                done.expectedFulfillmentCount = 101
                let outcomes = Locked<[String]>([])
                let record: (String) -> Void = { outcome in
                    outcomes.mutate { $0.append(outcome) }
                    done.fulfill()
                }
                onQueue {
                    for _ in 0..<50 {
                        connection.get(Array("k".utf8)) { record($0.failure?.shortDescription ?? "ok") }
                    }
                    connection.send(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no"].map { Array($0.utf8) }) {
                        record($0.failure?.shortDescription ?? "ok")
                    }
                    for _ in 0..<50 {
                        connection.get(Array("k".utf8)) { record($0.failure?.shortDescription ?? "ok") }
                    }
                }
                wait(for: [done], timeout: 5)
                XCTAssertEqual(outcomes.value, Array(repeating: "ok", count: 51) + Array(repeating: "disconnected", count: 50))
            }
            XCTAssertTrue(waitUntilConnected(connection))
            XCTAssertEqual(logCount("redis.connected"), cycles + 1)
            XCTAssertEqual(logCount("redis.connection_lost"), cycles)
            queue.sync { connection.close() }
        }
        XCTAssertTrue(eventually { weakConnection == nil }, "connection leaked")
        XCTAssertTrue(eventually { openFileDescriptors() <= fdsBefore }, "sockets leaked: \(Set(openFileDescriptorTargets()).subtracting(fdTargetsBefore).sorted())")
    }

    /// A listener whose accept queue is full drops SYNs: the TCP connect itself hangs, and only the
    /// connect timeout ends each attempt.
    func testConnectTimeoutEndsAHangingConnect() throws {
        let listener = try FullBacklogListener()
        defer { listener.close() }
        let connection = makeConnection(port: listener.port) {
            $0.connectTimeout = .milliseconds(100)
            $0.reconnectBackoffMin = .milliseconds(10)
            $0.reconnectBackoffMax = .milliseconds(20)
        }
        let end = Date().addingTimeInterval(0.6)
        while Date() < end {
            let timed = try XCTUnwrap(timedGet(connection, Array("k".utf8)))
            XCTAssertEqual(timed.result.failure, .notConnected)
            XCTAssertLessThan(timed.seconds, 0.01)
            usleep(20_000)
        }
        // About one attempt per 120 ms; a refused connect would fail far more often.
        let attempts = logCount("redis.connect_failed")
        XCTAssertGreaterThanOrEqual(attempts, 3, "\(logs.value)")
        XCTAssertLessThanOrEqual(attempts, 6, "\(logs.value)")
        XCTAssertEqual(logCount("redis.connected"), 0)
    }

    private func openFileDescriptorTargets() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.map { name in
            let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)")
            return "\(name)->\(target ?? "?")"
        }
    }

    /// Open sockets of this process (the connection's fds are sockets; XCTest and Foundation
    /// create eventfds and the like lazily, which are not ours to count).
    private func openFileDescriptors() -> Int {
        openFileDescriptorTargets().filter { $0.contains("socket:") }.count
    }
}

/// A listening socket on 127.0.0.1 that never accepts, with its accept queue filled by two idle
/// connections, so that further connects hang in SYN-SENT.
private final class FullBacklogListener {
    let port: Int
    private var fds: [Int32] = []

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        fds.append(listener)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
        }
        guard bound == 0, listen(listener, 0) == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        // Fill the accept queue (backlog 0 admits one); the next connects get no SYN-ACK.
        for _ in 0..<2 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            fds.append(fd)
            _ = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
            }
        }
        usleep(50_000)
    }

    func close() {
        for fd in fds { _ = Glibc.close(fd) }
        fds = []
    }
}
