import Foundation
import GatewayCore
import GatewayHTTP

/// What the admin listener serves `/metrics` and `/stats` from: by default the gateway's metrics
/// (``Gateway/prometheusText(completion:)``, ``Gateway/statsJSON(completion:)``). Each reads
/// every event loop's state on its own queue and answers through the completion.
public struct AdminSources: Sendable {
    public typealias Source = @Sendable (_ completion: @escaping @Sendable (String) -> Void) -> Void
    /// The Prometheus text exposition (format 0.0.4) for `GET /metrics`.
    public var metricsText: Source
    /// The stats JSON for `GET /stats`, the status page's one source (schema in the README).
    public var statsJSON: Source

    public init(metricsText: @escaping Source, statsJSON: @escaping Source) {
        self.metricsText = metricsText
        self.statsJSON = statsJSON
    }
}

/// The admin listener's endpoints (`admin:` in the config), on a server of their own with one
/// event loop, off the public port: the status page, `/metrics`, `/stats`, `/config`, `/healthz`,
/// `/readyz` and the purge API. Its requests are not told to the request observers: the status
/// page polls every second, and the access log and route metrics are about the public port.
public final class AdminHandler: HTTPHandler, @unchecked Sendable {
    let gateway: Gateway
    /// Set once, before the admin server starts (like ``Gateway/requestObservers``).
    nonisolated(unsafe) public var sources: AdminSources

    init(gateway: Gateway, sources: AdminSources) {
        self.gateway = gateway
        self.sources = sources
    }

    /// Every path, with the methods it answers (anything else is a 405 naming them).
    private static let endpoints: [String: [String]] = [
        "/": ["GET", "HEAD"], "/metrics": ["GET", "HEAD"], "/stats": ["GET", "HEAD"], "/config": ["GET", "HEAD"],
        "/healthz": ["GET", "HEAD"], "/readyz": ["GET", "HEAD"], "/purge": ["POST"],
    ]

    public func handle(_ request: HTTPRequest, context: HTTPRequestContext, responder httpResponder: HTTPResponder) {
        let head = request.head
        let responder = TracedResponder(observers: [], head: head, peer: context.peer, responder: httpResponder,
                                        trace: RequestTrace())
        if head.method == "PURGE" {
            return purge(head, path: head.path, peer: context.peer, responder: responder)
        }
        guard let methods = Self.endpoints[head.path] else {
            return responder.respond(Gateway.error(404, "not an admin endpoint; try / for the status page"))
        }
        guard methods.contains(head.method) else {
            var response = Gateway.error(405, "\(head.path) answers \(methods.joined(separator: ", "))")
            response.headers.add(name: "Allow", value: methods.joined(separator: ", "))
            return responder.respond(response)
        }
        switch head.path {
        case "/":
            var response = Self.ok("text/html; charset=utf-8", StatusPage.html)
            // The page is self-contained; the policy makes sure it stays so (no script, style,
            // font or image from anywhere else, and it may only fetch from this listener).
            response.headers.add(name: "Content-Security-Policy", value: StatusPage.contentSecurityPolicy)
            responder.respond(response)
        case "/metrics":
            sources.metricsText { responder.respond(Self.ok("text/plain; version=0.0.4; charset=utf-8", $0)) }
        case "/stats":
            sources.statsJSON { responder.respond(Self.ok("application/json", $0)) }
        case "/config":
            // The routes as the last reload left them: what requests are served by now.
            responder.respond(Self.ok("application/json", gateway.runningConfig.redactedJSON()))
        case "/healthz":
            responder.respond(.text(200, "ok"))
        case "/readyz":
            gateway.readiness(responder: responder, on: context.loop)
        default:  // "/purge"
            guard let path = Self.queryValue("path", in: head.query) else {
                return responder.respond(Gateway.error(400, "POST /purge?path=/the/path (percent-encoded)"))
            }
            purge(head, path: path, peer: context.peer, responder: responder)
        }
    }

    /// Runs on a public loop: purging uses that loop's Redis connection.
    private func purge(_ head: HTTPRequestHead, path: String, peer: SocketAddress, responder: TracedResponder) {
        guard let resources = gateway.resources.first else {
            return responder.respond(Gateway.error(503, "the gateway is not serving"))
        }
        resources.loop.execute { [gateway] in
            gateway.purgeRequest(head, path: path, peerHost: peer.host, responder: responder, on: resources)
        }
    }

    static func ok(_ contentType: String, _ body: String) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Cache-Control", value: "no-store")
        return HTTPResponse(status: 200, headers: headers, body: Array(body.utf8))
    }

    /// The first `name=value` in `query`, percent-decoded (`+` is a space, as forms send it).
    static func queryValue(_ name: String, in query: String?) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == name else { continue }
            return String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
        return nil
    }
}
