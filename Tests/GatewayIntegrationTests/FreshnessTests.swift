import Foundation
import GatewayTestSupport
import XCTest

/// The freshness model on real parts: stale-while-revalidate, stale-if-error, revalidation with
/// 304, hit-for-miss, the waiter cap, the Redis-down policy and conditional requests.
final class FreshnessTests: GatewayTestCase {
    private func route(_ extra: String) -> String {
        """
        routes:
          - name: catalog
            match: "/catalog/**"
            class: public
            ttl: 1s
        \(extra.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
          - name: rest
            match: "/**"
            class: pass
        """
    }

    /// A backend that numbers its answers, so a refresh shows as a new version.
    private func versioned(delay: TimeInterval = 0, headers: [(name: String, value: String)] = []) -> TestHTTPBackend.Behaviour {
        let counter = Counter()
        return .perRequest { _ in
            .delayed(delay, .ok("v\(counter.next())", headers: headers))
        }
    }

    func testAnExpiredHotKeyIsServedStaleToEveryoneWithOneRefresh() throws {
        backend.setBehaviour(versioned(delay: 0.3), forPath: "/catalog/hot")
        try startGateway(routes: route("stale_while_revalidate: 30s"), upstreamMaxConnections: 64)
        XCTAssertEqual(try get("/catalog/hot").text, "v1")
        Thread.sleep(forTimeInterval: 1.1)  // past the 1 s TTL: the entry is stale

        let responses = try burst(50, { _ in "/catalog/hot" })
        XCTAssertEqual(Set(responses.map(\.text)), ["v1"], "everyone got the stale entry at once, nobody waited for v2")
        XCTAssertEqual(Set(responses.map(\.cacheStatus)), ["CacheGateway; fwd=stale; detail=stale-while-revalidate"])
        XCTAssertTrue(responses.allSatisfy { Int($0.header("Age") ?? "") ?? -1 >= 1 }, "Age counts from the original store")
        XCTAssertTrue(waitUntil { (try? self.get("/catalog/hot").text) == "v2" }, "the refresh stored v2")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/hot"), 2, "one background refresh for 50 stale answers")
        XCTAssertEqual(service!.gateway.stats.snapshot.refreshes, 1)
    }

    func testWithoutAStaleWindowAnExpiredKeyIsFetchedAgain() throws {
        backend.setBehaviour(versioned(), forPath: "/catalog/plain")
        try startGateway(routes: route(""))
        XCTAssertEqual(try get("/catalog/plain").text, "v1")
        Thread.sleep(forTimeInterval: 1.1)
        let again = try get("/catalog/plain")
        XCTAssertEqual(again.text, "v2")
        XCTAssertEqual(again.cacheStatus, "CacheGateway; fwd=miss; stored")
    }

    func testWhenTheBackendIsDownTheStaleEntryIsServedInsideTheWindowOnly() throws {
        backend.setBehaviour(versioned(), forPath: "/catalog/p")
        try startGateway(routes: route("stale_if_error: 2s"))
        XCTAssertEqual(try get("/catalog/p").text, "v1")
        backend.stop()  // refused from now on
        Thread.sleep(forTimeInterval: 1.1)
        let inside = try get("/catalog/p")
        XCTAssertEqual(inside.status, 200)
        XCTAssertEqual(inside.text, "v1")
        XCTAssertEqual(inside.cacheStatus, "CacheGateway; fwd=stale; fwd-status=502; detail=stale-if-error")
        // Concurrent requests during the outage all get it too (the leader's and the waiters').
        let herd = try burst(10, { _ in "/catalog/p" })
        XCTAssertEqual(Set(herd.map(\.status)), [200], "\(herd.filter { $0.status != 200 }.map { "\($0.status) \($0.cacheStatus ?? "-")" })")
        Thread.sleep(forTimeInterval: 2.0)  // past the 1 s TTL + 2 s window
        let after = try get("/catalog/p")
        XCTAssertEqual(after.status, 502)
        XCTAssertEqual(after.cacheStatus, "CacheGateway; fwd=miss; detail=connect_failed")
    }

    func testWhileTheBackendHangsOnlyTheLeaderWaitsTheOthersGetTheStaleEntryAtOnce() throws {
        let hung = Flag()
        backend.setBehaviour(.perRequest { _ in hung.isSet ? .neverAnswer : .ok("good") }, forPath: "/catalog/h")
        try startGateway(routes: route("stale_if_error: 1m"), upstreamTimeout: "1500ms")
        XCTAssertEqual(try get("/catalog/h").text, "good")
        hung.set()
        Thread.sleep(forTimeInterval: 1.1)
        let leader = try TestClient(port: port, timeout: 10)
        try leader.send("GET /catalog/h HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertTrue(waitUntil { self.backend.requestCount(forPath: "/catalog/h") == 2 }, "the leader's fetch is at the backend")
        // While it hangs, others are answered from the stale entry without joining the wait.
        let others = try burst(5, { _ in "/catalog/h" })
        XCTAssertEqual(Set(others.map(\.text)), ["good"])
        XCTAssertEqual(Set(others.map(\.cacheStatus)), ["CacheGateway; fwd=stale; collapsed; detail=updating"])
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/h"), 2, "no second fetch")
        let led = try leader.readResponse()
        XCTAssertEqual(led.text, "good")
        XCTAssertEqual(led.cacheStatus, "CacheGateway; fwd=stale; fwd-status=504; detail=stale-if-error")
    }

    func testAnErrorStatusFromTheBackendIsAlsoCoveredByTheStaleEntry() throws {
        let failing = Flag()
        backend.setBehaviour(.perRequest { _ in
            failing.isSet ? .respond(status: 503, headers: [], body: Array("busy".utf8), framing: .contentLength) : .ok("good")
        }, forPath: "/catalog/e")
        try startGateway(routes: route("stale_if_error: 1m"))
        XCTAssertEqual(try get("/catalog/e").text, "good")
        failing.set()
        Thread.sleep(forTimeInterval: 1.1)
        let response = try get("/catalog/e")
        XCTAssertEqual(response.text, "good")
        XCTAssertEqual(response.cacheStatus, "CacheGateway; fwd=stale; fwd-status=503; detail=stale-if-error")
    }

    func testARefreshOfAnUnchangedResourceIsA304WithoutABody() throws {
        let body = String(repeating: "b", count: 20_000)
        let conditional = Counter()
        backend.setBehaviour(.perRequest { request in
            if request.header("If-None-Match") == "\"v1\"" {
                conditional.add()
                return .respond(status: 304, headers: [("ETag", "\"v1\""), ("X-Version", "renewed")], body: [], framing: .contentLength)
            }
            return .ok(body, headers: [("ETag", "\"v1\""), ("X-Version", "first")])
        }, forPath: "/catalog/r")
        try startGateway(routes: route("keep: 1h"))
        XCTAssertEqual(try get("/catalog/r").text.count, body.count)
        Thread.sleep(forTimeInterval: 1.1)
        let renewed = try get("/catalog/r")
        XCTAssertEqual(renewed.cacheStatus, "CacheGateway; fwd=stale; fwd-status=304; stored")
        XCTAssertEqual(renewed.text, body, "the stored body, not transferred again")
        XCTAssertEqual(renewed.header("X-Version"), "renewed", "the 304's headers replace the stored ones")
        XCTAssertEqual(conditional.value, 1)
        XCTAssertEqual(service!.gateway.stats.snapshot.revalidated, 1)
        XCTAssertEqual(try get("/catalog/r").cacheStatus, "CacheGateway; hit", "renewed for another TTL")
    }

    func testHitForMissLetsConcurrentRequestsForAnUncacheableKeyRunInParallel() throws {
        backend.setBehaviour(.delayed(0.5, .ok("private", headers: [("Cache-Control", "private")])), forPath: "/catalog/u")
        try startGateway(routes: route(""), upstreamMaxConnections: 64)
        XCTAssertEqual(try get("/catalog/u").cacheStatus, "CacheGateway; fwd=miss; detail=not-stored-private")
        let responses = try burst(30, { _ in "/catalog/u" })
        XCTAssertEqual(Set(responses.map(\.cacheStatus)), ["CacheGateway; fwd=miss; detail=uncacheable"])
        // All 30 were at the backend at the same time: none queued behind another's fetch.
        XCTAssertEqual(backend.maxConcurrentRequests, 30)
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/u"), 31)
    }

    func testWaitersBeyondMaxWaitersGetA503() throws {
        backend.setBehaviour(.delayed(0.5, .ok("slow")), forPath: "/catalog/w")
        try startGateway(routes: route("max_waiters: 2"))
        let responses = try burst(6, { _ in "/catalog/w" })
        XCTAssertEqual(responses.filter { $0.status == 200 }.count, 3, "the leader and two waiters")
        let refused = responses.filter { $0.status == 503 }
        XCTAssertEqual(refused.count, 3)
        XCTAssertEqual(Set(refused.map(\.cacheStatus)), ["CacheGateway; fwd=miss; detail=max-waiters"])
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/w"), 1)
    }

    func testOnStoreErrorFailKeepsTrafficOffTheBackendWhileRedisIsDown() throws {
        try startGateway(routes: """
            routes:
              - { name: guarded, match: "/guarded/**", class: public, ttl: 1m, on_store_error: fail }
              - { name: catalog, match: "/catalog/**", class: public, ttl: 1m }
            """)
        redis.stop()
        let guarded = try get("/guarded/a")
        XCTAssertEqual(guarded.status, 503)
        XCTAssertTrue(guarded.cacheStatus.hasPrefix("CacheGateway; fwd=miss; detail=redis-"), guarded.cacheStatus)
        XCTAssertEqual(backend.requestCount(forPath: "/guarded/a"), 0)
        XCTAssertEqual(try get("/catalog/a").status, 200, "the default, origin, is served from upstream")
    }

    func testConditionalRequestsAreAnsweredFromTheCache() throws {
        backend.setBehaviour(.ok("page", headers: [("ETag", "\"e1\""), ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")]),
                             forPath: "/catalog/c")
        try startGateway()
        try get("/catalog/c")
        let ims = try get("/catalog/c", headers: ["If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"])
        XCTAssertEqual(ims.status, 304)
        XCTAssertEqual(ims.cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/catalog/c", headers: ["If-Modified-Since": "Sat, 05 Nov 1994 08:49:37 GMT"]).status, 200)
        XCTAssertEqual(try get("/catalog/c", headers: ["If-None-Match": "\"e1\""]).status, 304)
        let head = try get("/catalog/c", method: "HEAD")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("Content-Length"), "4")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/c"), 1)
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func next() -> Int { lock.withLock { count += 1; return count } }
    func add() { _ = next() }
    var value: Int { lock.withLock { count } }
}

private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var on = false
    func set() { lock.withLock { on = true } }
    var isSet: Bool { lock.withLock { on } }
}

/// RFC 9111 §4.4: a successful unsafe request purges what the cache holds for its path.
final class UnsafeMethodInvalidationTests: GatewayTestCase {
    func testASuccessfulPostPurgesThePathAndItsLocationBeforeAnswering() throws {
        let version = VersionBox()
        backend.setBehaviour(.perRequest { request in
            if request.method == "POST" {
                version.bump()
                return .respond(status: 201, headers: [("Location", "/users/2/resources")], body: [], framing: .contentLength)
            }
            return .ok("resources v\(version.value) for \(request.header("Authorization") ?? "-")")
        }, forPath: "/users/1/resources")
        backend.setBehaviour(.perRequest { _ in .ok("two v\(version.value)") }, forPath: "/users/2/resources")
        try startGateway(routes: """
            routes:
              - { name: resources, match: "/users/{user}/resources", class: per_user, identity: { header: Authorization }, ttl: 5m }
              - { name: rest, match: "/**", class: pass }
            """)
        let alice = ["Authorization": "Bearer alice"], bob = ["Authorization": "Bearer bob"]
        XCTAssertEqual(try get("/users/1/resources", headers: alice).text, "resources v0 for Bearer alice")
        XCTAssertEqual(try get("/users/1/resources", headers: bob).text, "resources v0 for Bearer bob")
        XCTAssertEqual(try get("/users/2/resources", headers: alice).text, "two v0")
        XCTAssertEqual(try get("/users/1/resources", headers: alice).cacheStatus, "CacheGateway; hit")

        let post = try get("/users/1/resources", headers: alice, method: "POST", body: "{}")
        XCTAssertEqual(post.status, 201)
        // The very next GET reads the write: the purge happened before the 201 was sent.
        let after = try get("/users/1/resources", headers: alice)
        XCTAssertEqual(after.text, "resources v1 for Bearer alice")
        XCTAssertEqual(after.cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(try get("/users/1/resources", headers: bob).text, "resources v1 for Bearer bob", "every user's entry")
        XCTAssertEqual(try get("/users/2/resources", headers: alice).text, "two v1", "the Location's entries too")
    }

    func testAFailedOrSafeRequestPurgesNothing() throws {
        backend.setBehaviour(.perRequest { request in
            request.method == "GET" ? .ok("page") : .respond(status: 409, headers: [], body: [], framing: .contentLength)
        }, forPath: "/catalog/p")
        try startGateway()
        try get("/catalog/p")
        XCTAssertEqual(try get("/catalog/p", method: "POST", body: "x").status, 409)
        XCTAssertEqual(try get("/catalog/p", method: "OPTIONS").status, 409)
        XCTAssertEqual(try get("/catalog/p").cacheStatus, "CacheGateway; hit")
    }
}

private final class VersionBox: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func bump() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}

/// Responses that vary, stored per variant of what the gateway forwards.
final class VariantTests: GatewayTestCase {
    private let routes = """
        routes:
          - name: catalog
            match: "/catalog/**"
            class: public
            ttl: 5m
            forward_headers: [Accept-Encoding, Accept-Language]
            max_variants: 3
          - name: rest
            match: "/**"
            class: pass
        """

    func testVariantsByAcceptEncodingAreStoredAndServedToEquivalentRequests() throws {
        backend.setBehaviour(.perRequest { request in
            .ok("encoded for [\(request.header("Accept-Encoding") ?? "none")]", headers: [("Vary", "Accept-Encoding")])
        }, forPath: "/catalog/v")
        try startGateway(routes: routes)
        XCTAssertEqual(try get("/catalog/v", headers: ["Accept-Encoding": "gzip, deflate"]).text, "encoded for [gzip, deflate]")
        XCTAssertEqual(try get("/catalog/v", headers: ["Accept-Encoding": "br"]).text, "encoded for [br]")
        XCTAssertEqual(try get("/catalog/v").text, "encoded for [none]")
        // Equivalent requests share a variant: the recognised codings are what count.
        let gzip = try get("/catalog/v", headers: ["Accept-Encoding": "x-gzip"])
        XCTAssertEqual(gzip.text, "encoded for [gzip, deflate]")
        XCTAssertEqual(gzip.cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/catalog/v", headers: ["Accept-Encoding": "br;q=1"]).cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/catalog/v").cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/v"), 3)
    }

    func testConcurrentRequestsForDifferentVariantsNeverGetEachOthers() throws {
        backend.setBehaviour(.delayed(0.2, .perRequest { request in
            .ok("lang \(request.header("Accept-Language") ?? "none")", headers: [("Vary", "Accept-Language")])
        }), forPath: "/catalog/l")
        try startGateway(routes: routes)
        let languages = ["fr", "de", "fr", "en", "de", "fr"]
        let clients = try languages.map { _ in try TestClient(port: port, timeout: 10) }
        for (client, language) in zip(clients, languages) {
            try client.send("GET /catalog/l HTTP/1.1\r\nHost: t\r\nAccept-Language: \(language)\r\n\r\n")
        }
        for (client, language) in zip(clients, languages) {
            XCTAssertEqual(try client.readResponse().text, "lang \(language)")
        }
        for language in ["fr", "de", "en"] {
            XCTAssertEqual(try get("/catalog/l", headers: ["Accept-Language": language]).text, "lang \(language)")
        }
    }

    func testVariantsBeyondMaxVariantsAreServedButNotKept() throws {
        backend.setBehaviour(.perRequest { request in
            .ok("lang \(request.header("Accept-Language") ?? "none")", headers: [("Vary", "Accept-Language")])
        }, forPath: "/catalog/m")
        try startGateway(routes: routes)
        for language in ["a", "b", "c", "d", "e"] {
            XCTAssertEqual(try get("/catalog/m", headers: ["Accept-Language": language]).text, "lang \(language)")
        }
        XCTAssertEqual(try get("/catalog/m", headers: ["Accept-Language": "a"]).cacheStatus, "CacheGateway; hit")
        XCTAssertTrue(waitUntil {
            (try? self.cacheKeys().filter { !$0.hasSuffix(":vs") }.count) == 4  // the marker and 3 variants
        }, "\((try? cacheKeys()) ?? [])")
        XCTAssertTrue(waitUntil { self.service!.gateway.inFlightKeyCount == 0 }, "held results released")
        XCTAssertEqual(try get("/catalog/m", headers: ["Accept-Language": "e"]).cacheStatus, "CacheGateway; fwd=miss; stored",
                       "the variant over the cap was not kept")
    }

    func testAVaryOnAHeaderThatIsNotForwardedSharesOneVariant() throws {
        backend.setBehaviour(.ok("same for all", headers: [("Vary", "Accept")]), forPath: "/catalog/a")
        try startGateway(routes: routes)  // Accept is allowed to vary on, but not forwarded
        try get("/catalog/a", headers: ["Accept": "text/html"])
        XCTAssertEqual(try get("/catalog/a", headers: ["Accept": "application/json"]).cacheStatus, "CacheGateway; hit",
                       "the backend never saw Accept, so its answer is the same for every Accept")
    }

    func testVaryCookieOnAPublicRouteIsNeverStored() throws {
        backend.setBehaviour(.ok("x", headers: [("Vary", "Cookie")]), forPath: "/catalog/c")
        try startGateway(routes: routes)
        XCTAssertEqual(try get("/catalog/c").cacheStatus, "CacheGateway; fwd=miss; detail=not-stored-vary")
    }
}
