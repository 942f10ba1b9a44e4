import GatewayHTTP
import XCTest

@testable import GatewayCore

/// The request classification on its own: what is refused, keyed and forwarded, without sockets.
final class RequestPlanTests: XCTestCase {
    private let config = try! GatewayConfig.parse(yaml: """
        listen: 127.0.0.1:8080
        upstream: { url: "http://backend:9000" }
        redis: { url: redis://127.0.0.1, key_prefix: "gw:" }
        routes:
          - { name: catalog, match: "/catalog/**", class: public, ttl: 1m, query: [page, sort], forward_headers: [Accept-Language] }
          - { name: open, match: "/open/**", class: public, ttl: 1m, allow_authorized: true }
          - { name: me, match: "/me", class: per_user, ttl: 1m, identity: { cookie: session } }
          - { name: mine, match: "/mine", class: per_user, ttl: 1m, identity: { header: X-Token } }
          - { name: rest, match: "/**", class: pass }
        """, fileName: "test.yaml")

    private func plan(_ target: String, _ headers: [(String, String)] = [], method: String = "GET") -> RequestPlan {
        let question = target.firstIndex(of: "?")
        var path = question.map { String(target[..<$0]) } ?? target
        let query = question.map { String(target[target.index(after: $0)...]) }
        if let scheme = path.range(of: "://") {
            let rest = path[scheme.upperBound...]
            path = rest.firstIndex(of: "/").map { String(rest[$0...]) } ?? "/"
        }
        let head = HTTPRequestHead(method: method, target: target, path: path, query: query,
                                   version: .init(major: 1, minor: 1), headers: HTTPHeaders(headers), keepAlive: true)
        return RequestPlanner(router: Router(config: config), config: config).plan(head, peerHost: "10.1.2.3")
    }

    private func refusal(_ p: RequestPlan) -> String? {
        if case .respond(let status, let message) = p { return "\(status) \(message)" }
        return nil
    }

    private func fill(_ p: RequestPlan) -> (key: String, target: String, headers: [String])? {
        guard case .lookup(_, _, let key, let fill, _) = p else { return nil }
        return (key, fill.pathAndQuery, fill.headers.map { "\($0.name): \($0.value)" })
    }

    func testRefusals() {
        XCTAssertEqual(refusal(plan("/catalog/a", [("Connection", "close, Authorization")])), "400 Connection must not name authorization")
        XCTAssertEqual(refusal(plan("/mine", [("X-Token", "a"), ("Connection", "x-token")])), "400 Connection must not name x-token")
        XCTAssertEqual(refusal(plan("/mine", [("X-Token", "a"), ("X-Token", "b")])), "400 more than one X-Token field")
        XCTAssertEqual(refusal(plan("/me", [("Cookie", "session=a; session=b")])), "400 more than one session cookie")
        XCTAssertEqual(refusal(plan("/x", method: "TRACE")), "405 TRACE is not allowed")
        XCTAssertEqual(refusal(plan("/catalog/..;/me")), "400 dot segment in path")
        XCTAssertNil(refusal(plan("/catalog/a", [("Connection", "keep-alive, x-debug")])))
    }

    func testAFillSendsOnlyWhatIsKeyedOrFixed() throws {
        let f = try XCTUnwrap(fill(plan("/catalog/a?sort=x&utm=1&page", [
            ("Host", "evil.example"), ("Accept-Language", "fr"), ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-For", "6.6.6.6"), ("If-None-Match", "\"v1\""), ("Accept-Encoding", "gzip"),
        ])))
        XCTAssertEqual(f.target, "/catalog/a?page&sort=x")
        XCTAssertEqual(f.headers, [
            "Host: backend:9000", "Accept-Language: fr", "X-Forwarded-For: 10.1.2.3", "X-Forwarded-Proto: http",
        ])
        XCTAssertTrue(f.key.hasPrefix("gw:e:catalog:"))
        // The same forwarded request has the same key, however the client spelled it.
        XCTAssertEqual(fill(plan("/catalog/a?page&sort=x"))?.key, f.key)
        XCTAssertNotEqual(fill(plan("/catalog/a?page=&sort=x"))?.key, f.key)
    }

    func testIdentityAndAuthorizationForwarding() throws {
        let me = try XCTUnwrap(fill(plan("/me", [("Cookie", "theme=dark; session=alice; csrftoken=t")])))
        XCTAssertEqual(me.headers, ["Host: backend:9000", "Cookie: session=alice", "X-Forwarded-For: 10.1.2.3", "X-Forwarded-Proto: http"])
        XCTAssertNotEqual(fill(plan("/me", [("Cookie", "session=bob")]))?.key, me.key)
        let open = try XCTUnwrap(fill(plan("/open/a", [("Authorization", "Bearer a"), ("Cookie", "c=1")])))
        XCTAssertEqual(open.headers, ["Host: backend:9000", "Authorization: Bearer a", "Cookie: c=1", "X-Forwarded-For: 10.1.2.3", "X-Forwarded-Proto: http"])
        guard case .forward(_, _, let status) = plan("/catalog/a", [("Authorization", "Bearer a")]) else {
            return XCTFail("an authorized request on a public route goes upstream uncached")
        }
        XCTAssertEqual(status.description, "CacheGateway; fwd=bypass; detail=authorized")
    }

    func testPassRoutesForwardEverythingWithTheClientsHost() throws {
        guard case .forward(_, let request, _) = plan("http://www.example/x", [("Host", "other"), ("X-Original-URL", "/a")]) else {
            return XCTFail("expected a forward")
        }
        XCTAssertEqual(request.headers.map { "\($0.name): \($0.value)" }, [
            "Host: www.example", "X-Original-URL: /a", "X-Forwarded-For: 10.1.2.3", "X-Forwarded-Proto: http",
        ])
    }
}
