import Dispatch
import Foundation
import GatewayRedis
import XCTest

/// Large and odd-sized bulk strings through the connection's own reads into hiredis's buffer and
/// the GET replies copied straight into `[UInt8]`s, pipelined and mixed with replies that keep
/// hiredis's own objects (`send`, nested strings, integers, nil).
final class LargeReplyTests: RedisTestCase {
    private static let sizes = [0, 1, 2, 1_023, 1_024, 16_379, 16_384, 16_385, 65_536, 65_600, 300_000, 1_100_000]

    private static func value(_ size: Int, seed: Int) -> [UInt8] {
        // CR, LF and '$' inside, so a reader that trusted the bytes would go wrong.
        (0..<size).map { UInt8(truncatingIfNeeded: ($0 &* 131) ^ seed) }
    }

    /// A command bigger than the socket's send buffer (16 MiB; loopback's buffer grows to 4 MiB at
    /// most) cannot go out in one write: the rest must follow when the socket has room, and the
    /// commands after it too.
    func testACommandLargerThanTheSocketBufferIsWrittenWhole() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        let huge = Self.value(16 << 20, seed: 7)
        XCTAssertNoThrow(try XCTUnwrap(set(connection, Array("big:huge".utf8), huge)).get())
        XCTAssertEqual(try send(connection, ["STRLEN", "big:huge"])?.get(), .integer(Int64(huge.count)))
        XCTAssertEqual(try send(connection, ["DEL", "big:huge"])?.get(), .integer(1))
    }

    func testPipelinedLargeRepliesOfEveryShapeArriveWholeAndInOrder() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        for (i, size) in Self.sizes.enumerated() {
            XCTAssertNoThrow(try XCTUnwrap(set(connection, Array("big:\(i)".utf8), Self.value(size, seed: i))).get())
        }
        let big = Self.value(70_000, seed: 99)
        XCTAssertNoThrow(try XCTUnwrap(set(connection, Array("big:list-item".utf8), big)).get())
        XCTAssertEqual(try send(connection, ["DEL", "big:list"])?.get(), .integer(0))
        XCTAssertEqual(
            try call { connection.send([Array("RPUSH".utf8), Array("big:list".utf8), big, [], big], completion: $0) }?.get(),
            .integer(3))

        let rounds = 4
        // What each command must answer, in order; compared in the callbacks (cheap, so that the
        // callbacks do not hold the queue up and the commands behind them time out).
        enum Expected { case get([UInt8]?), reply(RedisReply) }
        var expected: [Expected] = []
        for _ in 0..<rounds {
            for (i, size) in Self.sizes.enumerated() {
                expected.append(.get(Self.value(size, seed: i)))
                expected.append(.get(nil))
                expected.append(.reply(.string(Self.value(size, seed: i))))
                expected.append(.reply(.array([.string(big), .string([]), .string(big)])))
                expected.append(.reply(.integer(3)))
            }
        }
        let done = expectation(description: "all replies")
        done.expectedFulfillmentCount = expected.count
        let log = Locked<[(index: Int, ok: Bool, got: String)]>([])
        let table = expected
        onQueue {
            var issued = 0
            func record(_ index: Int, _ ok: Bool, _ got: @autoclosure () -> String) {
                log.mutate { $0.append((index, ok, ok ? "" : got())) }
                done.fulfill()
            }
            for _ in 0..<rounds {
                for i in Self.sizes.indices {
                    for command in 0..<5 {
                        let index = issued
                        issued += 1
                        let check: (Result<RedisReply, RedisError>) -> Void = { result in
                            guard case .reply(let want) = table[index] else { return record(index, false, "kind") }
                            record(index, (try? result.get()) == want, "\(result)".prefix(200).description)
                        }
                        switch command {
                        case 0, 1:
                            let key = command == 0 ? "big:\(i)" : "big:missing"
                            connection.get(Array(key.utf8)) { result in
                                guard case .get(let want) = table[index] else { return record(index, false, "kind") }
                                let got = try? result.get()
                                record(index, got == .some(want), "\(result)".prefix(200).description)
                            }
                        case 2: connection.send([Array("GET".utf8), Array("big:\(i)".utf8)], completion: check)
                        case 3:
                            connection.send(
                                [Array("LRANGE".utf8), Array("big:list".utf8), Array("0".utf8), Array("-1".utf8)],
                                completion: check)
                        default: connection.send([Array("LLEN".utf8), Array("big:list".utf8)], completion: check)
                        }
                    }
                }
            }
        }
        wait(for: [done], timeout: 60)
        let got = log.value
        XCTAssertEqual(got.map(\.index), Array(expected.indices), "replies out of order or missing")
        if let bad = got.first(where: { !$0.ok }) { XCTFail("reply \(bad.index): \(bad.got)") }
        XCTAssertEqual(got.filter { !$0.ok }.count, 0)
    }

    func testGetOfAListIsAServerErrorAndTheConnectionStaysInStep() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        let value = Self.value(200_000, seed: 7)
        XCTAssertNoThrow(try XCTUnwrap(set(connection, Array("big:a".utf8), value)).get())
        XCTAssertEqual(try send(connection, ["DEL", "big:l"])?.get(), .integer(0))
        XCTAssertEqual(try send(connection, ["RPUSH", "big:l", "x"])?.get(), .integer(1))
        XCTAssertEqual(get(connection, Array("big:l".utf8))?.failure?.shortDescription, "server_error")
        XCTAssertEqual(try XCTUnwrap(get(connection, Array("big:a".utf8))).get(), value)
        XCTAssertEqual(try send(connection, ["ECHO", "after"])?.get(), .string(Array("after".utf8)))
    }
}
