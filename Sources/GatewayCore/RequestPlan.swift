import Foundation
import GatewayHTTP

/// What the gateway does with one request, decided from the request head and the configuration
/// alone: no Redis, no upstream, no clock. The read-through driver carries it out.
package enum RequestPlan {
    /// Answer at once (a bad or refused request).
    case respond(status: Int, message: String)
    /// Send the request upstream as it is and relay the answer; nothing is cached.
    case forward(route: Route, request: OriginRequest, cacheStatus: CacheStatus)
    /// Look the key up; on a miss, fill it with `fill`. `tags`: the route's tags for this path.
    case lookup(route: Route, settings: RouteCacheSettings, key: String, fill: OriginRequest, tags: [String])
}

/// Classifies requests: the security rules of what may be keyed, forwarded and shared live here.
///
/// A class, immutable: every request reaches it through the policy, and as a struct each use
/// copied it out, retaining and releasing every field of the router and the configuration
/// (those outlined copies were 1.7 % of a hit's profile); a reference is one retain.
package final class RequestPlanner: Sendable {
    let router: Router
    let config: GatewayConfig
    /// Lowercased names no `Connection` field may nominate as hop-by-hop: removing them would
    /// change who the request is (an identity read before removal keys the entry under Alice
    /// while the upstream answers anonymously; Varnish CVE-2022-45059) or how it is framed.
    let protectedFromConnection: Set<String>

    package init(router: Router, config: GatewayConfig) {
        self.router = router
        self.config = config
        var names: Set<String> = ["authorization", "cookie", "host", "content-length", "transfer-encoding"]
        for route in config.routes {
            if case .header(let name)? = route.cache?.identity { names.insert(name.lowercased()) }
        }
        protectedFromConnection = names
    }

    /// Headers a fill never sends: the client's conditionals and ranges (a fill asks for the
    /// whole representation), and the ones the gateway sets itself.
    static let conditionalHeaders: Set<String> = [
        "if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range", "range",
    ]

    package func plan(_ head: HTTPRequestHead, peerHost: String) -> RequestPlan {
        for value in head.headers.values("Connection") {
            for token in value.split(separator: ",") {
                let name = token.trimmingSpaces().lowercased()
                if protectedFromConnection.contains(name) {
                    return .respond(status: 400, message: "Connection must not name \(name)")
                }
            }
        }
        if let reason = RequestTarget.unsafePathReason(head.path) {
            return .respond(status: 400, message: reason)
        }
        guard let index = router.match(method: head.method, path: head.path) else {
            if head.method == "TRACE" {
                return .respond(status: 405, message: "TRACE is not allowed")
            }
            return .respond(status: 404, message: "no route matches \(head.method) \(head.path)")
        }
        let route = router.routes[index]
        // Origin-form for the upstream, also when the client sent absolute-form (`GET http://h/p`).
        let originTarget = head.query.map { head.path + "?" + $0 } ?? head.path
        func pass(_ status: CacheStatus) -> RequestPlan {
            .forward(route: route, request: OriginRequest(
                method: head.method, pathAndQuery: originTarget,
                headers: passHeaders(head, peerHost: peerHost), body: []), cacheStatus: status)
        }
        guard let settings = route.cache else { return pass(.bypass("pass")) }
        if head.method != "GET" && head.method != "HEAD" { return pass(CacheStatus(forward: .method)) }

        var identity: (digest: [UInt8], header: (name: String, value: String))?
        switch route.routeClass {
        case .public:
            if !settings.allowAuthorized && (head.headers.contains("Authorization") || head.headers.contains("Cookie")) {
                return pass(.bypass("authorized"))
            }
        case .perUser:
            // Exactly one value: with two, the key would hold one user while a backend that reads
            // the other answers for someone else.
            let credential: String
            let forwarded: (name: String, value: String)
            switch settings.identity {
            case .header(let name)?:
                let values = head.headers.values(name)
                if values.count > 1 { return .respond(status: 400, message: "more than one \(name) field") }
                guard let value = values.first, !value.isEmpty else { return pass(.bypass("no-identity")) }
                credential = value
                forwarded = (name, value)
            case .cookie(let name)?:
                let values = RequestTarget.cookies(name, in: head.headers)
                if values.count > 1 { return .respond(status: 400, message: "more than one \(name) cookie") }
                guard let value = values.first, !value.isEmpty else { return pass(.bypass("no-identity")) }
                credential = value
                // Only the identity cookie: the others are not in the key.
                forwarded = ("Cookie", name + "=" + value)
            case nil:
                return pass(.bypass("no-identity"))
            }
            identity = (CacheKey.identityDigest(credential), forwarded)
        case .pass:
            return pass(.bypass("pass"))
        }

        // Only allow-listed parameters reach the key, and the key is exactly what is forwarded:
        // the allowed pieces as sent (`page` and `page=` differ), sorted by name.
        let parameters = RequestTarget.parameters(head.query)
        let allowed = parameters.filter { settings.query.contains($0.name) }
        if allowed.count != parameters.count && settings.unlistedQuery == .bypass {
            return pass(.bypass("unlisted-query"))
        }
        // Stable sort by name: the order of repeated parameters is kept, as the upstream may care.
        let keyed = allowed.enumerated()
            .sorted { ($0.element.name, $0.offset) < ($1.element.name, $1.offset) }.map(\.element)
        let target = head.path + (RequestTarget.query(keyed).map { "?" + $0 } ?? "")

        let clientHost = Self.clientHost(head)
        let key = CacheKey(
            prefix: config.redis.keyPrefix, route: route.name,
            host: settings.keyHost ? (clientHost ?? "") : nil,
            path: head.path, query: keyed.map(\.piece), identityDigest: identity?.digest)

        var headers: [(name: String, value: String)] = []
        // Host, the forwarded pair, the request ID the gateway adds, an identity: one allocation
        // instead of the array growing 1, 2, 4, 8 on every request.
        headers.reserveCapacity(5)
        // What is forwarded is keyed or fixed: the client's Host only when it is in the key.
        headers.append(("Host", settings.keyHost ? (clientHost ?? config.upstream.host) : config.upstream.host))
        if let identity { headers.append(identity.header) }
        if settings.allowAuthorized {
            for field in head.headers where Self.isAuthorization(field.name) { headers.append(field) }
        }
        if !settings.forwardHeaders.isEmpty {
            for field in head.headers {
                let name = field.name.lowercased()
                if settings.forwardHeaders.contains(name) && !Self.conditionalHeaders.contains(name) {
                    headers.append(field)
                }
            }
        }
        // The client's own X-Forwarded-For is not keyed either: the gateway says who asked.
        headers.append(("X-Forwarded-For", peerHost))
        headers.append(("X-Forwarded-Proto", "http"))
        let fill = OriginRequest(method: "GET", pathAndQuery: target, headers: headers, body: [])
        return .lookup(route: route, settings: settings, key: key.redisKey, fill: fill,
                       tags: settings.tags.isEmpty ? [] : Self.resolve(settings.tags, route: route, path: head.path))
    }

    /// The route's tag templates with `{name}` replaced by the path's captures.
    static func resolve(_ templates: [String], route: Route, path: String) -> [String] {
        let captures = route.pattern.captures(in: path) ?? [:]
        return templates.map { template in
            var tag = template
            for (name, value) in captures { tag = tag.replacingOccurrences(of: "{\(name)}", with: value) }
            return tag
        }
    }

    private static func isAuthorization(_ name: String) -> Bool {
        HTTPHeaders.equalsIgnoringCase(name, "authorization") || HTTPHeaders.equalsIgnoringCase(name, "cookie")
    }

    /// Everything end-to-end, for requests that are never cached; framing is the upstream
    /// client's to set and Expect was answered by the server already.
    func passHeaders(_ head: HTTPRequestHead, peerHost: String) -> [(name: String, value: String)] {
        var out = HeaderRules.endToEnd(
            head.headers, alsoDropping: ["content-length", "expect", "host", "x-forwarded-for", "x-forwarded-proto"]
        ).map { (name: $0.name, value: $0.value) }
        if let host = Self.clientHost(head) { out.insert(("Host", host), at: 0) }
        let prior = head.headers.values("X-Forwarded-For").joined(separator: ", ")
        out.append((name: "X-Forwarded-For", value: prior.isEmpty ? peerHost : prior + ", " + peerHost))
        out.append((name: "X-Forwarded-Proto", value: "http"))
        return out
    }

    /// The host the client asked for: an absolute-form target's authority replaces `Host`
    /// (RFC 9112 §3.2.2).
    static func clientHost(_ head: HTTPRequestHead) -> String? {
        if head.target.utf8.first != UInt8(ascii: "/"), let schemeEnd = head.target.range(of: "://") {
            let rest = head.target[schemeEnd.upperBound...]
            let end = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            return String(rest[..<end])
        }
        return head.headers["Host"]
    }
}
