import Dispatch
import Foundation
import GatewayRedis
import GatewayTestSupport
import Logging
import Synchronization
import XCTest

final class RedisSubscriberTests: XCTestCase {
    func testReceivesMessagesStaysSubscribedWhenQuietAndResubscribesAfterRestart() throws {
        let redis = try RedisServerProcess()
        try redis.start()
        defer { redis.stop() }
        let received = Mutex<[String]>([])
        let subscriber = RedisSubscriber(
            configuration: RedisConfiguration(port: redis.port, reconnectBackoffMin: .milliseconds(20), reconnectBackoffMax: .milliseconds(200)),
            channel: "events", logger: Logger(label: "test")
        ) { bytes in received.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        subscriber.start()
        defer { subscriber.stop() }
        XCTAssertTrue(poll { subscriber.isSubscribed })

        // A quiet channel is not a dead connection: still the first subscription after a while.
        Thread.sleep(forTimeInterval: 1.2)
        XCTAssertEqual(try redis.cli("PUBLISH", "events", "purge /a b"), ["1"])
        XCTAssertTrue(poll { received.withLock { $0 } == ["purge /a b"] })
        XCTAssertEqual(subscriber.subscriptionCount, 1)

        redis.stop()
        try redis.start()
        XCTAssertTrue(poll { subscriber.subscriptionCount == 2 && subscriber.isSubscribed }, "subscribes again after Redis returns")
        XCTAssertEqual(try redis.cli("PUBLISH", "events", "second"), ["1"])
        XCTAssertTrue(poll { received.withLock { $0.last } == "second" })
    }

    func testStopReturnsPromptlyWhileBlockedOrWhileRedisIsAway() throws {
        let subscriber = RedisSubscriber(
            configuration: RedisConfiguration(port: try RedisServerProcess.freePort()), channel: "events", logger: Logger(label: "test")
        ) { _ in }
        subscriber.start()
        Thread.sleep(forTimeInterval: 0.2)
        let started = Date()
        subscriber.stop()
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    private func poll(_ timeout: TimeInterval = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}
