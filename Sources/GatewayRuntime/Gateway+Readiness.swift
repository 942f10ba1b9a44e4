import Foundation
import GatewayCore
import GatewayHTTP

/// `/readyz`: whether this instance can serve from the cache, for a load balancer to route by.
/// `/healthz` says the process is alive; this says whether every event loop has Redis (connected
/// and past `AUTH`/`SELECT`: a refused password leaves a loop not ready) and the upstream accepts
/// connections. A degraded instance says which part is down and why.
extension Gateway {
    /// Asks every loop for its own Redis state on its own queue (no loop waits on another), then
    /// answers on `loop` (any serial loop: a public one, or the admin listener's): 200 when all
    /// is well, 503 with the parts that are not.
    func readiness(responder: TracedResponder, on loop: EventLoop) {
        let upstream = upstreamProbe.result
        let collector = ReadinessCollector(count: resources.count) { down in
            let report = Readiness(redisDown: down, upstream: upstream)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Cache-Control", value: "no-store")
            responder.respond(HTTPResponse(status: report.ready ? 200 : 503, headers: headers, body: Array(report.json.utf8)))
        }
        for resources in resources {
            resources.loop.execute {
                let connected = resources.redisConnected
                let failure = connected ? nil : resources.redisFailure
                // Every report lands on the answering loop: the collector has one owner, no lock.
                loop.execute { collector.report(loop: resources.loop.index, connected: connected, failure: failure) }
            }
        }
    }
}

/// One `/readyz` answer.
struct Readiness {
    /// Loops without a Redis connection, with the last failure one of them saw.
    var redisDown: [(loop: Int, failure: String?)]
    var upstream: UpstreamProbe.Result

    var ready: Bool { redisDown.isEmpty && upstream == .reachable }

    /// `{"ready":false,"redis":{"loops_down":[1],"ok":false,"reason":"…"},"upstream":{"ok":true}}`
    var json: String {
        var redis: [String: Any] = ["ok": redisDown.isEmpty]
        if !redisDown.isEmpty {
            let loops = redisDown.map(\.loop).sorted()
            redis["loops_down"] = loops
            let failure = redisDown.lazy.compactMap(\.failure).first ?? "not connected yet"
            redis["reason"] = "no Redis connection on event loop(s) \(loops.map(String.init).joined(separator: ", ")): \(failure)"
        }
        var upstreamFields: [String: Any] = ["ok": upstream == .reachable]
        switch upstream {
        case .reachable: break
        case .unknown: upstreamFields["reason"] = "not checked yet"
        case .unreachable(let reason): upstreamFields["reason"] = reason
        }
        let object: [String: Any] = ["ready": ready, "redis": redis, "upstream": upstreamFields]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

/// Gathers one answer per loop and calls `done` once with the loops that are down. Touched only
/// on the loop that answers the request.
private final class ReadinessCollector: @unchecked Sendable {
    private var left: Int
    private var down: [(loop: Int, failure: String?)] = []
    private let done: @Sendable ([(loop: Int, failure: String?)]) -> Void

    init(count: Int, done: @escaping @Sendable ([(loop: Int, failure: String?)]) -> Void) {
        left = count
        self.done = done
    }

    func report(loop: Int, connected: Bool, failure: String?) {
        if !connected { down.append((loop, failure)) }
        left -= 1
        if left == 0 { done(down) }
    }
}
