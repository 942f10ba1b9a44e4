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

    /// A silent partition: the server stops answering (SIGSTOP: the kernel keeps the connection
    /// open and even acknowledges bytes) without closing anything. The subscriber must notice by its
    /// own PING, log it once, and be subscribed again (telling `onResubscribe`) once Redis answers.
    func testSilentServerIsDetectedByPingAndSubscriptionComesBack() throws {
        let redis = try RedisServerProcess()
        try redis.start()
        defer { redis.stop() }
        let received = Mutex<[String]>([])
        let resubscribed = Mutex(0)
        let warnings = Locked<[String]>([])
        var logger = Logger(label: "test.subscriber") { label in
            CapturingLogHandler(label: label, echo: false) { message in warnings.mutate { $0.append(message) } }
        }
        logger.logLevel = .warning
        let subscriber = RedisSubscriber(
            configuration: RedisConfiguration(
                port: redis.port, connectTimeout: .milliseconds(300), reconnectBackoffMin: .milliseconds(20), reconnectBackoffMax: .milliseconds(200)),
            channel: "events", liveness: RedisLiveness(pingInterval: .milliseconds(300), replyTimeout: .milliseconds(300)),
            logger: logger, onResubscribe: { resubscribed.withLock { $0 += 1 } }
        ) { bytes in received.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        subscriber.start()
        defer { subscriber.stop() }
        XCTAssertTrue(poll { subscriber.isSubscribed })

        // Quiet but alive: pings are answered, so no reconnect over several ping intervals.
        Thread.sleep(forTimeInterval: 1.0)
        XCTAssertEqual(subscriber.subscriptionCount, 1)
        XCTAssertEqual(subscriber.livenessFailureCount, 0)

        redis.pause()
        let paused = Date()
        XCTAssertTrue(poll { subscriber.livenessFailureCount == 1 }, "a silent server is noticed while it is still silent")
        let detection = Date().timeIntervalSince(paused)
        XCTAssertLessThan(detection, 2.0, "within about ping interval + reply timeout")
        XCTAssertFalse(subscriber.isSubscribed)
        // Reconnect attempts against the frozen server go on, but log nothing more.
        Thread.sleep(forTimeInterval: 1.0)
        XCTAssertEqual(warnings.value, ["invalidation channel silent, reconnecting"])
        redis.resume()

        XCTAssertTrue(poll { subscriber.isSubscribed && subscriber.subscriptionCount >= 2 }, "subscribed again once Redis answers")
        XCTAssertEqual(resubscribed.withLock { $0 }, subscriber.subscriptionCount - 1)
        XCTAssertEqual(subscriber.resubscriptionCount, subscriber.subscriptionCount - 1)
        XCTAssertEqual(try redis.cli("PUBLISH", "events", "after partition"), ["1"])
        XCTAssertTrue(poll { received.withLock { $0 } == ["after partition"] })
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
