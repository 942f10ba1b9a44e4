import GatewayCore
import GatewayHTTP

/// `/readyz`: whether this instance can serve from the cache, for a load balancer to route by.
/// `/healthz` says the process is alive; this says whether every event loop has Redis.
extension Gateway {
    /// Asks every loop for its own Redis state on its own queue (no loop waits on another),
    /// then answers on `loop`: 200 when all are connected, 503 naming the loops that are not.
    func readiness(responder: TracedResponder, on loop: EventLoop) {
        let collector = ReadinessCollector(count: resources.count) { down in
            do {
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Cache-Control", value: "no-store")
                let ready = down.isEmpty
                let body = ready
                    ? "{\"ready\": true}\n"
                    : "{\"ready\": false, \"reason\": \"redis not connected on event loop(s) \(down.sorted().map(String.init).joined(separator: ", "))\"}\n"
                responder.respond(HTTPResponse(status: ready ? 200 : 503, headers: headers, body: Array(body.utf8)))
            }
        }
        for resources in resources {
            resources.loop.execute {
                let connected = resources.redisConnected
                // Every report lands on the answering loop: the collector has one owner, no lock.
                loop.execute { collector.report(loop: resources.loop.index, connected: connected) }
            }
        }
    }
}

/// Gathers one answer per loop and calls `done` once with the loops that are down. Touched only
/// on the loop that answers the request.
private final class ReadinessCollector: @unchecked Sendable {
    private var left: Int
    private var down: [Int] = []
    private let done: @Sendable ([Int]) -> Void

    init(count: Int, done: @escaping @Sendable ([Int]) -> Void) {
        left = count
        self.done = done
    }

    func report(loop: Int, connected: Bool) {
        if !connected { down.append(loop) }
        left -= 1
        if left == 0 { done(down) }
    }
}
