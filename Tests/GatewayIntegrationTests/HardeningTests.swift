import Foundation
import GatewayTestSupport
import XCTest

/// Regression tests for the hardening issue: each one failed before its fix. Real gateway, real
/// redis-server, a scriptable backend on 127.0.0.1.
final class HardeningTests: GatewayTestCase {
    /// A backend that answers with whoever asked, so a leak shows as someone else's name.
    private func whoAsked(_ header: String, vary: String, delay: TimeInterval) -> TestHTTPBackend.Behaviour {
        .delayed(delay, .perRequest { request in
            .ok("for \(request.header(header) ?? "anonymous")", headers: [("Vary", vary), ("Cache-Control", "max-age=60")])
        })
    }

    private let authorizedCatalog = """
        routes:
          - name: catalog
            match: "/catalog/**"
            class: public
            allow_authorized: true
            ttl: 5m
          - name: rest
            match: "/**"
            class: pass
        """

    // MARK: 1. Coalescing never hands one user's response to another

    func testVaryAuthorizationResponseIsNotHandedToOtherUsersWaiters() throws {
        backend.setBehaviour(whoAsked("Authorization", vary: "Authorization", delay: 0.3), forPath: "/catalog/me")
        try startGateway(routes: authorizedCatalog)
        let clients = try (0..<20).map { _ in try TestClient(port: port, timeout: 10) }
        for (i, client) in clients.enumerated() {
            try client.send("GET /catalog/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer user\(i)\r\n\r\n")
        }
        for (i, client) in clients.enumerated() {
            XCTAssertEqual(try client.readResponse().text, "for Bearer user\(i)", "user \(i) got someone else's answer")
        }
    }

    func testVaryCookieResponseIsSharedOnlyWithTheSameCookie() throws {
        backend.setBehaviour(whoAsked("Cookie", vary: "Accept-Encoding, Cookie", delay: 0.3), forPath: "/catalog/me")
        try startGateway(routes: authorizedCatalog)
        // Two users, three requests each, all at once: each gets their own answer, and requests
        // with the same cookie may share one.
        let cookies = (0..<6).map { "session=s\($0 % 2)" }
        let clients = try cookies.map { _ in try TestClient(port: port, timeout: 10) }
        for (client, cookie) in zip(clients, cookies) {
            try client.send("GET /catalog/me HTTP/1.1\r\nHost: t\r\nCookie: \(cookie)\r\n\r\n")
        }
        for (client, cookie) in zip(clients, cookies) {
            XCTAssertEqual(try client.readResponse().text, "for \(cookie)")
        }
        XCTAssertLessThanOrEqual(backend.requestCount(forPath: "/catalog/me"), 6)
    }

    func testVaryStarIsNeverShared() throws {
        backend.setBehaviour(whoAsked("X-Anything", vary: "*", delay: 0.3), forPath: "/catalog/star")
        try startGateway(routes: authorizedCatalog)
        let responses = try burst(4, { _ in "/catalog/star" })
        XCTAssertEqual(responses.map(\.status), [200, 200, 200, 200])
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/star"), 4, "every waiter fetched its own")
    }

    // MARK: 2. Connection cannot strip who the request is

    func testConnectionNominatingIdentityOrFramingIsRefused() throws {
        try startGateway()
        for name in ["authorization", "Cookie", "host", "content-length", "transfer-encoding", "x-a, Authorization"] {
            let response = try get("/users/1/resources", headers: ["Authorization": "Bearer alice", "Connection": name])
            XCTAssertEqual(response.status, 400, name)
            XCTAssertTrue(response.text.hasPrefix("Connection must not name "), response.text)
        }
        XCTAssertEqual(backend.totalRequests, 0)
        // Naming an ordinary header is fine; it is dropped as hop-by-hop.
        let ok = try get("/anything", headers: ["Connection": "x-debug", "X-Debug": "1"])
        XCTAssertEqual(ok.status, 200)
        XCTAssertNil(backend.lastRequest?.header("X-Debug"))
    }

    func testConnectionCannotNominateACustomIdentityHeader() throws {
        try startGateway(routes: """
            routes:
              - name: mine
                match: "/mine"
                class: per_user
                identity: { header: X-User-Token }
                ttl: 1m
            """)
        let response = try get("/mine", headers: ["X-User-Token": "alice", "Connection": "X-User-Token"])
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(backend.totalRequests, 0)
    }

    // MARK: 3. Identity is exactly one value

    func testTwoAuthorizationFieldsAreRefused() throws {
        try startGateway()
        let client = try TestClient(port: port)
        try client.send("GET /users/1/resources HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer alice\r\nAuthorization: Bearer bob\r\n\r\n")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 400)
        XCTAssertEqual(response.text, "more than one Authorization field\n")
        XCTAssertEqual(backend.totalRequests, 0)
    }

    func testIdentityCookieTwiceIsRefusedAndOnlyItIsForwarded() throws {
        backend.setBehaviour(.perRequest { .ok("for \($0.header("Cookie") ?? "-")") }, forPath: "/me")
        try startGateway(routes: """
            routes:
              - name: me
                match: "/me"
                class: per_user
                identity: { cookie: session }
                ttl: 1m
            """)
        for cookie in ["session=alice; session=bob", "session=alice; theme=dark; session=bob"] {
            XCTAssertEqual(try get("/me", headers: ["Cookie": cookie]).status, 400, cookie)
        }
        let client = try TestClient(port: port)
        try client.send("GET /me HTTP/1.1\r\nHost: t\r\nCookie: session=alice\r\nCookie: session=bob\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 400, "two Cookie fields")
        XCTAssertEqual(backend.totalRequests, 0)
        // One session cookie: only it reaches the backend (the others are not in the key).
        XCTAssertEqual(try get("/me", headers: ["Cookie": "theme=dark; session=alice"]).text, "for session=alice")
    }

    // MARK: 5, 6. What a fill forwards is keyed or fixed

    func testClientHostIsNotForwardedOnCachedRoutes() throws {
        backend.setBehaviour(.perRequest { .ok("host \($0.header("Host") ?? "-")") }, forPath: "/catalog/h")
        try startGateway()
        let poisoned = try get("/catalog/h", headers: ["Host": "evil.example"])
        XCTAssertEqual(poisoned.text, "host 127.0.0.1:\(backend.port)", "the upstream's own authority is sent")
        XCTAssertEqual(try get("/catalog/h").text, "host 127.0.0.1:\(backend.port)")
        // Absolute-form: the target's authority replaces Host, and is not forwarded either.
        let client = try TestClient(port: port)
        try client.send("GET http://evil.example/catalog/h HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "host 127.0.0.1:\(backend.port)")
    }

    func testConfiguredUpstreamHostIsSent() throws {
        backend.setBehaviour(.perRequest { .ok("host \($0.header("Host") ?? "-")") }, forPath: "/catalog/h")
        backend.setBehaviour(.perRequest { .ok("host \($0.header("Host") ?? "-")") }, forPath: "/pass/h")
        let yaml = """
            listen: 127.0.0.1:0
            server: { event_loops: 2, drain_timeout: 1s }
            upstream: { url: \(backend.baseURL), host: api.internal }
            redis: { url: redis://127.0.0.1:\(redis.port)/0, timeout: 200ms, key_prefix: "\(prefix)" }
            \(GatewayTestCase.defaultRoutes)
            """
        try startGateway(yaml: yaml)
        XCTAssertEqual(try get("/catalog/h", headers: ["Host": "evil.example"]).text, "host api.internal")
        // Pass routes are never cached: the client's Host goes through.
        XCTAssertEqual(try get("/pass/h", headers: ["Host": "www.example"]).text, "host www.example")
    }

    func testKeyHostForwardsAndKeysTheClientsHost() throws {
        backend.setBehaviour(.perRequest { .ok("host \($0.header("Host") ?? "-")") }, forPath: "/catalog/h")
        try startGateway(extra: "cache: { key_host: true }")
        XCTAssertEqual(try get("/catalog/h", headers: ["Host": "a.example"]).text, "host a.example")
        XCTAssertEqual(try get("/catalog/h", headers: ["Host": "b.example"]).text, "host b.example")
        XCTAssertEqual(try get("/catalog/h", headers: ["Host": "a.example"]).cacheStatus, "CacheGateway; hit")
        let client = try TestClient(port: port)
        try client.send("GET http://c.example/catalog/h HTTP/1.1\r\nHost: a.example\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "host c.example", "absolute-form's authority wins")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/h"), 3)
    }

    func testUnkeyedClientHeadersAreNotForwardedOnFills() throws {
        let poison = [
            "X-Forwarded-Host": "evil.example", "X-Forwarded-Scheme": "nothttps", "X-Forwarded-Port": "1",
            "X-Host": "evil.example", "X-Original-URL": "/admin", "X-Rewrite-URL": "/admin",
            "X-HTTP-Method-Override": "DELETE", "Forwarded": "host=evil.example", "X-Forwarded-For": "6.6.6.6",
            "Accept-Language": "fr", "Accept-Encoding": "gzip",
        ]
        try startGateway(extra: "cache: { forward_headers: [Accept-Language] }")
        XCTAssertEqual(try get("/catalog/fill", headers: poison).status, 200)
        let fill = try XCTUnwrap(backend.lastRequest)
        for name in poison.keys where name != "Accept-Language" && name != "X-Forwarded-For" {
            XCTAssertNil(fill.header(name), "\(name) reached the backend on a fill")
        }
        XCTAssertEqual(fill.header("Accept-Language"), "fr", "listed in forward_headers")
        XCTAssertEqual(fill.headerValues("X-Forwarded-For"), ["127.0.0.1"], "the gateway says who asked")
        XCTAssertEqual(fill.header("X-Forwarded-Proto"), "http")

        // Pass routes forward everything.
        XCTAssertEqual(try get("/pass/x", headers: poison).status, 200)
        let passed = try XCTUnwrap(backend.lastRequest)
        XCTAssertEqual(passed.header("X-Original-URL"), "/admin")
        XCTAssertEqual(passed.header("X-Forwarded-For"), "6.6.6.6, 127.0.0.1")
    }

    // MARK: 7. TRACE

    func testTraceIsRefusedUnlessARouteListsIt() throws {
        try startGateway()
        let response = try get("/anything", headers: ["Authorization": "Bearer alice"], method: "TRACE")
        XCTAssertEqual(response.status, 405)
        XCTAssertEqual(backend.totalRequests, 0)
        XCTAssertEqual(try get("/catalog/a", method: "TRACE").status, 405)
        XCTAssertEqual(try get("/anything", method: "CONNECT").status, 501, "the parser refuses to tunnel")
        stopGateway()

        try startGateway(routes: """
            routes:
              - name: debug
                match: "/debug/**"
                class: pass
                methods: [TRACE]
            """)
        XCTAssertEqual(try get("/debug/x", method: "TRACE").status, 200)
        XCTAssertEqual(backend.lastRequest?.method, "TRACE")
    }

    // MARK: 9. Stored entries carry only framing the gateway computed

    func testHeadFromAnEntryReportsTheStoredBodysLength() throws {
        let chunkedWithLength = "HTTP/1.1 200 OK\r\nContent-Length: 999\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        backend.setBehaviour(.raw(Array(chunkedWithLength.utf8), close: true), forPath: "/catalog/te")
        try startGateway()
        let first = try get("/catalog/te")
        XCTAssertEqual(first.text, "hello")
        XCTAssertEqual(first.header("Content-Length"), "5")
        let head = try get("/catalog/te", method: "HEAD")
        XCTAssertEqual(head.cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(head.header("Content-Length"), "5")
        let hit = try get("/catalog/te")
        XCTAssertEqual(hit.header("Content-Length"), "5")
        XCTAssertEqual(hit.text, "hello")
        XCTAssertEqual(try redis.cli("--raw", "GET", try XCTUnwrap(cacheKeys().first { $0.contains(":e:") })).joined().contains("999"), false)
    }

    // MARK: 10. Upstream error text stays in the log

    func testUpstreamFailureGivesAGenericMessage() throws {
        try startGateway()
        backend.stop()  // connection refused from now on
        let miss = try get("/catalog/down")
        XCTAssertEqual(miss.status, 502)
        XCTAssertEqual(miss.text, "the upstream did not answer correctly\n")
        XCTAssertEqual(miss.cacheStatus, "CacheGateway; fwd=miss; detail=connect_failed")
        let pass = try get("/pass/down", method: "POST", body: "x")
        XCTAssertEqual(pass.status, 502)
        XCTAssertEqual(pass.text, "the upstream did not answer correctly\n")
    }

    // MARK: 14. A fill does not start twice

    func testLateRequestsAfterAFillDoNotFetchAgain() throws {
        backend.setBehaviour(.ok("page"), forPath: "/catalog/p")
        try startGateway()
        let keys = 400, workers = 20
        let failures = Atomic(0)
        let port = self.port
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for k in stride(from: worker, to: keys, by: workers) {
                // The first request fills; the second, on a new connection at once, must find it.
                for _ in 0..<2 {
                    let status = try? {
                        let client = try TestClient(port: port, timeout: 10)
                        try client.send("GET /catalog/p?page=\(k) HTTP/1.1\r\nHost: t\r\n\r\n")
                        return try client.readResponse().status
                    }()
                    if status != 200 { failures.increment() }
                }
            }
        }
        XCTAssertEqual(failures.value, 0)
        // One backend call per key. A Redis read that fails (a command timeout: rare here, common
        // under ThreadSanitizer) is a miss and may fetch again; nothing else may.
        let calls = backend.requestCount(forPath: "/catalog/p")
        let redisErrors = service!.gateway.stats.snapshot.redisErrors
        XCTAssertGreaterThanOrEqual(calls, keys)
        XCTAssertLessThanOrEqual(calls - keys, redisErrors, "\(calls) calls for \(keys) keys with \(redisErrors) Redis errors")
    }

    // MARK: 15. Namespaces cannot overlap

    func testARouteNamedLikeTheIndexNamespaceCannotPurgeOtherRoutesIndexes() throws {
        let channel = "events-" + prefix
        try startGateway(routes: """
            routes:
              - name: i
                match: "/i/**"
                class: public
                ttl: 5m
              - name: idx
                match: "/idx/**"
                class: public
                ttl: 5m
              - name: catalog
                match: "/catalog/**"
                class: public
                ttl: 5m
            """, extra: "invalidation: { channel: \"\(channel)\" }")
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
        try get("/catalog/p")
        try get("/i/p")
        XCTAssertEqual(try redis.cli("PUBLISH", channel, "purge-route i"), ["1"])
        XCTAssertEqual(try redis.cli("PUBLISH", channel, "purge-route idx"), ["1"])
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().filter { $0.contains(":e:i:") }.count) == 0 })
        XCTAssertEqual(try allKeys().filter { $0.contains(":i:") }.count, 2, "both path indexes survive")
        XCTAssertEqual(try get("/catalog/p").cacheStatus, "CacheGateway; hit")
        // The catalog's index still finds its entry.
        XCTAssertEqual(try redis.cli("PUBLISH", channel, "purge /catalog/p"), ["1"])
        XCTAssertTrue(waitUntil { (try? self.cacheKeys().filter { $0.contains(":e:catalog:") }.count) == 0 })
    }

    // MARK: 16. "stored" only when Redis took it

    func testStoreFailureIsNotClaimedAsStored() throws {
        backend.setBehaviour(.ok(String(repeating: "x", count: 4096)), forPath: "/catalog/oom")
        try startGateway()
        _ = try redis.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
        _ = try redis.cli("CONFIG", "SET", "maxmemory", "1")
        defer { _ = try? redis.cli("CONFIG", "SET", "maxmemory", "0") }
        let response = try get("/catalog/oom")
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.cacheStatus, "CacheGateway; fwd=miss; detail=store-failed")
        XCTAssertEqual(service!.gateway.stats.snapshot.storeErrors, 1)
        _ = try redis.cli("CONFIG", "SET", "maxmemory", "0")
        XCTAssertEqual(try get("/catalog/oom").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(try get("/catalog/oom").cacheStatus, "CacheGateway; hit")
    }

    // MARK: 17. Paths and queries

    func testTomcatStyleDotSegmentsAreRefused() throws {
        try startGateway()
        for path in ["/catalog/..;/users/1/resources", "/catalog/..;x=y/users/1/resources", "/catalog/.;/a"] {
            XCTAssertEqual(try get(path).status, 400, path)
        }
        XCTAssertEqual(backend.totalRequests, 0)
    }

    func testParameterWithAndWithoutEqualsAreKeyedAsForwarded() throws {
        backend.setBehaviour(.perRequest { .ok("target \($0.target)") }, forPath: "/catalog/q")
        try startGateway()
        XCTAssertEqual(try get("/catalog/q?page").text, "target /catalog/q?page")
        XCTAssertEqual(try get("/catalog/q?page=").text, "target /catalog/q?page=")
        XCTAssertEqual(try get("/catalog/q?page").text, "target /catalog/q?page")
        XCTAssertEqual(backend.requestCount(forPath: "/catalog/q"), 2)
        // Sorted, empty pieces and unlisted parameters dropped: the key is what is forwarded.
        XCTAssertEqual(try get("/catalog/q?sort=a&&x=1&page=2").text, "target /catalog/q?page=2&sort=a")
        XCTAssertEqual(try get("/catalog/q?page=2&sort=a").cacheStatus, "CacheGateway; hit")
    }
}

/// A counter several test threads bump.
private final class Atomic: @unchecked Sendable {
    private let lock = NSLock()
    private var count: Int
    init(_ value: Int) { count = value }
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
