import Foundation
import GatewayTestSupport
import XCTest

final class PerUserTests: GatewayTestCase {
    override func setUpWithError() throws {
        try super.setUpWithError()
        // The backend answers with whoever asked: a leak would show up as the wrong name.
        backend.setBehaviour(.perRequest { request in
            .ok("resources of \(request.header("Authorization") ?? "nobody")", headers: [("Content-Type", "text/plain")])
        }, forPath: "/users/1/resources")
    }

    func testEachUserGetsTheirOwnResponseNeverAnothers() throws {
        try startGateway()
        let alice = ["Authorization": "Bearer alice-secret-token"]
        let bob = ["Authorization": "Bearer bob-secret-token"]
        XCTAssertEqual(try get("/users/1/resources", headers: alice).text, "resources of Bearer alice-secret-token")
        // Bob asks for the very same path: he must get his own answer, not Alice's cached one.
        let bobFirst = try get("/users/1/resources", headers: bob)
        XCTAssertEqual(bobFirst.text, "resources of Bearer bob-secret-token")
        XCTAssertEqual(bobFirst.cacheStatus, "CacheGateway; fwd=miss; stored")
        // Both are now cached, each for its own user.
        let aliceHit = try get("/users/1/resources", headers: alice)
        XCTAssertEqual(aliceHit.cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(aliceHit.text, "resources of Bearer alice-secret-token")
        let bobHit = try get("/users/1/resources", headers: bob)
        XCTAssertEqual(bobHit.cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(bobHit.text, "resources of Bearer bob-secret-token")
        XCTAssertEqual(backend.requestCount(forPath: "/users/1/resources"), 2)
    }

    func testConcurrentUsersOnOnePathAreNeverMixed() throws {
        try startGateway()
        backend.setBehaviour(.delayed(0.2, .perRequest { request in
            .ok("resources of \(request.header("Authorization") ?? "nobody")")
        }), forPath: "/users/1/resources")
        let responses = try (0..<10).map { user in
            (user, try TestClient(port: port, timeout: 10))
        }
        for _ in 0..<3 {
            for (user, client) in responses {
                try client.send("GET /users/1/resources HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer u\(user)\r\n\r\n")
            }
            for (user, client) in responses {
                XCTAssertEqual(try client.readResponse().text, "resources of Bearer u\(user)")
            }
        }
        XCTAssertEqual(backend.requestCount(forPath: "/users/1/resources"), 10, "one backend call per user")
    }

    func testRequestWithoutIdentityIsPassedThroughAndNotCached() throws {
        try startGateway()
        let first = try get("/users/1/resources")
        XCTAssertEqual(first.text, "resources of nobody")
        XCTAssertEqual(first.cacheStatus, "CacheGateway; fwd=bypass; detail=no-identity")
        try get("/users/1/resources")
        XCTAssertEqual(backend.requestCount(forPath: "/users/1/resources"), 2)
        XCTAssertEqual(try cacheKeys(), [])
    }

    func testNoRawCredentialIsStoredInRedis() throws {
        try startGateway()
        try get("/users/1/resources", headers: ["Authorization": "Bearer alice-secret-token"])
        try get("/users/1/resources", headers: ["Authorization": "Bearer bob-secret-token"])
        let entries = try redis.dump().filter { $0.key.hasPrefix(prefix) }
        XCTAssertEqual(entries.count, 3, "two entries and the path's index")
        for entry in entries {
            XCTAssertFalse(entry.key.contains("secret"), "credential in key \(entry.key)")
            XCTAssertFalse(entry.key.contains("alice") || entry.key.contains("bob"))
            // The stored response body names the user (that is the backend's answer), but the
            // credential may only be there because the backend put it in the body.
            XCTAssertFalse(entry.value.contains("Authorization"), "request headers must not be stored")
        }
    }

    func testCookieIdentity() throws {
        backend.setBehaviour(.perRequest { request in
            .ok("cart of \(request.header("Cookie") ?? "nobody")")
        }, forPath: "/users/2/resources")
        try startGateway(routes: """
            routes:
              - name: carts
                match: "/users/{user}/resources"
                class: per_user
                identity: { cookie: session }
                ttl: 1m
            """)
        let a = try get("/users/2/resources", headers: ["Cookie": "theme=dark; session=AAA"])
        let b = try get("/users/2/resources", headers: ["Cookie": "session=BBB; theme=dark"])
        XCTAssertNotEqual(a.text, b.text)
        XCTAssertEqual(try get("/users/2/resources", headers: ["Cookie": "session=AAA; theme=light"]).cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(try get("/users/2/resources", headers: ["Cookie": "theme=dark"]).cacheStatus, "CacheGateway; fwd=bypass; detail=no-identity")
    }
}
