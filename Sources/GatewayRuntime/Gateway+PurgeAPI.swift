import GatewayCore
import GatewayHTTP

/// `PURGE <path>` over HTTP, when `invalidation.purge_api` allows it: for operators and for a
/// monolith that would rather call than publish. Authorised by a bearer token or the client's
/// address; 401 without credentials, 403 with wrong ones, and nothing is purged then.
extension Gateway {
    /// The token the purge API accepts: written in the config, or read from the environment
    /// variable it names at start.
    static func purgeToken(_ api: GatewayConfig.PurgeAPI?, environment: [String: String]) -> String? {
        guard let api else { return nil }
        if let token = api.token { return token }
        if let name = api.tokenEnvironmentVariable, let token = environment[name], !token.isEmpty { return token }
        return nil
    }

    /// Answers a purge of `path` (`PURGE <path>` on either port, `POST /purge?path=` on the admin
    /// port): `Purge-Mode: soft` marks the entries stale instead. Runs on `resources`' loop.
    func purgeRequest(_ head: HTTPRequestHead, path: String, peerHost: String, responder: TracedResponder,
                      on resources: LoopResources) {
        guard let api = policy.config.invalidation?.purgeAPI else {
            return responder.respond(Self.error(404, "purging over HTTP is off: set invalidation.purge_api"))
        }
        let allowedAddress = api.allow.contains(peerHost)
        if !allowedAddress {
            guard let authorization = head.headers["Authorization"] else {
                var response = Self.error(401, "purging needs a bearer token")
                response.headers.add(name: "WWW-Authenticate", value: "Bearer realm=\"purge\"")
                return responder.respond(response)
            }
            let presented = authorization.hasPrefix("Bearer ") ? String(authorization.dropFirst(7)) : ""
            guard let purgeToken, Self.constantTimeEquals(presented, purgeToken) else {
                return responder.respond(Self.error(403, "this token may not purge"))
            }
        }
        guard path.hasPrefix("/"), RequestTarget.unsafePathReason(path) == nil else {
            return responder.respond(Self.error(400, "PURGE needs a path"))
        }
        let soft = head.headers["Purge-Mode"]?.lowercased() == "soft"
        purgePath(path, soft: soft, on: resources) { removed in
            resources.loop.execute {
                guard let removed else {
                    return responder.respond(Self.error(503, "the cache did not answer; try again"))
                }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Cache-Control", value: "no-store")
                let body = "{\"purged\": \(removed), \"soft\": \(soft)}\n"
                responder.respond(HTTPResponse(status: 200, headers: headers, body: Array(body.utf8)))
            }
        }
    }

    /// Compares without an early exit, so the time taken does not tell how much of a guess was right.
    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}
