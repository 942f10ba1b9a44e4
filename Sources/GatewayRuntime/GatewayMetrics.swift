import Dispatch
import GatewayCore
import GatewayHTTP
import GatewayRedis
import GatewayUpstream
import Prometheus
import Synchronization

/// The gateway's Prometheus metrics: one registry per ``Gateway`` (tests run many gateways in one
/// process, so nothing goes through the global `MetricsSystem`).
///
/// What requests change is counted as they finish (``requestFinished(_:)``, on their loop) into
/// series resolved once per route set, at start and at each reload: the hot path does a short lock
/// to read the table, a name comparison per route, one atomic add and one histogram record per
/// timing, and no allocation. What is a level rather than an event (connections, queue depths,
/// Redis state, the in-process tiers) is read when the metrics are rendered (`Gateway+Metrics`).
///
/// Series are made with the registry's own `makeCounter`/`makeValueHistogram` rather than
/// swift-metrics' `Counter(label:dimensions:factory:)`: that path registers every series without
/// its `# HELP` line and gives every timer the factory's default buckets, where each histogram here
/// needs the gateway's own.
public final class GatewayMetrics: RequestObserver, RedisCommandObserver, RedisRedirectObserver, Sendable {
    /// Latency buckets in seconds, for every histogram: 1, 2.5, 5 per decade from 100 µs (an
    /// in-process hit; a Redis hit is a few hundred µs) to 10 s (past the usual upstream timeout),
    /// the spacing of nginx-vts' and Envoy's defaults, so a p50 and a p99 land in distinct buckets
    /// for hits and misses alike. 16 buckets: a histogram series costs 19 lines of output.
    public static let latencyBuckets: [Double] = [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    /// The `route` label of requests no route served: the gateway's own endpoints and refusals.
    public static let unroutedName = "-"

    public let registry = PrometheusCollectorRegistry()
    let startedAt = DispatchTime.now().uptimeNanoseconds
    private let routes: Mutex<RouteTable>
    /// Indexed by `RedisCommandKind.rawValue`.
    private let redisCommands: [ValueHistogram]
    /// Indexed by `RedisRedirectKind.rawValue`.
    private let redisRedirects: [Counter]
    let reloadsOK: Counter
    let reloadsFailed: Counter
    /// Moves to a new master named by Redis Sentinel (`redis+sentinel://`).
    let masterSwitches: Counter
    let masterSwitchCount = Atomic<Int>(0)
    /// Indexed by `LeaseMetric.rawValue`.
    private let leaseResults: [Counter]
    /// How long local leaders waited for another instance's fill (its count: the remote waits).
    let remoteFillWait: ValueHistogram
    /// The coherent tier's tracking connection (events, counted as they come).
    let localTracking: Gauge
    let localInvalidations: Counter
    let localFlushesLost: Counter
    let localFlushesRedis: Counter
    private let lastReloadState = Mutex<LastReload?>(nil)
    /// Renders one scrape at a time: the values read at scrape time are written into the registry
    /// and emitted under this lock, so two scrapes never interleave them.
    let scrapeLock = Mutex(())
    let levels: ScrapeSeries
    /// `instance_id`, named by `/stats` and `cachegateway_build_info`.
    let instanceID: String
    /// The upstream pool, read at scrape time; set by `Gateway.attach`.
    /// The server's open connections (the service sets it before serving; the gateway does not
    /// know its server).
    nonisolated(unsafe) public var openConnections: @Sendable () -> Int = { 0 }
    /// Access log lines lost to a stalled or full destination (set with the access log, before serving).
    nonisolated(unsafe) public var accessLogDropped: @Sendable () -> Int = { 0 }

    /// The last reload's result, for the status page.
    struct LastReload: Sendable {
        var timeMilliseconds: UInt64
        var ok: Bool
        var errors: [String]
    }

    init(routeNames: [String], instanceID: String) {
        let registry = self.registry
        self.instanceID = instanceID
        routes = Mutex(RouteTable(names: routeNames, registry: registry))
        redisCommands = RedisCommandKind.allCases.map { kind in
            registry.makeValueHistogram(
                name: "cachegateway_redis_command_duration_seconds", labels: [("command", kind.name)],
                buckets: Self.latencyBuckets, help: "Redis commands from sending to their reply, by command.")
        }
        redisRedirects = RedisRedirectKind.allCases.map { kind in
            registry.makeCounter(
                name: "cachegateway_redis_redirects_total", labels: [("kind", kind.name)],
                help: "Redis Cluster redirections followed (-MOVED: the slot map was out of date; -ASK: a slot was migrating).")
        }
        let reloadHelp = "Configuration reloads (SIGHUP), by result."
        reloadsOK = registry.makeCounter(name: "cachegateway_reloads_total", labels: [("result", "ok")], help: reloadHelp)
        reloadsFailed = registry.makeCounter(name: "cachegateway_reloads_total", labels: [("result", "failed")], help: reloadHelp)
        masterSwitches = registry.makeCounter(
            name: "cachegateway_redis_master_switches_total", labels: [],
            help: "Moves of every event loop's Redis to a new master named by the Sentinels (redis+sentinel:// only).")
        levels = ScrapeSeries(registry: registry, instanceID: instanceID)
        leaseResults = LeaseMetric.allCases.map { result in
            registry.makeCounter(
                name: "cachegateway_leases_total", labels: [("result", result.name)],
                help: "Cross-instance fill leases asked for, by what came of it.")
        }
        remoteFillWait = registry.makeValueHistogram(
            name: "cachegateway_remote_fill_wait_seconds", labels: [], buckets: Self.latencyBuckets,
            help: "Time a local leader waited for another instance's fill (lease held elsewhere).")
        localTracking = registry.makeGauge(
            name: "cachegateway_local_tier_tracking", labels: [],
            help: "1 while Redis tracking keeps the in-process tier coherent, else 0 (tier bypassed, TTL-only or off).")
        localTracking.set(to: 0)
        localInvalidations = registry.makeCounter(
            name: "cachegateway_local_tier_invalidations_total", labels: [],
            help: "Keys Redis reported changed to the tracking connection (each evicted from every loop's tier).")
        let flushHelp = "Times every loop's in-process tier was emptied by tracking, by reason: lost (tracking connection down), redis_flush (FLUSHALL/FLUSHDB)."
        localFlushesLost = registry.makeCounter(name: "cachegateway_local_tier_flushes_total", labels: [("reason", "lost")], help: flushHelp)
        localFlushesRedis = registry.makeCounter(name: "cachegateway_local_tier_flushes_total", labels: [("reason", "redis_flush")], help: flushHelp)
    }

    func masterSwitched() {
        masterSwitches.increment()
        masterSwitchCount.add(1, ordering: .relaxed)
    }

    /// What came of one lease request (`cache.cross_instance`).
    enum LeaseMetric: Int, CaseIterable {
        case acquired, heldElsewhere, takenOver, unavailable
        var name: String {
            switch self {
            case .acquired: "acquired"
            case .heldElsewhere: "held_elsewhere"
            case .takenOver: "taken_over"
            case .unavailable: "unavailable"
            }
        }
    }

    func leases(_ result: LeaseMetric) { leaseResults[result.rawValue].increment() }

    /// Gives routes new since the last call their series; those of removed routes stay (their
    /// counters keep their totals, as Prometheus expects of a counter).
    func routesChanged(_ names: [String]) {
        let table = RouteTable(names: names, registry: registry)
        routes.withLock { $0 = table }
    }

    func reloaded(ok: Bool, errors: [String]) {
        (ok ? reloadsOK : reloadsFailed).increment()
        let record = LastReload(timeMilliseconds: WallClock.nowMilliseconds(), ok: ok, errors: errors)
        lastReloadState.withLock { $0 = record }
    }

    var lastReload: LastReload? { lastReloadState.withLock { $0 } }
    var currentRouteNames: [String] { routes.withLock { $0.names } }

    // MARK: The hot path

    public func requestFinished(_ record: RequestRecord) {
        let series = routes.withLock { $0 }.series(named: record.route)
        series.requests[Self.index(of: record.outcome)].increment()
        series.duration.record(Self.seconds(record.durationNanoseconds))
        if let nanoseconds = record.upstreamNanoseconds { series.upstream.record(Self.seconds(nanoseconds)) }
        if let nanoseconds = record.waitNanoseconds { series.wait.record(Self.seconds(nanoseconds)) }
    }

    public func redisReplied(_ kind: RedisCommandKind, nanoseconds: UInt64) {
        redisCommands[kind.rawValue].record(Self.seconds(nanoseconds))
    }

    public func redisRedirected(_ kind: RedisRedirectKind) {
        redisRedirects[kind.rawValue].increment()
    }

    static func seconds(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1e9 }

    /// The position of `outcome` in `CacheOutcome.allCases`, without searching the array.
    static func index(of outcome: CacheOutcome) -> Int {
        switch outcome {
        case .hit: 0
        case .miss: 1
        case .stale: 2
        case .collapsed: 3
        case .revalidated: 4
        case .bypass: 5
        case .error: 6
        case .rejected: 7
        case .local: 8
        }
    }
}

/// The series of one route: a request counter per outcome (indexed like `CacheOutcome.allCases`)
/// and its latency histograms.
final class RouteSeries: Sendable {
    let name: String
    let requests: [Counter]
    let duration: ValueHistogram
    let upstream: ValueHistogram
    let wait: ValueHistogram

    init(name: String, registry: PrometheusCollectorRegistry) {
        self.name = name
        let route = [("route", name)]
        requests = CacheOutcome.allCases.map { outcome in
            registry.makeCounter(
                name: "cachegateway_requests_total", labels: [("route", name), ("outcome", outcome.rawValue)],
                help: "Requests answered, by route and by what the cache did.")
        }
        let buckets = GatewayMetrics.latencyBuckets
        duration = registry.makeValueHistogram(
            name: "cachegateway_request_duration_seconds", labels: route, buckets: buckets,
            help: "From the complete request head to the response handed to the connection, by route.")
        upstream = registry.makeValueHistogram(
            name: "cachegateway_upstream_duration_seconds", labels: route, buckets: buckets,
            help: "Time a request waited for the upstream on its own behalf (fetch or forward), by route.")
        wait = registry.makeValueHistogram(
            name: "cachegateway_coalesced_wait_seconds", labels: route, buckets: buckets,
            help: "Time a collapsed request waited for another request's fill, by route.")
    }
}

/// The routes of one policy, in config order, and the series of unrouted requests.
final class RouteTable: Sendable {
    let names: [String]
    private let series: [RouteSeries]
    let unrouted: RouteSeries
    /// Only for route sets too long to scan.
    private let byName: [String: RouteSeries]

    /// Routes up to this many are found by comparing names in order (short strings compare
    /// in a word or two), past it by hashing.
    private static let scanLimit = 16

    init(names: [String], registry: PrometheusCollectorRegistry) {
        self.names = names
        series = names.map { RouteSeries(name: $0, registry: registry) }
        unrouted = RouteSeries(name: GatewayMetrics.unroutedName, registry: registry)
        byName = names.count > Self.scanLimit
            ? Dictionary(zip(names, series), uniquingKeysWith: { first, _ in first }) : [:]
    }

    /// A request finished just after a reload may name a route the new table lacks: it is
    /// counted as unrouted rather than given a series outside the table.
    func series(named name: String?) -> RouteSeries {
        guard let name else { return unrouted }
        if series.count > Self.scanLimit { return byName[name] ?? unrouted }
        for s in series where s.name == name { return s }
        return unrouted
    }

    var all: [RouteSeries] { series + [unrouted] }
}
