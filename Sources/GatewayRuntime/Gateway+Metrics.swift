import Dispatch
import GatewayCore
import GatewayHTTP
import GatewayUpstream
import Metrics
import Prometheus
import Synchronization

/// Rendering the metrics: `/metrics` (Prometheus text) and the status page's JSON. Both first read
/// each event loop's own state on its own queue (as `/readyz` does: no loop waits on another), so
/// they answer through a completion, on no particular queue.
extension Gateway {
    /// The Prometheus text exposition of every metric, values read now.
    public func prometheusText(completion: @escaping @Sendable (String) -> Void) {
        collectMetrics { [metrics] scrape in completion(metrics.prometheusText(scrape)) }
    }

    /// The status page's JSON (schema in the README's "Metrics" section), values read now.
    public func statsJSON(completion: @escaping @Sendable (String) -> Void) {
        collectMetrics { [metrics] scrape in completion(metrics.statsJSON(scrape)) }
    }

    public func prometheusText() async -> String {
        await withCheckedContinuation { continuation in prometheusText { continuation.resume(returning: $0) } }
    }

    public func statsJSON() async -> String {
        await withCheckedContinuation { continuation in statsJSON { continuation.resume(returning: $0) } }
    }

    /// Points the process's global swift-metrics `MetricsSystem` at this gateway's registry, so
    /// that libraries reporting through swift-metrics appear on the same `/metrics`. For the
    /// `gateway` executable only: it can be done once per process, and tests run many gateways.
    public func bootstrapGlobalMetrics() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
    }

    /// A reload that did not happen (the new file had errors): counted as `result="failed"` and
    /// shown on the status page with `errors`, the lines `check-config` would print.
    public func reloadFailed(errors: [String]) {
        metrics.reloaded(ok: false, errors: errors)
    }

    /// Reads the shared counters here and each loop's state on its queue, then calls `done` once
    /// (on the last loop to answer, or here when there are no loops yet).
    func collectMetrics(_ done: @escaping @Sendable (MetricsScrape) -> Void) {
        var scrape = MetricsScrape()
        scrape.stats = stats.snapshot
        scrape.statsJSON = stats.json
        scrape.inFlightKeys = flights.count
        scrape.uncacheableKeys = uncacheable.count
        scrape.openConnections = metrics.openConnections()
        scrape.accessLogDropped = metrics.accessLogDropped()
        // The pool in effect: a reload with new limits replaces it.
        let permits = policy.permits
        (scrape.upstreamRunning, scrape.upstreamQueued) = permits.usage
        scrape.upstreamLimit = permits.limit
        scrape.stream = streamSnapshot()
        let url = policy.config.redis.url
        scrape.sentinel = url.sentinel != nil
        if url.sentinel != nil, !url.host.isEmpty { scrape.redisMaster = url.address }
        let loops = resources
        guard !loops.isEmpty else { return done(scrape) }
        let collector = LoopCollector(scrape, count: loops.count, done: done)
        for resources in loops {
            resources.loop.execute {
                let local = resources.local
                collector.report(MetricsScrape.Loop(
                    index: resources.loop.index, redisConnected: resources.redisConnected, localHits: local.hits,
                    localEntries: local.count, localBytes: local.bytes, localEvictions: local.evictions))
            }
        }
    }
}

/// Gathers one report per loop; the last one completes the scrape. Reports arrive on different
/// loops, so the partial scrape sits behind a lock.
private final class LoopCollector: Sendable {
    private let state: Mutex<(scrape: MetricsScrape, left: Int)>
    private let done: @Sendable (MetricsScrape) -> Void

    init(_ scrape: MetricsScrape, count: Int, done: @escaping @Sendable (MetricsScrape) -> Void) {
        state = Mutex((scrape, count))
        self.done = done
    }

    func report(_ loop: MetricsScrape.Loop) {
        let finished: MetricsScrape? = state.withLock { s in
            s.scrape.loops.append(loop)
            s.left -= 1
            return s.left == 0 ? s.scrape : nil
        }
        guard var scrape = finished else { return }
        scrape.loops.sort { $0.index < $1.index }
        done(scrape)
    }
}
