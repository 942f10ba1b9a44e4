import Dispatch
import Foundation
import GatewayRedis
import XCTest

final class RedisConnectionTests: RedisTestCase {
    func testGetOfMissingKeyIsNil() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        let result = try XCTUnwrap(get(connection, Array("missing".utf8)))
        XCTAssertEqual(try result.get(), nil)
    }

    func testSetThenGetIsBinarySafeAndAppliesTTL() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        let key: [UInt8] = [0x00, 0x0D, 0x0A, 0x24, 0x2A, 0xFF] + Array("key\r\n$3\r\nGET".utf8) + [0]
        var value = Array(0...255).map(UInt8.init) + Array("\r\n*1\r\n".utf8) + [0, 0, 13, 10]
        value += (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }  // larger than hiredis's 16 KiB reads

        XCTAssertNoThrow(try XCTUnwrap(set(connection, key, value, ttl: 60_000)).get())
        XCTAssertEqual(try XCTUnwrap(get(connection, key)).get(), value)

        let pttl = call { connection.send([Array("PTTL".utf8), key], completion: $0) }
        guard case .success(.integer(let ms)) = pttl else { return XCTFail("PTTL: \(String(describing: pttl))") }
        XCTAssertGreaterThan(ms, 0)
        XCTAssertLessThanOrEqual(ms, 60_000)

        // Empty key and value round-trip too.
        XCTAssertNoThrow(try XCTUnwrap(set(connection, [], [], ttl: 1_000)).get())
        XCTAssertEqual(try XCTUnwrap(get(connection, [])).get(), [])
    }

    func testSendReturnsEveryReplyShape() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        XCTAssertEqual(try send(connection, ["PING"])?.get(), .status("PONG"))
        XCTAssertEqual(try send(connection, ["INCRBY", "counter", "41"])?.get(), .integer(41))
        XCTAssertEqual(try send(connection, ["RPUSH", "list", "a", "b"])?.get(), .integer(2))
        XCTAssertEqual(
            try send(connection, ["LRANGE", "list", "0", "-1"])?.get(),
            .array([.string(Array("a".utf8)), .string(Array("b".utf8))])
        )
        XCTAssertEqual(try send(connection, ["MGET", "counter", "nope"])?.get(), .array([.string(Array("41".utf8)), .null]))
        // MULTI/EXEC: a nested error stays a reply; a top-level error is a failure.
        XCTAssertEqual(try send(connection, ["MULTI"])?.get(), .status("OK"))
        XCTAssertEqual(try send(connection, ["INCR", "list"])?.get(), .status("QUEUED"))
        guard case .success(.array(let exec)) = send(connection, ["EXEC"]), case .error(let nested) = exec.first else {
            return XCTFail("EXEC should return an array holding an error")
        }
        XCTAssertTrue(nested.hasPrefix("WRONGTYPE"), nested)

        let wrongType = send(connection, ["INCR", "list"])?.failure
        XCTAssertTrue(wrongType?.serverMessage?.hasPrefix("WRONGTYPE") ?? false, "\(String(describing: wrongType))")
        XCTAssertEqual(wrongType?.shortDescription, "server_error")
        let getOfList = get(connection, Array("list".utf8))?.failure
        XCTAssertEqual(getOfList?.shortDescription, "server_error")
    }

    func testInvalidCommandsAreRefusedWithoutSending() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        XCTAssertEqual(send(connection, ["subscribe", "channel"])?.failure?.shortDescription, "invalid_command")
        XCTAssertEqual(send(connection, ["MONITOR"])?.failure?.shortDescription, "invalid_command")
        XCTAssertEqual(call { connection.send([], completion: $0) }?.failure?.shortDescription, "invalid_command")
        XCTAssertEqual(
            call { connection.set(Array("k".utf8), [], ttlMilliseconds: 0, completion: $0) }?.failure?.shortDescription,
            "invalid_command"
        )
        // The connection is still usable and in sync.
        XCTAssertEqual(try send(connection, ["ECHO", "still here"])?.get(), .string(Array("still here".utf8)))
    }

    func testTenThousandPipelinedCommandsCompleteInOrder() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        let pairs = 5_000
        let done = expectation(description: "all replies")
        done.expectedFulfillmentCount = pairs * 2
        let log = Locked<[(index: Int, ok: Bool)]>([])
        let maxInFlight = Locked(0)
        onQueue {
            var issued = 0
            for i in 0..<pairs {
                let key = Array("pipelined:\(i)".utf8)
                let value = Array("value \(i) \u{0}\r\n".utf8)
                let setIndex = issued
                connection.set(key, value, ttlMilliseconds: 60_000) { result in
                    log.mutate { $0.append((setIndex, (try? result.get()) != nil)) }
                    done.fulfill()
                }
                issued += 1
                let getIndex = issued
                connection.get(key) { result in
                    log.mutate { $0.append((getIndex, (try? result.get()) == value)) }
                    done.fulfill()
                }
                issued += 1
            }
            maxInFlight.value = connection.pendingCommandCount
        }
        wait(for: [done], timeout: 30)
        let entries = log.value
        XCTAssertEqual(entries.count, pairs * 2)
        XCTAssertEqual(entries.map(\.index), Array(0..<(pairs * 2)), "completions out of order")
        XCTAssertEqual(entries.filter { !$0.ok }.count, 0, "wrong or failed replies")
        XCTAssertEqual(maxInFlight.value, pairs * 2, "all commands should have been in flight at once")
    }

    func testCloseCompletesEveryPendingCommandExactlyOnce() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        let count = 1_000
        let calls = Locked([Int](repeating: 0, count: count))
        let errors = Locked<[String: Int]>([:])
        let closedBeforeReturn = Locked(false)
        let done = expectation(description: "all completions")
        done.expectedFulfillmentCount = count
        onQueue {
            for i in 0..<count {
                connection.get(Array("close:\(i)".utf8)) { result in
                    calls.mutate { $0[i] += 1 }
                    if let error = result.failure { errors.mutate { $0[error.shortDescription, default: 0] += 1 } }
                    done.fulfill()
                }
            }
            connection.close()
            closedBeforeReturn.value = calls.value.allSatisfy { $0 == 1 }
        }
        wait(for: [done], timeout: 5)
        // Give any duplicate completion a chance to show up.
        queue.sync {}
        usleep(100_000)
        queue.sync {}
        XCTAssertEqual(calls.value, [Int](repeating: 1, count: count))
        XCTAssertTrue(closedBeforeReturn.value, "close() should fail pending commands before it returns")
        XCTAssertEqual(errors.value, ["closed": count])

        // After close: fails with .closed, still asynchronously.
        XCTAssertEqual(get(connection, Array("x".utf8))?.failure, .closed)
        XCTAssertFalse(queue.sync { connection.isConnected })
    }

    func testCloseFromInsideACompletion() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        let count = 200
        let calls = Locked([Int](repeating: 0, count: count))
        let outcomes = Locked<[String]>([])
        let done = expectation(description: "all completions")
        done.expectedFulfillmentCount = count
        onQueue {
            for i in 0..<count {
                connection.send([Array("PING".utf8)]) { result in
                    calls.mutate { $0[i] += 1 }
                    outcomes.mutate { $0.append(result.failure?.shortDescription ?? "ok") }
                    if i == 0 { connection.close() }
                    done.fulfill()
                }
            }
        }
        wait(for: [done], timeout: 5)
        usleep(50_000)
        queue.sync {}
        XCTAssertEqual(calls.value, [Int](repeating: 1, count: count))
        XCTAssertEqual(outcomes.value.first, "ok")
        // Replies already read in the same batch may still be delivered; the rest fail with .closed.
        XCTAssertTrue(outcomes.value.dropFirst().allSatisfy { $0 == "ok" || $0 == "closed" }, "\(Set(outcomes.value))")
        XCTAssertTrue(outcomes.value.contains("closed"))
    }

    func testClosedConnectionIsReleased() throws {
        weak var weakConnection: RedisConnection?
        do {
            var configuration = RedisConfiguration(port: server.port)
            configuration.commandTimeout = .seconds(1)
            let connection = RedisConnection(configuration: configuration, queue: queue)
            weakConnection = connection
            onQueue { connection.start() }
            XCTAssertTrue(waitUntilConnected(connection))
            XCTAssertEqual(try send(connection, ["PING"])?.get(), .status("PONG"))
            queue.sync { connection.close() }
        }
        // hiredis's retain is given back on the next turn of the queue, the sources' once their
        // cancellation completes.
        XCTAssertTrue(eventually { weakConnection == nil }, "a closed connection should not be kept alive")
    }

    func testDatabaseIsSelectedAfterConnecting() throws {
        let db3 = makeConnection { $0.database = 3 }
        let db0 = makeConnection()
        XCTAssertTrue(waitUntilConnected(db3))
        XCTAssertTrue(waitUntilConnected(db0))
        XCTAssertNoThrow(try XCTUnwrap(set(db3, Array("in-db3".utf8), Array("yes".utf8))).get())
        XCTAssertEqual(try XCTUnwrap(get(db3, Array("in-db3".utf8))).get(), Array("yes".utf8))
        XCTAssertEqual(try XCTUnwrap(get(db0, Array("in-db3".utf8))).get(), nil)
    }
}

final class RedisAuthTests: RedisTestCase {
    override var serverArguments: [String] { ["--requirepass", "s3cret"] }

    func testPasswordIsSentFirst() throws {
        let connection = makeConnection {
            $0.password = "s3cret"
            $0.database = 2
        }
        XCTAssertTrue(waitUntilConnected(connection))
        XCTAssertNoThrow(try XCTUnwrap(set(connection, Array("k".utf8), Array("v".utf8))).get())
        guard case .success(.string(let info)) = send(connection, ["CLIENT", "INFO"]) else {
            return XCTFail("CLIENT INFO")
        }
        XCTAssertTrue(String(decoding: info, as: UTF8.self).contains(" db=2 "))
    }

    func testWrongPasswordNeverBecomesReadyAndFailsFast() throws {
        let connection = makeConnection { $0.password = "wrong" }
        usleep(300_000)
        XCTAssertFalse(queue.sync { connection.isConnected })
        let timed = try XCTUnwrap(timedGet(connection, Array("k".utf8)))
        XCTAssertEqual(timed.result.failure, .notConnected)
        XCTAssertLessThan(timed.seconds, 0.01)
    }
}
