import Foundation
import GatewayTestSupport
import XCTest

/// The one property this product must never break: one user's answer is never served to another.
/// Many users at once, per_user routes (header and cookie identity), public routes whose answers
/// vary on Authorization or Cookie, plain public routes, keep-alive with pipelining, and cold
/// keys hit by several users at the same moment. Every response's owner is checked.
final class CrossUserPropertyTests: GatewayTestCase {
    private let routes = """
        routes:
          - name: resources
            match: "/users/{user}/resources"
            class: per_user
            identity: { header: Authorization }
            query: [page]
            ttl: 5m
          - name: me
            match: "/me/{k}"
            class: per_user
            identity: { cookie: session }
            query: [page]
            ttl: 5m
          - name: catalog
            match: "/catalog/**"
            class: public
            allow_authorized: true
            query: [page]
            ttl: 5m
        """

    /// What the backend answers: the path and query it was asked for, and for every route but
    /// the plain catalog, who asked. A response is correct exactly when it equals this for the
    /// request that received it.
    private static func expected(path: String, query: String, auth: String, session: String) -> String {
        let target = path + "?" + query
        if path.hasPrefix("/users/") || path.hasPrefix("/catalog/vary/") { return "\(target) for \(auth)" }
        if path.hasPrefix("/me/") || path.hasPrefix("/catalog/cv/") { return "\(target) for \(session)" }
        return "\(target) for anyone"
    }

    func testNoResponseEverReachesAnotherUser() throws {
        let delay: TimeInterval = 0.02  // long enough for requests of several users to collapse
        for k in 0..<3 {
            backend.setBehaviour(.delayed(delay, .perRequest { r in
                .ok("\(r.target) for \(r.header("Authorization") ?? "nobody")")
            }), forPath: "/users/\(k)/resources")
            backend.setBehaviour(.delayed(delay, .perRequest { r in
                .ok("\(r.target) for \(r.header("Authorization") ?? "nobody")", headers: [("Vary", "Authorization")])
            }), forPath: "/catalog/vary/\(k)")
            backend.setBehaviour(.delayed(delay, .perRequest { r in
                .ok("\(r.target) for \(r.header("Cookie") ?? "nobody")")
            }), forPath: "/me/\(k)")
            backend.setBehaviour(.delayed(delay, .perRequest { r in
                .ok("\(r.target) for \(r.header("Cookie") ?? "nobody")", headers: [("Vary", "Accept-Encoding, Cookie")])
            }), forPath: "/catalog/cv/\(k)")
            backend.setBehaviour(.delayed(delay, .perRequest { r in .ok("\(r.target) for anyone") }), forPath: "/catalog/plain/\(k)")
        }
        try startGateway(routes: routes)

        let paths = (0..<3).flatMap { k in
            ["/users/\(k)/resources", "/catalog/vary/\(k)", "/me/\(k)", "/catalog/cv/\(k)", "/catalog/plain/\(k)"]
        }
        let workers = 8, usersPerWorker = 5, rounds = 15, pipelineDepth = 3
        let port = self.port
        let tally = Tally()
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var rng = SplitMix64(seed: UInt64(worker + 1))
            do {
                let clients = try (0..<usersPerWorker).map { _ in try TestClient(port: port, timeout: 15) }
                for round in 0..<rounds {
                    for (u, client) in clients.enumerated() {
                        let user = worker * usersPerWorker + u
                        let auth = "Bearer u\(user)", session = "session=s\(user)"
                        // A page shared by every worker in this round: a cold key that several
                        // users ask for at the same moment (a herd), and later hits.
                        let sent = (0..<pipelineDepth).map { _ in
                            (path: paths[Int(rng.next() % UInt64(paths.count))], query: "page=\(round / 3)")
                        }
                        var bytes = ""
                        for request in sent {
                            bytes += "GET \(request.path)?\(request.query) HTTP/1.1\r\nHost: t\r\n"
                                + "Authorization: \(auth)\r\nCookie: \(session)\r\n\r\n"
                        }
                        try client.send(bytes)  // pipelined: answers come back in order
                        for request in sent {
                            let response = try client.readResponse()
                            let want = Self.expected(path: request.path, query: request.query, auth: auth, session: session)
                            tally.record(ok: response.status == 200 && response.text == want,
                                         got: "\(response.status) \(response.text) [\(response.cacheStatus)]", want: want,
                                         status: response.cacheStatus)
                        }
                    }
                }
            } catch {
                tally.fail("worker \(worker): \(error)")
            }
        }
        let result = tally.snapshot
        XCTAssertEqual(result.failures, [], "transport failures")
        XCTAssertEqual(result.wrong.count, 0, "responses served to the wrong user or wrong: \(result.wrong.prefix(5))")
        XCTAssertEqual(result.checked, workers * usersPerWorker * rounds * pipelineDepth)
        // The property is only worth something if sharing paths were exercised.
        XCTAssertGreaterThan(result.statuses["hit", default: 0], 0, "\(result.statuses)")
        XCTAssertGreaterThan(result.statuses["collapsed", default: 0], 0, "\(result.statuses)")
        XCTAssertGreaterThan(result.statuses["not-shareable-vary", default: 0], 0, "\(result.statuses)")
    }
}

/// Results from the worker threads.
private final class Tally: @unchecked Sendable {
    struct Snapshot {
        var checked = 0
        var wrong: [String] = []
        var failures: [String] = []
        var statuses: [String: Int] = [:]
    }

    private let lock = NSLock()
    private var state = Snapshot()

    func record(ok: Bool, got: String, want: String, status: String) {
        lock.withLock {
            state.checked += 1
            if !ok { state.wrong.append("got \(got), want \(want)") }
            for word in ["hit", "collapsed", "not-shareable-vary", "stored"] where status.contains(word) {
                state.statuses[word, default: 0] += 1
            }
        }
    }

    func fail(_ message: String) { lock.withLock { state.failures.append(message) } }
    var snapshot: Snapshot { lock.withLock { state } }
}
