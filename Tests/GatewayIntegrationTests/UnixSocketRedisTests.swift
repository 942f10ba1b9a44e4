import Foundation
import GatewayTestSupport
import XCTest

/// The gateway on a Redis that listens only on a unix socket (`port 0`): the cache connections,
/// the invalidation subscriber and the stream consumer all go through `unix://`.
final class UnixSocketRedisTests: GatewayTestCase {
    func testGatewayCachesAndHearsPurgesOverAUnixSocket() throws {
        let unixRedis = try RedisServerProcess(unixSocketOnly: true)
        try unixRedis.start()
        defer { unixRedis.stop() }
        let socket = try XCTUnwrap(unixRedis.unixSocketPath)
        let version = CLIVersionCounter()
        backend.setBehaviour(.perRequest { _ in .ok("v\(version.value)") }, forPath: "/catalog/u")
        let channel = "unix-events-" + prefix
        let stream = "unix-stream-" + prefix
        try startGateway(yaml: """
            listen: localhost:0
            server: { event_loops: 2, drain_timeout: 1s }
            upstream: { url: \(backend.baseURL), timeout: 5s, connect_timeout: 1s }
            redis: { url: "unix://\(socket)?db=2", timeout: 200ms, key_prefix: "\(prefix)" }
            invalidation: { channel: "\(channel)", stream: "\(stream)", instance: unix-a }
            \(GatewayTestCase.defaultRoutes)
            """)
        XCTAssertEqual(service?.localAddress?.host, "127.0.0.1", "localhost binds its IPv4 address")

        XCTAssertEqual(try get("/catalog/u").cacheStatus, "CacheGateway; fwd=miss; stored")
        let hit = try get("/catalog/u")
        XCTAssertEqual(hit.cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(hit.text, "v0")
        let stored = try unixRedis.cli("-n", "2", "--scan", "--pattern", "\(prefix)e:*")
        XCTAssertEqual(stored.count, 1, "the entry is in database 2 of the unix-socket Redis: \(stored)")

        // The subscriber is on the socket too: a purge published there reaches it.
        version.bump()
        XCTAssertTrue(waitUntil { (try? unixRedis.cli("PUBLISH", channel, "ping")) == ["1"] }, "subscribed over the socket")
        XCTAssertEqual(try unixRedis.cli("PUBLISH", channel, "purge /catalog/u"), ["1"])
        XCTAssertTrue(waitUntil { (try? self.get("/catalog/u").text) == "v1" }, "purged through the channel")

        // And so is the stream consumer (its stream is in the selected database too).
        XCTAssertTrue(waitUntil { ((try? unixRedis.cli("-n", "2", "XINFO", "GROUPS", stream)) ?? []).contains("cachegateway:unix-a") })
        XCTAssertEqual(try get("/catalog/u").cacheStatus, "CacheGateway; hit")
        version.bump()
        _ = try unixRedis.cli("-n", "2", "XADD", stream, "*", "event", #"{"purge":{"paths":["/catalog/u"]}}"#)
        XCTAssertTrue(waitUntil { self.service?.streamConsumer?.snapshot.applied == 1 }, "applied from the stream")
        XCTAssertEqual(try get("/catalog/u").text, "v2")
    }
}
