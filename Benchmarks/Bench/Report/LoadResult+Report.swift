import Foundation
import LoadGenerator

/// One load's outcome as the scenarios and the report see it. Built from the load generator's
/// `LoadResult` in `init(_:)` (below), the only place that reads that type: a change in the load
/// generator is a change in that initializer only.
struct LoadOutcome: Codable, Sendable {
    /// Requests answered (any status).
    var requests: Int
    var errors: Int
    var timeouts: Int
    var statuses: [Int: Int]
    /// Counts of each `Cache-Status` value.
    var cacheStatus: [String: Int]
    var bytes: Int
    var elapsedSeconds: Double
    var requestsPerSecond: Double
    var latency: Latency
    /// How many loads were merged into this one (interleaved slices); 1 for a single load.
    var slices = 1

    /// Microseconds.
    struct Latency: Codable, Sendable {
        var min, p50, p90, p99, p999, max, mean: Double
        /// (percentile, µs) from 0 to 100, for the percentile charts.
        var curve: [Point]
    }

    struct Point: Codable, Sendable {
        var percentile: Double
        var micros: Double
    }

    /// Loads of equal length against the same target, taken in turns with the other targets (so
    /// that a noisy neighbour hits every target alike), as one: counts and throughput exactly;
    /// percentiles as the request-weighted mean of the slices' percentiles (an approximation that
    /// holds well for slices of the same load), min and max exactly.
    static func merged(_ parts: [LoadOutcome]) -> LoadOutcome {
        guard var m = parts.first else { preconditionFailure("nothing to merge") }
        guard parts.count > 1 else { return m }
        let total = parts.reduce(0) { $0 + $1.requests }
        func weighted(_ value: (LoadOutcome) -> Double) -> Double {
            total == 0 ? 0 : parts.reduce(0) { $0 + value($1) * Double($1.requests) } / Double(total)
        }
        m.requests = total
        m.errors = parts.reduce(0) { $0 + $1.errors }
        m.timeouts = parts.reduce(0) { $0 + $1.timeouts }
        m.bytes = parts.reduce(0) { $0 + $1.bytes }
        m.statuses = parts.reduce(into: [:]) { acc, p in acc.merge(p.statuses, uniquingKeysWith: +) }
        m.cacheStatus = parts.reduce(into: [:]) { acc, p in acc.merge(p.cacheStatus, uniquingKeysWith: +) }
        m.elapsedSeconds = parts.reduce(0) { $0 + $1.elapsedSeconds }
        m.requestsPerSecond = m.elapsedSeconds > 0 ? Double(total) / m.elapsedSeconds : 0
        let answered = parts.filter { $0.requests > 0 }
        m.latency.min = answered.map(\.latency.min).min() ?? 0
        m.latency.max = answered.map(\.latency.max).max() ?? 0
        m.latency.p50 = weighted(\.latency.p50)
        m.latency.p90 = weighted(\.latency.p90)
        m.latency.p99 = weighted(\.latency.p99)
        m.latency.p999 = weighted(\.latency.p999)
        m.latency.mean = weighted(\.latency.mean)
        if answered.allSatisfy({ $0.latency.curve.map(\.percentile) == m.latency.curve.map(\.percentile) }) {
            m.latency.curve = m.latency.curve.indices.map { i in
                Point(percentile: m.latency.curve[i].percentile, micros: weighted { $0.latency.curve.isEmpty ? 0 : $0.latency.curve[i].micros })
            }
        }
        m.slices = parts.reduce(0) { $0 + $1.slices }
        return m
    }

    /// Consecutive loads of different kinds (before, during and after an outage) as one: counts
    /// exactly; each percentile the highest of the parts' (an upper bound: the union's
    /// percentile is never above it), min and max exactly. No percentile curve.
    static func concatenated(_ parts: [LoadOutcome]) -> LoadOutcome {
        var m = merged(parts)
        let answered = parts.filter { $0.requests > 0 }
        m.latency.p50 = answered.map(\.latency.p50).max() ?? 0
        m.latency.p90 = answered.map(\.latency.p90).max() ?? 0
        m.latency.p99 = answered.map(\.latency.p99).max() ?? 0
        m.latency.p999 = answered.map(\.latency.p999).max() ?? 0
        m.latency.curve = []
        return m
    }

    /// Requests that were due: answered, failed or timed out.
    var offered: Int { requests + errors + timeouts }
    var ok: Int { statuses[200] ?? 0 }
    var serverErrors: Int { statuses.filter { $0.key >= 500 }.values.reduce(0, +) }
    var nonOK: Int { requests - ok }
    var failed: Int { errors + timeouts }

    /// Answers by what the cache did, from their `Cache-Status` values.
    func count(_ outcome: CacheOutcome) -> Int {
        cacheStatus.filter { CacheOutcome($0.key) == outcome }.values.reduce(0, +)
    }

    /// Answers served from the cache (hits, and stale entries served past their TTL), as a
    /// fraction of the answers; nil without Cache-Status.
    var hitRatio: Double? {
        let total = cacheStatus.values.reduce(0, +)
        return total == 0 ? nil : Double(count(.hit) + count(.stale)) / Double(total)
    }

    /// Answers that cost no backend call of their own: hits, stale answers and coalesced waiters.
    var cachedRatio: Double? {
        let total = cacheStatus.values.reduce(0, +)
        return total == 0 ? nil : Double(count(.hit) + count(.stale) + count(.collapsed)) / Double(total)
    }

    /// Answers that waited for a backend fetch (their own or another request's): fetched, stored
    /// or coalesced. Stale answers and hits did not.
    var waitedForBackend: Int { count(.stored) + count(.miss) + count(.collapsed) }

    var p50: Double { latency.p50 }
    var p90: Double { latency.p90 }
    var p99: Double { latency.p99 }
    var p999: Double { latency.p999 }
    var maxLatency: Double { latency.max }
    var percentileCurve: [(percentile: Double, micros: Double)] { latency.curve.map { ($0.percentile, $0.micros) } }
}

extension LoadOutcome {
    /// Some answers of a load, picked from its samples (e.g. those due near an expiry): counts,
    /// and exact percentiles of their latencies. `seconds` is the time they stand for.
    init(samples: [LoadSample], seconds: Double) {
        let sorted = samples.map(\.latencyMicros).sorted()
        // Nearest rank: the smallest latency with at least p % of the answers at or below it.
        func at(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return Double(sorted[max(0, min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))])
        }
        requests = samples.count
        errors = 0
        timeouts = 0
        statuses = samples.reduce(into: [:]) { $0[$1.status, default: 0] += 1 }
        cacheStatus = samples.reduce(into: [:]) { acc, s in if let v = s.cacheStatus { acc[v, default: 0] += 1 } }
        bytes = 0
        elapsedSeconds = seconds
        requestsPerSecond = seconds > 0 ? Double(samples.count) / seconds : 0
        // The percentile levels of the load generator's curves: each step halves the distance to 100.
        var curve: [Point] = []
        var level = 0.0
        while level < 100 && (100 - level) / 100 * Double(sorted.count) >= 1 {
            curve.append(Point(percentile: level, micros: at(level)))
            level += (100 - level) / 2
        }
        curve.append(Point(percentile: 100, micros: Double(sorted.last ?? 0)))
        latency = Latency(min: Double(sorted.first ?? 0), p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: Double(sorted.last ?? 0),
                          mean: sorted.isEmpty ? 0 : Double(sorted.reduce(0, +)) / Double(sorted.count), curve: curve)
    }

    init(_ r: LoadResult) {
        requests = r.requests
        errors = r.errors
        timeouts = r.timeouts
        statuses = r.statuses
        cacheStatus = r.cacheStatus
        bytes = r.bytes
        elapsedSeconds = r.elapsedSeconds
        requestsPerSecond = r.requestsPerSecond
        let l = r.latency
        latency = Latency(min: Double(l.min), p50: Double(l.p50), p90: Double(l.p90), p99: Double(l.p99),
                          p999: Double(l.p999), max: Double(l.max), mean: l.mean,
                          curve: l.distribution.map { Point(percentile: $0.percentile, micros: Double($0.micros)) })
    }
}

/// What the cache did for one answer, read from its `Cache-Status` header (the gateway's
/// RFC 9211 values, or the `nginx; $upstream_cache_status` the generated nginx config adds).
enum CacheOutcome: String, Codable {
    /// Served from the cache.
    case hit
    /// Served from the cache past its TTL: while one background request refreshes it
    /// (stale-while-revalidate), in place of an upstream failure (stale-if-error), or renewed by
    /// a 304 (gateway: `fwd=stale`; nginx: STALE, UPDATING, REVALIDATED). Counted as served from
    /// the cache in hit ratios.
    case stale
    /// Waited for another request's fetch of the same key (gateway: `collapsed`).
    case collapsed
    /// Fetched from the backend and stored.
    case stored
    /// Fetched from the backend, not stored (or Redis failed, or nginx's MISS/EXPIRED).
    case miss
    /// Not cacheable: passed through.
    case bypass

    init(_ value: String) {
        let v = value.lowercased()
        if v.hasPrefix("nginx;") {
            let status = v.dropFirst(6).trimmingCharacters(in: .whitespaces)
            switch status {
            case "hit": self = .hit
            case "stale", "updating", "revalidated": self = .stale
            case "bypass", "": self = .bypass
            default: self = .miss  // MISS, EXPIRED: nginx stores them, but does not say so
            }
        } else {
            // RFC 9211 parameters, e.g. "CacheGateway; fwd=miss; detail=not-stored-status".
            let parts = Set(v.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) })
            if parts.contains("fwd=stale") {
                // The stored body answered, whatever the forward did: a background refresh
                // (detail=stale-while-revalidate), a failure it stood in for (fwd-status=502;
                // detail=stale-if-error), or a 304 that renewed it (fwd-status=304; stored).
                self = .stale
            } else if parts.contains("fwd=miss") {
                self = parts.contains("collapsed") ? .collapsed : parts.contains("stored") ? .stored : .miss
            } else if parts.contains("hit") {
                self = .hit
            } else {
                self = .bypass
            }
        }
    }
}

extension LoadOutcome {
    /// A latency figure for display: "–" when nothing was answered.
    func ms(_ figure: KeyPath<LoadOutcome, Double>) -> String {
        requests == 0 ? "–" : Format.ms(self[keyPath: figure])
    }
}
