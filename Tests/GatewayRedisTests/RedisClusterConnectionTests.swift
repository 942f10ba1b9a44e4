import Dispatch
import Foundation
import GatewayRedis
import GatewayTestSupport
import Logging
import XCTest

/// ``RedisClusterConnection`` against a real 3-master cluster: routing by slot with no redirect
/// once the map is known, `-ASK` during a slot's migration (map kept), `-MOVED` after it (map
/// patched).
final class RedisClusterConnectionTests: XCTestCase {
    private var cluster: RedisClusterProcess!
    private let queue = DispatchQueue(label: "test.redis-cluster.loop")
    private var client: RedisClusterConnection!
    private let redirects = RedirectCounter()

    override func setUpWithError() throws {
        try super.setUpWithError()
        cluster = try RedisClusterProcess()
        // One seed is enough: the others are found in the slot map.
        client = RedisClusterConnection(
            configuration: RedisConfiguration(port: cluster.ports[0]),
            seeds: [ClusterNode(host: "127.0.0.1", port: cluster.ports[0])], queue: queue,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        client.redirectObserver = redirects
        queue.sync { client.start() }
        XCTAssertTrue(waitUntil { self.queue.sync { client.isConnected && self.client.slotMap?.coversAllSlots == true } })
        XCTAssertTrue(waitUntil { self.queue.sync { client.masterConnections.allSatisfy(\.isConnected) } })
    }

    override func tearDown() {
        if let client { queue.sync { client.close() } }
        client = nil
        cluster = nil
        super.tearDown()
    }

    func testEachKeyGoesToItsSlotsMasterWithoutRedirects() throws {
        let client = self.client!
        let keys = (0..<120).map { "k:\($0)" }
        for key in keys { XCTAssertNil(try call { client.set(Array(key.utf8), Array("v\(key)".utf8), ttlMilliseconds: 60_000, completion: $0) }.failure) }
        for key in keys { XCTAssertEqual(try call { client.get(Array(key.utf8), completion: $0) }.get(), Array("v\(key)".utf8)) }
        XCTAssertEqual(try call { client.send(["SADD", "set:{k:1}", "a"].map { Array($0.utf8) }, completion: $0) }.get(), .integer(1))
        let counts = try cluster.nodes.map { Int(try $0.cli("DBSIZE").first ?? "") ?? -1 }
        XCTAssertEqual(counts.reduce(0, +), 121)
        XCTAssertTrue(counts.allSatisfy { $0 > 0 }, "\(counts)")
        XCTAssertEqual(redirects.counts, [0, 0], "a fresh map sends each command to the right master")
        // A keyless command goes to some master.
        XCTAssertEqual(try call { client.send([Array("PING".utf8)], completion: $0) }.get(), .status("PONG"))
    }

    func testAskWhileASlotMigratesAndMovedAfterwards() throws {
        let client = self.client!
        let key = "foo"  // slot 12182: the third master's after --cluster create
        let slot = 12182
        XCTAssertNil(try call { client.set(Array(key.utf8), Array("bar".utf8), ttlMilliseconds: 60_000, completion: $0) }.failure)
        let third = cluster.nodes[2], first = cluster.nodes[0]
        let thirdID = try cluster.nodeID(2), firstID = try cluster.nodeID(0)
        XCTAssertEqual(queue.sync { client.slotMap?.node(forSlot: slot)?.port }, third.port)

        // Migrating by hand, as redis-cli --cluster reshard does, and stopping half-way.
        XCTAssertEqual(try first.cli("CLUSTER", "SETSLOT", String(slot), "IMPORTING", thirdID), ["OK"])
        XCTAssertEqual(try third.cli("CLUSTER", "SETSLOT", String(slot), "MIGRATING", firstID), ["OK"])
        XCTAssertEqual(try third.cli("MIGRATE", "127.0.0.1", String(first.port), key, "0", "5000"), ["OK"])
        XCTAssertEqual(try call { client.get(Array(key.utf8), completion: $0) }.get(), Array("bar".utf8))
        XCTAssertEqual(redirects.counts, [0, 1], "one -ASK followed")
        XCTAssertEqual(queue.sync { client.slotMap?.node(forSlot: slot)?.port }, third.port, "-ASK leaves the map alone")

        for node in cluster.nodes { XCTAssertEqual(try node.cli("CLUSTER", "SETSLOT", String(slot), "NODE", firstID), ["OK"]) }
        XCTAssertEqual(try call { client.get(Array(key.utf8), completion: $0) }.get(), Array("bar".utf8))
        XCTAssertEqual(redirects.counts, [1, 1], "one -MOVED followed")
        XCTAssertEqual(queue.sync { client.slotMap?.node(forSlot: slot)?.port }, first.port, "-MOVED updates the map")
        XCTAssertEqual(try call { client.get(Array(key.utf8), completion: $0) }.get(), Array("bar".utf8))
        XCTAssertEqual(redirects.counts, [1, 1], "no redirect once the map knows")
    }

    // MARK: Helpers

    /// Runs `body` on the queue and waits (up to 5 s) for its completion.
    private func call<T>(_ body: @escaping @Sendable (@escaping (Result<T, RedisError>) -> Void) -> Void) throws -> Result<T, RedisError> {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<T, RedisError>?
        queue.async {
            body { r in
                result = r
                done.signal()
            }
        }
        guard done.wait(timeout: .now() + 5) == .success, let result else { throw RedisError.timeout }
        return result
    }

    private func waitUntil(timeout: TimeInterval = 10, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }
}

/// Counts redirections by kind ([moved, ask]).
private final class RedirectCounter: RedisRedirectObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var byKind = [0, 0]
    func redisRedirected(_ kind: RedisRedirectKind) { lock.withLock { byKind[kind.rawValue] += 1 } }
    var counts: [Int] { lock.withLock { byKind } }
}
