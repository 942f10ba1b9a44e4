import Dispatch
import Foundation
import GatewayRedis
import XCTest

/// Prints pipelined throughput; asserts only correctness. For a meaningful number run it in release:
/// `swift test -c release -Xswiftc -enable-testing --scratch-path .build-redis --filter RedisThroughputTests`.
final class RedisThroughputTests: RedisTestCase {
    func testPipelinedGetThroughput() throws {
        let connection = makeConnection { $0.commandTimeout = .seconds(5) }
        XCTAssertTrue(waitUntilConnected(connection))
        let key = Array("bench:key".utf8)
        let value = [UInt8](repeating: 0x61, count: 100)
        XCTAssertNoThrow(try XCTUnwrap(set(connection, key, value)).get())

        for round in 0..<3 {
            let total = 100_000
            let done = expectation(description: "round \(round)")
            let ok = Locked(0)
            let start = Locked(DispatchTime.now())
            onQueue {
                start.value = DispatchTime.now()
                var remaining = total
                var good = 0
                for _ in 0..<total {
                    connection.get(key) { result in
                        if case .success(value?) = result { good += 1 }
                        remaining -= 1
                        if remaining == 0 {
                            ok.value = good
                            done.fulfill()
                        }
                    }
                }
            }
            wait(for: [done], timeout: 60)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.value.uptimeNanoseconds) / 1e9
            XCTAssertEqual(ok.value, total)
            print("redis pipelined GET: \(total) in \(String(format: "%.3f", seconds)) s = \(Int(Double(total) / seconds)) ops/s (round \(round))")
        }
    }

    /// One command at a time, each sent from the previous one's completion: the round trip a cache
    /// lookup costs when nothing else is in flight.
    func testSequentialGetLatency() throws {
        let connection = makeConnection()
        XCTAssertTrue(waitUntilConnected(connection))
        let total = 5_000
        let done = expectation(description: "sequential")
        let start = Locked(DispatchTime.now())
        let ok = Locked(0)
        onQueue {
            start.value = DispatchTime.now()
            var remaining = total
            var good = 0
            func next() {
                connection.get(Array("bench:missing".utf8)) { result in
                    if case .success(nil) = result { good += 1 }
                    remaining -= 1
                    if remaining == 0 {
                        ok.value = good
                        done.fulfill()
                    } else {
                        next()
                    }
                }
            }
            next()
        }
        wait(for: [done], timeout: 60)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.value.uptimeNanoseconds) / 1e9
        XCTAssertEqual(ok.value, total)
        print("redis sequential GET: \(total) in \(String(format: "%.3f", seconds)) s = \(String(format: "%.1f", seconds / Double(total) * 1e6)) µs per round trip")
    }
}
