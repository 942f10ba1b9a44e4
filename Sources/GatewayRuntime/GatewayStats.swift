import Synchronization

/// Counters since start, shared by every loop (relaxed atomics: they are statistics, not state).
public final class GatewayStats: Sendable {
    private let hits = Atomic<Int>(0)
    private let misses = Atomic<Int>(0)
    private let collapses = Atomic<Int>(0)
    private let bypasses = Atomic<Int>(0)
    private let redisErrors = Atomic<Int>(0)
    private let upstreamErrors = Atomic<Int>(0)
    private let purges = Atomic<Int>(0)
    private let storeErrors = Atomic<Int>(0)
    private let stale = Atomic<Int>(0)
    private let refreshes = Atomic<Int>(0)
    private let revalidations = Atomic<Int>(0)
    private let poisonEvents = Atomic<Int>(0)
    private let reloads = Atomic<Int>(0)

    public init() {}

    func hit() { hits.add(1, ordering: .relaxed) }
    func miss() { misses.add(1, ordering: .relaxed) }
    func collapsed() { collapses.add(1, ordering: .relaxed) }
    func bypass() { bypasses.add(1, ordering: .relaxed) }
    func redisError() { redisErrors.add(1, ordering: .relaxed) }
    func upstreamError() { upstreamErrors.add(1, ordering: .relaxed) }
    func purged(_ entries: Int) { purges.add(entries, ordering: .relaxed) }
    func storeError() { storeErrors.add(1, ordering: .relaxed) }
    /// Answered with a stale entry (while revalidating, or instead of an upstream failure).
    func staleServed() { stale.add(1, ordering: .relaxed) }
    /// A background refresh started.
    func refreshed() { refreshes.add(1, ordering: .relaxed) }
    /// The upstream answered a conditional fetch with 304.
    func revalidated() { revalidations.add(1, ordering: .relaxed) }
    /// An invalidation message that is not an event (logged, never retried).
    func poisonEvent() { poisonEvents.add(1, ordering: .relaxed) }
    func reloaded() { reloads.add(1, ordering: .relaxed) }

    public struct Snapshot: Sendable, Equatable {
        public var hits, misses, collapsed, bypassed, redisErrors, upstreamErrors, purged, storeErrors: Int
        public var stale, refreshes, revalidated, poisonEvents, reloads: Int
    }

    public var snapshot: Snapshot {
        Snapshot(
            hits: hits.load(ordering: .relaxed), misses: misses.load(ordering: .relaxed),
            collapsed: collapses.load(ordering: .relaxed), bypassed: bypasses.load(ordering: .relaxed),
            redisErrors: redisErrors.load(ordering: .relaxed), upstreamErrors: upstreamErrors.load(ordering: .relaxed),
            purged: purges.load(ordering: .relaxed), storeErrors: storeErrors.load(ordering: .relaxed),
            stale: stale.load(ordering: .relaxed), refreshes: refreshes.load(ordering: .relaxed),
            revalidated: revalidations.load(ordering: .relaxed), poisonEvents: poisonEvents.load(ordering: .relaxed),
            reloads: reloads.load(ordering: .relaxed))
    }

    /// One JSON object: the `totals` of the admin listener's `/stats`.
    public var json: String {
        let s = snapshot
        return "{\"hits\": \(s.hits), \"misses\": \(s.misses), \"collapsed\": \(s.collapsed), \"bypassed\": \(s.bypassed), "
            + "\"redis_errors\": \(s.redisErrors), \"upstream_errors\": \(s.upstreamErrors), \"purged\": \(s.purged), "
            + "\"store_errors\": \(s.storeErrors), \"stale\": \(s.stale), \"refreshes\": \(s.refreshes), "
            + "\"revalidated\": \(s.revalidated), \"poison_events\": \(s.poisonEvents), \"reloads\": \(s.reloads)}"
    }
}
