import GatewayRedis
import GatewayUpstream
import Prometheus

/// What is read when the metrics are rendered rather than counted as it happens: levels, and the
/// totals other parts already keep (``GatewayStats``, each loop's in-process tier, the stream
/// consumer's snapshot).
struct MetricsScrape: Sendable {
    /// One event loop's own state, read on its queue.
    struct Loop: Sendable {
        var index: Int
        var redisConnected: Bool
        var localHits: Int
        var localEntries: Int
        var localBytes: Int
        var localEvictions: Int
    }

    var loops: [Loop] = []
    var stats = GatewayStats.Snapshot(
        hits: 0, misses: 0, collapsed: 0, bypassed: 0, redisErrors: 0, upstreamErrors: 0, purged: 0, storeErrors: 0,
        stale: 0, refreshes: 0, revalidated: 0, poisonEvents: 0, reloads: 0)
    var statsJSON = "{}"
    var inFlightKeys = 0
    var uncacheableKeys = 0
    var openConnections = 0
    var accessLogDropped = 0
    var upstreamRunning = 0
    var upstreamQueued = 0
    var upstreamLimit = 0
    var stream: RedisStreamConsumer.Snapshot?
    /// `redis.url` is `redis+sentinel://`.
    var sentinel = false
    /// `host:port` of the master in use, for `redis+sentinel://` only (never a metric label).
    var redisMaster: String?

    var local: (hits: Int, entries: Int, bytes: Int, evictions: Int) {
        loops.reduce((0, 0, 0, 0)) { ($0.0 + $1.localHits, $0.1 + $1.localEntries, $0.2 + $1.localBytes, $0.3 + $1.localEvictions) }
    }
}

/// The series whose values come from a ``MetricsScrape``. Counters among them are set to the
/// total they mirror (reset, then incremented) under the scrape lock.
final class ScrapeSeries: Sendable {
    private let registry: PrometheusCollectorRegistry
    let upstreamInFlight, upstreamQueued, inFlightKeys, uncacheableKeys, openConnections: Gauge
    let localEntries, localBytes, invalidationLag: Gauge
    let redisErrors, storeErrors, upstreamErrors, localHits, localEvictions, accessLogDropped: Counter
    let invalidationApplied, invalidationPoison, invalidationRetried: Counter

    init(registry: PrometheusCollectorRegistry, instanceID: String) {
        self.registry = registry
        func gauge(_ name: String, _ help: String) -> Gauge { registry.makeGauge(name: name, labels: [], help: help) }
        func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
            registry.makeCounter(name: name, labels: labels, help: help)
        }
        upstreamInFlight = gauge("cachegateway_upstream_in_flight", "Upstream transfers running now (at most upstream.max_connections).")
        upstreamQueued = gauge("cachegateway_upstream_queued", "Requests waiting for an upstream connection (at most upstream.max_queue).")
        inFlightKeys = gauge("cachegateway_in_flight_keys", "Keys being fetched, or whose result is still held for late arrivals.")
        uncacheableKeys = gauge("cachegateway_uncacheable_keys", "Keys marked hit-for-miss: their last answer was not storable.")
        openConnections = gauge("cachegateway_open_connections", "Client connections open now.")
        localEntries = gauge("cachegateway_local_tier_entries", "Entries in the in-process tiers of all event loops.")
        localBytes = gauge("cachegateway_local_tier_bytes", "Bytes the in-process tiers hold (entries and keys).")
        invalidationLag = gauge("cachegateway_invalidation_lag", "Invalidation stream entries not yet read by this instance's group.")
        redisErrors = counter("cachegateway_redis_errors_total", "Redis lookups that failed (served as misses).")
        storeErrors = counter("cachegateway_store_errors_total", "Responses that could not be stored in Redis.")
        upstreamErrors = counter("cachegateway_upstream_errors_total", "Upstream calls that failed (answered 502/504 or stale).")
        localHits = counter("cachegateway_local_tier_hits_total", "Lookups answered from the in-process tier.")
        localEvictions = counter("cachegateway_local_tier_evictions_total", "In-process tier entries dropped to make room.")
        accessLogDropped = counter("cachegateway_access_log_dropped_lines_total", "Access log lines lost because the destination stalled or failed.")
        let invalidationHelp = "Invalidation stream entries, by result: applied, poison (not an event), retried."
        invalidationApplied = counter("cachegateway_invalidation_events_total", invalidationHelp, [("result", "applied")])
        invalidationPoison = counter("cachegateway_invalidation_events_total", invalidationHelp, [("result", "poison")])
        invalidationRetried = counter("cachegateway_invalidation_events_total", invalidationHelp, [("result", "retried")])
        registry.makeGauge(
            name: "cachegateway_build_info",
            labels: [("version", GatewayRelease.version), ("hiredis", GatewayRelease.hiredisVersion),
                     ("libcurl", GatewayRelease.libcurlVersion),
                     // One series per process, so the label is bounded. Not `instance`: Prometheus
                     // gives that name to the scrape target, and would rename ours.
                     ("instance_id", instanceID)],
            help: "Always 1; the labels name the gateway's version, the C libraries it runs with, and instance_id."
        ).set(to: 1)
    }

    /// Writes `scrape` into the series. Call under the scrape lock.
    func apply(_ scrape: MetricsScrape) {
        upstreamInFlight.set(Double(scrape.upstreamRunning))
        upstreamQueued.set(Double(scrape.upstreamQueued))
        inFlightKeys.set(Double(scrape.inFlightKeys))
        uncacheableKeys.set(Double(scrape.uncacheableKeys))
        openConnections.set(Double(scrape.openConnections))
        let local = scrape.local
        localEntries.set(Double(local.entries))
        localBytes.set(Double(local.bytes))
        Self.set(localHits, local.hits)
        Self.set(localEvictions, local.evictions)
        Self.set(redisErrors, scrape.stats.redisErrors)
        Self.set(storeErrors, scrape.stats.storeErrors)
        Self.set(upstreamErrors, scrape.stats.upstreamErrors)
        Self.set(accessLogDropped, scrape.accessLogDropped)
        for loop in scrape.loops {
            registry.makeGauge(
                name: "cachegateway_redis_connected", labels: [("loop", "\(loop.index)")],
                help: "1 while the event loop has a Redis connection up, else 0."
            ).set(to: loop.redisConnected ? 1 : 0)
        }
        if let stream = scrape.stream {
            Self.set(invalidationApplied, stream.applied)
            Self.set(invalidationPoison, stream.poison)
            Self.set(invalidationRetried, stream.retried)
            invalidationLag.set(Double(stream.lag ?? 0))
        }
    }

    private static func set(_ counter: Counter, _ total: Int) {
        counter.reset()
        counter.increment(by: Int64(max(0, total)))
    }
}

/// The gateway's version and the C libraries it was built with, for `gateway --version` and
/// `cachegateway_build_info`.
public enum GatewayRelease {
    /// Raised with each stop that changes behaviour.
    public static let version = "0.7.0"
    /// e.g. `0.14.1`.
    public static var hiredisVersion: String { versionNumber(RedisLibrary.version, after: "hiredis ") }
    /// e.g. `7.88.1`.
    public static var libcurlVersion: String { versionNumber(UpstreamLibrary.version, after: "libcurl/") }

    private static func versionNumber(_ text: String, after prefix: String) -> String {
        guard let start = text.range(of: prefix)?.upperBound else { return text }
        return String(text[start...].prefix { !$0.isWhitespace })
    }
}
