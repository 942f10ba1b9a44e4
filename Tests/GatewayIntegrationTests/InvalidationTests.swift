import Foundation
import GatewayTestSupport
import GatewayCore
import GatewayRuntime
import Logging
import XCTest

/// The backend announces changes on a Redis channel; the gateway drops the affected entries.
final class InvalidationTests: GatewayTestCase {
    private var channel: String { "events-" + prefix }

    private func startWithInvalidation() throws {
        backend.setBehaviour(.perRequest { request in
            .ok("\(request.target) for \(request.header("Authorization") ?? "anyone")")
        }, forPath: "/catalog/p")
        backend.setBehaviour(.perRequest { request in
            .ok("resources for \(request.header("Authorization") ?? "anyone")")
        }, forPath: "/users/1/resources")
        try startGateway(extra: "invalidation: { channel: \"\(channel)\" }")
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
    }

    private func publish(_ message: String) throws {
        XCTAssertEqual(try redis.cli("PUBLISH", channel, message), ["1"], "the gateway is listening")
    }

    func testPurgePathRemovesEveryVariantAndEveryUser() throws {
        try startWithInvalidation()
        try get("/catalog/p?page=1")
        try get("/catalog/p?page=2")
        try get("/users/1/resources", headers: ["Authorization": "Bearer a"])
        try get("/users/1/resources", headers: ["Authorization": "Bearer b"])
        XCTAssertEqual(try cacheKeys().filter { $0.contains(":e:") }.count, 4)

        try publish("purge /catalog/p")
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().filter { $0.contains(":e:") }.count) == 2 })
        XCTAssertEqual(try get("/catalog/p?page=1").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(try get("/catalog/p?page=2").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/p"), 4)
        XCTAssertEqual(try get("/users/1/resources", headers: ["Authorization": "Bearer a"]).cacheStatus, "CacheGateway; hit",
                       "other paths are untouched")

        try publish("purge /users/1/resources")
        XCTAssertTrue(waitUntil {
            (try? self.get("/users/1/resources", headers: ["Authorization": "Bearer b"]).cacheStatus) == "CacheGateway; fwd=miss; stored"
        })
        XCTAssertEqual(try get("/users/1/resources", headers: ["Authorization": "Bearer a"]).text, "resources for Bearer a")
        XCTAssertEqual(backend.requestCount(forPath: "/users/1/resources"), 4)
    }

    func testPurgeRouteRemovesTheWholeRouteOnly() throws {
        try startWithInvalidation()
        for page in 1...30 { try get("/catalog/p?page=\(page)") }
        try get("/users/1/resources", headers: ["Authorization": "Bearer a"])
        try publish("purge-route catalog")
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().filter { $0.contains(":catalog:") }.count) == 0 })
        XCTAssertEqual(try get("/users/1/resources", headers: ["Authorization": "Bearer a"]).cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/catalog/p?page=7").cacheStatus, "CacheGateway; fwd=miss; stored")
    }

    func testNonsenseMessagesAreIgnored() throws {
        try startWithInvalidation()
        try get("/catalog/p?page=1")
        for message in ["", "purge", "drop everything", "purge-route no-such-route", "purge-route rest"] {
            try publish(message)
        }
        XCTAssertEqual(try get("/catalog/p?page=1").cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/healthz").status, 200)
    }
}

/// A purge that arrives while a fill of the same path is in flight: the fill's answer predates
/// the change, so it must not be stored.
final class PurgeDuringFillTests: GatewayTestCase {
    func testAPurgeDuringAFillKeepsThePreChangeVersionOutOfTheCache() throws {
        let channel = "events-" + prefix
        let version = VersionCounter()
        backend.setBehaviour(.perRequest { _ in .delayed(0.5, .ok("v\(version.value)")) }, forPath: "/catalog/f")
        try startGateway(extra: "invalidation: { channel: \"\(channel)\" }")
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
        let filling = try TestClient(port: port, timeout: 10)
        try filling.send("GET /catalog/f HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertTrue(waitUntil { self.backend.requestCount(forPath: "/catalog/f") == 1 })
        // The data changes and the monolith says so, while the fill is still waiting for v0.
        version.bump()
        XCTAssertEqual(try redis.cli("PUBLISH", channel, "purge /catalog/f"), ["1"])
        Thread.sleep(forTimeInterval: 0.1)  // let the purge reach the gateway before the fill ends
        let first = try filling.readResponse()
        XCTAssertEqual(first.text, "v0", "who asked before the change gets what was fetched")
        XCTAssertEqual(first.cacheStatus, "CacheGateway; fwd=miss; detail=purged-while-fetching")
        let next = try get("/catalog/f")
        XCTAssertEqual(next.text, "v1", "the pre-change version was not stored")
        XCTAssertEqual(next.cacheStatus, "CacheGateway; fwd=miss; stored")
    }
}

private final class VersionCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func bump() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}

/// Events in the documented JSON format, soft purges, and purges that must survive a Redis blip.
final class InvalidationEventDeliveryTests: GatewayTestCase {
    private var channel: String { "events-" + prefix }

    private func start(routes: String = GatewayTestCase.defaultRoutes) throws {
        try startGateway(routes: routes, extra: "invalidation: { channel: \"\(channel)\" }")
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
    }

    func testAJSONEventPurgesPathsAndRoutes() throws {
        let version = VersionCounter()
        backend.setBehaviour(.perRequest { _ in .ok("p v\(version.value)") }, forPath: "/catalog/p")
        backend.setBehaviour(.perRequest { _ in .ok("q v\(version.value)") }, forPath: "/catalog/q")
        backend.setBehaviour(.perRequest { r in .ok("r v\(version.value) \(r.header("Authorization") ?? "")") }, forPath: "/users/1/resources")
        try start()
        try get("/catalog/p")
        try get("/catalog/q")
        try get("/users/1/resources", headers: ["Authorization": "Bearer a"])
        version.bump()
        XCTAssertEqual(try redis.cli("PUBLISH", channel, #"{"purge": {"paths": ["/users/1/resources"], "routes": ["catalog"]}}"#), ["1"])
        XCTAssertTrue(waitUntil { (try? self.get("/catalog/q").text) == "q v1" })
        XCTAssertEqual(try get("/catalog/p").text, "p v1")
        XCTAssertEqual(try get("/users/1/resources", headers: ["Authorization": "Bearer a"]).text, "r v1 Bearer a")
    }

    func testAResubscribeEmptiesTheInProcessTier() throws {
        // One event loop, so that every request sees the same in-process tier.
        try startGateway(yaml: """
            listen: 127.0.0.1:0
            server: { event_loops: 1, drain_timeout: 1s }
            upstream: { url: \(backend.baseURL), timeout: 5s }
            redis: { url: redis://127.0.0.1:\(redis.port)/0, timeout: 200ms, key_prefix: "\(prefix)" }
            cache: { local_ttl: 1m, local_tracking: false }
            invalidation: { channel: "\(channel)" }
            \(GatewayTestCase.defaultRoutes)
            """)
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
        try get("/catalog/l")
        XCTAssertEqual(try get("/catalog/l").cacheStatus, "CacheGateway; hit; detail=local")
        XCTAssertEqual(try get("/catalog/l").cacheStatus, "CacheGateway; hit; detail=local")
        // The subscription drops (messages sent meanwhile would be lost): what the tier holds
        // may have been purged, so it is emptied once subscribed again.
        let before = service!.subscriber!.subscriptionCount
        _ = try redis.cli("CLIENT", "KILL", "TYPE", "pubsub")
        XCTAssertTrue(waitUntil(timeout: 10) { self.service!.subscriber!.subscriptionCount > before && self.service!.subscriber!.isSubscribed })
        XCTAssertTrue(waitUntil {
            // Each loop's tier is emptied on its own loop; a request on either then reads Redis.
            (try? self.get("/catalog/l").cacheStatus) == "CacheGateway; hit"
        })
    }

    func testAPoisonMessageIsCountedAndTheNextOneStillApplies() throws {
        try start()
        try get("/catalog/p")
        XCTAssertEqual(try redis.cli("PUBLISH", channel, #"{"purge": "everything"}"#), ["1"])
        XCTAssertEqual(try redis.cli("PUBLISH", channel, "purge /catalog/p"), ["1"])
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().count) == 0 })
        XCTAssertEqual(service!.gateway.stats.snapshot.poisonEvents, 1)
    }

    func testASoftPurgeServesStaleWhileOneRefreshFetchesTheNewVersion() throws {
        let version = VersionCounter()
        backend.setBehaviour(.perRequest { _ in .delayed(0.3, .ok("v\(version.value)")) }, forPath: "/catalog/s")
        try start(routes: """
            routes:
              - { name: catalog, match: "/catalog/**", class: public, ttl: 5m, stale_while_revalidate: 30s }
            """)
        XCTAssertEqual(try get("/catalog/s").text, "v0")
        version.bump()
        XCTAssertEqual(try redis.cli("PUBLISH", channel, #"{"purge": {"paths": ["/catalog/s"]}, "soft": true}"#), ["1"])
        XCTAssertTrue(waitUntil {
            (try? self.get("/catalog/s").cacheStatus) == "CacheGateway; fwd=stale; detail=stale-while-revalidate"
        }, "the entry is stale, not gone")
        let herd = try burst(20, { _ in "/catalog/s" })
        XCTAssertTrue(herd.allSatisfy { $0.status == 200 }, "nobody waits for the monolith")
        XCTAssertTrue(waitUntil { (try? self.get("/catalog/s").text) == "v1" })
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/s"), 2, "one refresh, not a herd")
    }

    func testAPurgeArrivingWhileTheCommandConnectionsReconnectIsStillApplied() throws {
        let version = VersionCounter()
        backend.setBehaviour(.perRequest { _ in .ok("v\(version.value)") }, forPath: "/catalog/r")
        try start()
        XCTAssertEqual(try get("/catalog/r").text, "v0")
        version.bump()
        // Cut every command connection (not the subscriber's), then announce the change at once.
        _ = try? redis.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        XCTAssertEqual(try redis.cli("PUBLISH", channel, "purge /catalog/r"), ["1"])
        XCTAssertTrue(waitUntil(timeout: 10) { (try? self.get("/catalog/r").text) == "v1" }, "the purge was retried, not dropped")
    }
}

/// `PURGE <path>` over HTTP, authorised by a token or an address; never open by default.
final class PurgeAPITests: GatewayTestCase {
    private let token = "s3cret-token-0123456789"

    private func start(_ api: String) throws {
        try startGateway(extra: "invalidation: { channel: \"events-\(prefix)\", purge_api: \(api) }")
    }

    func testATokenIsNeededAndAWrongOnePurgesNothing() throws {
        try start("{ token: \"\(token)\" }")
        try get("/catalog/a")
        let anonymous = try get("/catalog/a", method: "PURGE")
        XCTAssertEqual(anonymous.status, 401)
        XCTAssertEqual(anonymous.header("WWW-Authenticate"), "Bearer realm=\"purge\"")
        XCTAssertEqual(try get("/catalog/a", headers: ["Authorization": "Bearer nope"], method: "PURGE").status, 403)
        XCTAssertEqual(try get("/catalog/a", headers: ["Authorization": "Basic \(token)"], method: "PURGE").status, 403)
        XCTAssertEqual(try get("/catalog/a").cacheStatus, "CacheGateway; hit", "nothing was purged")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/a"), 1, "PURGE never reached the backend")

        let purge = try get("/catalog/a", headers: ["Authorization": "Bearer \(token)"], method: "PURGE")
        XCTAssertEqual(purge.status, 200)
        XCTAssertEqual(purge.text, "{\"purged\": 1, \"soft\": false}\n")
        XCTAssertEqual(try get("/catalog/a").cacheStatus, "CacheGateway; fwd=miss; stored")
    }

    func testAnAllowedAddressNeedsNoTokenAndSoftModeMarksStale() throws {
        try startGateway(routes: """
            routes:
              - { name: catalog, match: "/catalog/**", class: public, ttl: 5m, stale_while_revalidate: 30s }
            """, extra: "invalidation: { channel: \"events-\(prefix)\", purge_api: { allow: [127.0.0.1] } }")
        try get("/catalog/s")
        XCTAssertEqual(try get("/catalog/s", headers: ["Purge-Mode": "soft"], method: "PURGE").text, "{\"purged\": 1, \"soft\": true}\n")
        XCTAssertEqual(try get("/catalog/s").cacheStatus, "CacheGateway; fwd=stale; detail=stale-while-revalidate")
    }

    func testWithoutPurgeAPIAPurgeIsAnOrdinaryRequest() throws {
        backend.setBehaviour(.echo, forPath: "/anything")
        try startGateway()
        let response = try get("/anything", method: "PURGE")
        XCTAssertEqual(response.header("X-Echo-Method"), "PURGE", "forwarded by the pass route, as before")
    }
}

/// Purges from a Redis stream: none lost while an instance is away, every instance applies each.
final class StreamInvalidationTests: GatewayTestCase {
    private var stream: String { "stream-" + prefix }

    private func yaml(instance: String) -> String {
        """
        listen: 127.0.0.1:0
        server: { event_loops: 2, drain_timeout: 1s }
        upstream: { url: \(backend.baseURL), timeout: 5s }
        redis: { url: redis://127.0.0.1:\(redis.port)/0, timeout: 200ms, key_prefix: "\(prefix)" }
        invalidation: { stream: "\(stream)", instance: \(instance) }
        admin: { listen: 127.0.0.1:0 }
        \(GatewayTestCase.defaultRoutes)
        """
    }

    private func waitForGroup(_ instance: String) -> Bool {
        waitUntil { ((try? self.redis.cli("XINFO", "GROUPS", self.stream)) ?? []).contains("cachegateway:\(instance)") }
    }

    func testEventsAddedWhileTheGatewayIsDownAreAppliedWhenItComesBack() throws {
        let version = VersionCounter()
        for k in 0..<100 {
            backend.setBehaviour(.perRequest { _ in .ok("p\(k) v\(version.value)") }, forPath: "/catalog/p\(k)")
        }
        try startGateway(yaml: yaml(instance: "gw-a"))
        XCTAssertTrue(waitForGroup("gw-a"))
        for k in 0..<100 { XCTAssertEqual(try get("/catalog/p\(k)").text, "p\(k) v0") }
        stopGateway()

        version.bump()
        for k in 0..<100 {
            _ = try redis.cli("XADD", stream, "*", "event", #"{"purge": {"paths": ["/catalog/p\#(k)"]}}"#)
        }
        try startGateway(yaml: yaml(instance: "gw-a"))
        XCTAssertTrue(waitUntil(timeout: 10) { (self.service?.streamConsumer?.snapshot.applied ?? 0) >= 100 })
        for k in 0..<100 { XCTAssertEqual(try get("/catalog/p\(k)").text, "p\(k) v1", "event \(k) was applied") }
        XCTAssertEqual(try redis.cli("XPENDING", stream, "cachegateway:gw-a").first, "0", "every event acknowledged")
    }

    func testEveryInstanceAppliesEveryEventAndPoisonDoesNotBlock() throws {
        let version = VersionCounter()
        backend.setBehaviour(.perRequest { _ in .ok("v\(version.value)") }, forPath: "/catalog/shared")
        try startGateway(yaml: yaml(instance: "gw-a"))
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let second = GatewayService(config: try Self.parseConfig(yaml(instance: "gw-b"), fileName: "b.yaml"), logger: logger)
        try second.start()
        defer {
            let done = expectation(description: "second stopped")
            second.shutdown { done.fulfill() }
            wait(for: [done], timeout: 10)
        }
        XCTAssertTrue(waitForGroup("gw-a") && waitForGroup("gw-b"))
        XCTAssertTrue(waitUntil { second.gateway.redisConnected })
        XCTAssertEqual(try get("/catalog/shared").text, "v0")
        version.bump()
        _ = try redis.cli("XADD", stream, "*", "event", "not an event at all")
        _ = try redis.cli("XADD", stream, "*", "event", "purge /catalog/shared")
        XCTAssertTrue(waitUntil { self.service?.streamConsumer?.snapshot.applied == 1 && second.streamConsumer?.snapshot.applied == 1 },
                      "both instances applied the purge behind the poison entry")
        XCTAssertEqual(service?.streamConsumer?.snapshot.poison, 1)
        XCTAssertEqual(second.streamConsumer?.snapshot.poison, 1)
        XCTAssertEqual(try get("/catalog/shared").text, "v1")
        let stats = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(admin("/stats").body)) as? [String: Any])
        let consumer = try XCTUnwrap(stats["stream"] as? [String: Any], "\(stats)")
        XCTAssertEqual(consumer["applied"] as? Int, 1)
        XCTAssertEqual(consumer["poison"] as? Int, 1)
    }
}

/// Tags (surrogate keys) from a route's pattern and a response header, and prefix purges.
final class TagAndPrefixPurgeTests: GatewayTestCase {
    private var channel: String { "events-" + prefix }
    private let routes = """
        routes:
          - name: resources
            match: "/users/{user}/resources"
            class: per_user
            identity: { header: Authorization }
            query: [page]
            ttl: 5m
            tags: ["user:{user}", "resources"]
          - name: catalog
            match: "/catalog/**"
            class: public
            ttl: 5m
            query: [page]
            tags_header: Surrogate-Key
        """

    private func publish(_ event: String) throws {
        XCTAssertEqual(try redis.cli("PUBLISH", channel, event), ["1"])
    }

    func testATagPurgeRemovesEveryUsersAndEveryVariantsEntry() throws {
        try startGateway(routes: routes, extra: "invalidation: { channel: \"\(channel)\" }")
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
        for user in ["Bearer a", "Bearer b"] {
            for page in 1...2 { try get("/users/1/resources?page=\(page)", headers: ["Authorization": user]) }
            try get("/users/2/resources", headers: ["Authorization": user])
        }
        XCTAssertEqual(try cacheKeys().count, 6)
        try publish(#"{"purge": {"tags": ["user:1"]}}"#)
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().count) == 2 }, "user 1's four entries gone, user 2's two kept")
        XCTAssertEqual(try get("/users/2/resources", headers: ["Authorization": "Bearer a"]).cacheStatus, "CacheGateway; hit")
        try publish(#"{"purge": {"tags": ["resources"]}}"#)
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().count) == 0 })
    }

    func testTagsFromAResponseHeaderAreKeptFromClients() throws {
        backend.setBehaviour(.ok("item 7", headers: [("Surrogate-Key", "product:7 catalog")]), forPath: "/catalog/items/7")
        backend.setBehaviour(.ok("list", headers: [("Surrogate-Key", "product:7,product:8")]), forPath: "/catalog/list")
        backend.setBehaviour(.ok("other", headers: [("Surrogate-Key", "product:9")]), forPath: "/catalog/other")
        try startGateway(routes: routes, extra: "invalidation: { channel: \"\(channel)\" }")
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
        let first = try get("/catalog/items/7")
        XCTAssertNil(first.header("Surrogate-Key"), "the tags header is the gateway's, not the client's")
        try get("/catalog/list")
        try get("/catalog/other")
        XCTAssertNil(try get("/catalog/items/7").header("Surrogate-Key"), "nor on hits")
        try publish(#"{"purge": {"tags": ["product:7"]}}"#)
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().count) == 1 })
        XCTAssertEqual(try get("/catalog/other").cacheStatus, "CacheGateway; hit")
    }

    func testATagIndexHoldsOnlyLiveEntries() throws {
        try startGateway(routes: """
            routes:
              - { name: hot, match: "/hot/**", class: public, ttl: 1s, query: [k], tags: [hot] }
            """, extra: "invalidation: { channel: \"\(channel)\" }")
        for k in 0..<50 { try get("/hot/x?k=\(k)") }
        let tagKey = prefix + "t:hot"
        XCTAssertEqual(try redis.cli("ZCARD", tagKey), ["50"])
        Thread.sleep(forTimeInterval: 1.1)
        try get("/hot/x?k=new")
        XCTAssertEqual(try redis.cli("ZCARD", tagKey), ["1"], "expired members pruned on the next add")
        let ttl = try XCTUnwrap(Int(redis.cli("PTTL", tagKey).first ?? ""))
        XCTAssertTrue((1...1000).contains(ttl), "the index lives as long as its entries: PTTL \(ttl)")
    }

    func testAPrefixPurgeRemovesThePathsUnderIt() throws {
        try startGateway(routes: routes, extra: "invalidation: { channel: \"\(channel)\" }")
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
        for path in ["/catalog/items/1", "/catalog/items/2?page=3", "/catalog/items/2", "/catalog/itemsX", "/catalog/other"] {
            try get(path)
        }
        XCTAssertEqual(try cacheKeys().count, 5)
        try publish(#"{"purge": {"prefixes": ["/catalog/items/"]}}"#)
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().count) == 2 })
        XCTAssertEqual(try get("/catalog/itemsX").cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/catalog/other").cacheStatus, "CacheGateway; hit")
    }
}
