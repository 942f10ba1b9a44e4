import Foundation
import GatewayTestSupport
import XCTest

/// The admin listener (`admin:`): its endpoints, what the public port no longer answers, `/readyz`
/// flipping with Redis and the upstream, `/config` redaction, and the purge API on it.
final class AdminTests: GatewayTestCase {
    private let token = "s3cret-token-0123456789"
    private let adminBlock = "admin: { listen: 127.0.0.1:0 }"

    private func json(_ response: TestClient.Response, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any], response.text, file: file, line: line)
    }

    func testEveryAdminEndpointAnswersOnTheAdminPort() throws {
        try startGateway(extra: adminBlock + "\ninvalidation: { channel: \"events-\(prefix)\", purge_api: { allow: [127.0.0.1] } }")
        try get("/catalog/a")
        try get("/catalog/a")

        let page = try admin("/")
        XCTAssertEqual(page.status, 200)
        XCTAssertEqual(page.header("Content-Type"), "text/html; charset=utf-8")
        XCTAssertTrue(page.header("Content-Security-Policy")?.hasPrefix("default-src 'none'") ?? false)
        XCTAssertTrue(page.text.contains("<title>CacheGateway status</title>"))

        let metrics = try admin("/metrics")
        XCTAssertEqual(metrics.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        let exposition = try PrometheusExposition(metrics.text)
        XCTAssertEqual(exposition.value("cachegateway_requests_total", ["route": "catalog", "outcome": "hit"]), 1)
        XCTAssertEqual(exposition.value("cachegateway_requests_total", ["route": "-", "outcome": "bypass"]), 0,
                       "admin requests are not counted")

        let stats = try json(admin("/stats"))
        XCTAssertEqual((stats["totals"] as? [String: Int])?["hits"], 1)
        XCTAssertEqual((stats["totals"] as? [String: Int])?["misses"], 1)
        let routes = try XCTUnwrap(stats["routes"] as? [[String: Any]])
        XCTAssertEqual((routes.first { $0["name"] as? String == "catalog" }?["requests"] as? [String: Int])?["hit"], 1)
        XCTAssertEqual(stats["redis"] as? [String: Int], ["loops": 2, "connected_loops": 2, "errors": 0])
        XCTAssertNotNil(stats["version"] as? String)

        let config = try json(admin("/config"))
        XCTAssertEqual((config["routes"] as? [[String: Any]])?.map { $0["name"] as? String }, ["catalog", "resources", "rest"])

        XCTAssertEqual(try admin("/healthz").text, "ok\n")
        XCTAssertTrue(waitUntil { (try? self.admin("/readyz").status) == 200 })
        XCTAssertEqual(try admin("/readyz").text, "{\"ready\":true,\"redis\":{\"ok\":true},\"upstream\":{\"ok\":true}}\n")

        XCTAssertEqual(try admin("/nothing-here").status, 404)
        let wrongMethod = try admin("/metrics", method: "POST")
        XCTAssertEqual(wrongMethod.status, 405)
        XCTAssertEqual(wrongMethod.header("Allow"), "GET, HEAD")
        XCTAssertEqual(try admin("/purge").status, 405)
        XCTAssertEqual(backend.totalRequests, 1, "only the one miss reached the backend")
    }

    func testAdminPathsGoToTheRoutesOnThePublicPort() throws {
        let paths = ["/metrics", "/stats", "/config", "/__gateway/stats", "/__gateway/metrics", "/", "/purge"]
        try startGateway(extra: adminBlock)
        for path in paths {
            XCTAssertEqual(try get(path).text, "ok", path)
            XCTAssertEqual(backend.requestCount(forPath: path), 1, "\(path) reached the backend through the pass route")
        }
        XCTAssertEqual(try get("/healthz").text, "ok\n", "public_health defaults to true")
        XCTAssertEqual(backend.requestCount(forPath: "/healthz"), 0)
        stopGateway()

        // Without an admin listener the old stats path is the backend's too.
        try startGateway()
        XCTAssertEqual(try get("/__gateway/stats").text, "ok")
        XCTAssertEqual(backend.requestCount(forPath: "/__gateway/stats"), 2)
        XCTAssertEqual(try get("/healthz").text, "ok\n")
    }

    func testPublicHealthFalseGivesHealthPathsToTheRoutes() throws {
        try startGateway(extra: "admin: { listen: 127.0.0.1:0, public_health: false }")
        XCTAssertEqual(try get("/healthz").text, "ok")
        XCTAssertEqual(try get("/readyz").text, "ok")
        XCTAssertEqual(backend.requestCount(forPath: "/healthz"), 1)
        XCTAssertEqual(backend.requestCount(forPath: "/readyz"), 1)
        XCTAssertEqual(try admin("/healthz").text, "ok\n")
        XCTAssertTrue(waitUntil { (try? self.admin("/readyz").status) == 200 })
    }

    /// A password Redis does not expect: `/config` shows neither secret, and `/readyz` says the
    /// handshake was refused (a loop is ready only once authenticated).
    func testConfigIsRedactedAndARefusedPasswordIsNotReady() throws {
        try startGateway(yaml: """
            listen: 127.0.0.1:0
            server: { event_loops: 2, drain_timeout: 1s }
            upstream: { url: \(backend.baseURL), connect_timeout: 1s }
            redis: { url: "redis://:hunter2@127.0.0.1:\(redis.port)/0", timeout: 200ms, key_prefix: "\(prefix)" }
            invalidation: { channel: "events-\(prefix)", purge_api: { token: "\(token)" } }
            \(adminBlock)
            routes:
              - { name: rest, match: "/**", class: pass }
            """, waitForRedis: false)
        let text = try admin("/config").text
        XCTAssertFalse(text.contains("hunter2"), text)
        XCTAssertFalse(text.contains(token), text)
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary)
        XCTAssertEqual(config["redis"] as? NSDictionary, [
            "url": "redis://127.0.0.1:\(redis.port)/0", "password": "<redacted>", "timeout": "200ms",
            "key_prefix": prefix, "connections": 1,
        ] as NSDictionary)
        XCTAssertEqual((config["invalidation"] as? NSDictionary)?["purge_api"] as? NSDictionary, [
            "token": "<redacted>", "token_env": NSNull(), "allow": [String](), "public": false,
        ] as NSDictionary)

        XCTAssertTrue(waitUntil { ((try? self.admin("/readyz").text) ?? "").contains("handshake refused") })
        let ready = try json(admin("/readyz"))
        XCTAssertEqual(ready["ready"] as? Bool, false)
        let redisPart = try XCTUnwrap(ready["redis"] as? [String: Any])
        XCTAssertEqual(redisPart["loops_down"] as? [Int], [0, 1])
        XCTAssertTrue((redisPart["reason"] as? String)?.hasPrefix("no Redis connection on event loop(s) 0, 1: handshake refused: ") ?? false,
                      "\(redisPart)")
    }

    func testReadyzFlipsWhenRedisStopsAndComesBack() throws {
        try startGateway(extra: adminBlock)
        XCTAssertTrue(waitUntil { (try? self.admin("/readyz").status) == 200 })
        redis.stop()
        XCTAssertTrue(waitUntil { (try? self.admin("/readyz").status) == 503 })
        let down = try admin("/readyz")
        XCTAssertEqual(down.status, 503)
        let body = try json(down)
        XCTAssertEqual(body["ready"] as? Bool, false)
        XCTAssertEqual(body["upstream"] as? [String: Bool], ["ok": true])
        let redisPart = try XCTUnwrap(body["redis"] as? [String: Any])
        XCTAssertEqual(redisPart["ok"] as? Bool, false)
        XCTAssertEqual(redisPart["loops_down"] as? [Int], [0, 1])
        XCTAssertTrue((redisPart["reason"] as? String)?.hasPrefix("no Redis connection on event loop(s) 0, 1: ") ?? false, "\(redisPart)")
        XCTAssertEqual(try admin("/healthz").status, 200, "alive, though not ready")
        try redis.start()
        XCTAssertTrue(waitUntil(timeout: 5) { (try? self.admin("/readyz").status) == 200 })
    }

    func testReadyzNamesTheUpstreamWhenItIsDown() throws {
        try startGateway(extra: adminBlock)
        XCTAssertTrue(waitUntil { (try? self.admin("/readyz").status) == 200 })
        let upstream = backend.baseURL.replacingOccurrences(of: "http://", with: "")
        backend.stop()
        // The probe runs every 2 s.
        XCTAssertTrue(waitUntil(timeout: 6) { (try? self.admin("/readyz").status) == 503 })
        let body = try json(admin("/readyz"))
        XCTAssertEqual(body["redis"] as? [String: Bool], ["ok": true])
        let upstreamPart = try XCTUnwrap(body["upstream"] as? [String: Any])
        XCTAssertEqual(upstreamPart["ok"] as? Bool, false)
        XCTAssertEqual(upstreamPart["reason"] as? String, "connect to \(upstream): Connection refused")
        XCTAssertEqual(try get("/readyz").status, 503, "the public /readyz says the same")
    }

    func testPurgeOnTheAdminPortFollowsTheTokenRules() throws {
        try startGateway(extra: adminBlock + "\ninvalidation: { channel: \"events-\(prefix)\", purge_api: { token: \"\(token)\" } }")
        try get("/catalog/p")
        XCTAssertEqual(try cacheKeys().count, 1)
        XCTAssertEqual(try admin("/purge?path=/catalog/p", method: "POST").status, 401)
        XCTAssertEqual(try admin("/purge?path=/catalog/p", headers: ["Authorization": "Bearer wrong"], method: "POST").status, 403)
        XCTAssertEqual(try cacheKeys().count, 1, "nothing purged without the token")
        XCTAssertEqual(try admin("/purge", headers: ["Authorization": "Bearer \(token)"], method: "POST").status, 400)

        let purged = try admin("/purge?path=%2Fcatalog%2Fp", headers: ["Authorization": "Bearer \(token)"], method: "POST")
        XCTAssertEqual(purged.text, "{\"purged\": 1, \"soft\": false}\n")
        XCTAssertEqual(try cacheKeys(), [])

        // The public port no longer purges (purge_api.public is false): PURGE goes to the routes.
        try get("/catalog/p")
        let publicPurge = try get("/catalog/p", headers: ["Authorization": "Bearer \(token)"], method: "PURGE")
        XCTAssertNotEqual(publicPurge.text, "{\"purged\": 1, \"soft\": false}\n")
        XCTAssertEqual(try cacheKeys().count, 1)
        // PURGE <path> works on the admin port too.
        XCTAssertEqual(try admin("/catalog/p", headers: ["Authorization": "Bearer \(token)"], method: "PURGE").status, 200)
        XCTAssertEqual(try cacheKeys(), [])
    }

    func testPurgeByAddressAndOnThePublicPortWhenAllowed() throws {
        try startGateway(extra: adminBlock + "\ninvalidation: { channel: \"events-\(prefix)\", purge_api: { allow: [127.0.0.1], public: true } }")
        try get("/catalog/q")
        XCTAssertEqual(try admin("/purge?path=/catalog/q", method: "POST").text, "{\"purged\": 1, \"soft\": false}\n")
        XCTAssertEqual(try cacheKeys(), [])
        try get("/catalog/q")
        XCTAssertEqual(try get("/catalog/q", method: "PURGE").text, "{\"purged\": 1, \"soft\": false}\n", "public: true keeps PURGE here")
        XCTAssertEqual(try cacheKeys(), [])
    }

    func testAdminPurgeWithoutPurgeAPIIsRefused() throws {
        try startGateway(extra: adminBlock)
        try get("/catalog/r")
        XCTAssertEqual(try admin("/purge?path=/catalog/r", method: "POST").status, 404)
        XCTAssertEqual(try cacheKeys().count, 1)
    }

    func testStatusPageIsSelfContained() throws {
        try startGateway(extra: adminBlock)
        let page = try admin("/").text
        XCTAssertGreaterThan(page.count, 1000)
        for external in ["http://", "https://", "src=\"http", "href=\"http", "@import", "url(http", "src=\"//", "href=\"//"] {
            XCTAssertFalse(page.contains(external), "the status page must load nothing from elsewhere: \(external)")
        }
        XCTAssertTrue(page.contains("fetch(\"stats\""), "it polls this listener's /stats")
    }
}
