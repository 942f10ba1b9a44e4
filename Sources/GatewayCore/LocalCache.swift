/// The in-process tier: recently seen entries of one event loop, so that a hot key is not read
/// from Redis on every request.
///
/// Two ways to stay close to Redis (``Coherence``): *tracked*, while the instance's tracking
/// connection hears of every change under the entry prefix (Redis client-side caching, BCAST):
/// each change evicts the key (``invalidate(_:)``), and `cache.local_ttl` is only a cap; or
/// *untracked*, today's TTL-only tier, where a change is seen after at most `local_ttl`. Between
/// the two (tracking expected but not established, or lost) the tier is empty and bypassed.
///
/// A read from Redis races the invalidations, which come on another connection: a GET answered
/// before a write can land here after that write's invalidation. So a fill goes through a
/// ``ReadTicket`` taken before the GET was sent, and is dropped when an invalidation of its key,
/// or a flush, came in between.
///
/// Bounded in bytes and in entries; when full, the oldest insertions go first (FIFO: cheap, and
/// hot keys come back at once). Entries are keyed by their Redis key, so the per-user separation
/// of keys holds here too. Owned by its loop: no lock.
package struct LocalCache {
    package enum Coherence: String, Sendable {
        /// Kept for at most the untracked TTL; no tracking expected (or Redis refused it).
        case untracked
        /// Tracking is established: every change in Redis evicts; the tracked TTL is a cap.
        case tracked
        /// Tracking is expected but not (or no longer) established: empty and bypassed.
        case awaitingTracking
    }

    /// A read from Redis on its way: whether its answer may still fill the tier.
    package struct ReadTicket {
        let key: String
        let epoch: UInt64
        let sequence: UInt64
    }
    private struct Slot {
        var entry: CachedResponse
        var until: UInt64
        var size: Int
        var generation: UInt64
    }

    /// The cap while tracked, and the TTL while untracked.
    let trackedTTLMilliseconds: UInt64
    private(set) var untrackedTTLMilliseconds: UInt64
    package private(set) var coherence: Coherence
    var ttlMilliseconds: UInt64 {
        switch coherence {
        case .tracked: trackedTTLMilliseconds
        case .untracked: untrackedTTLMilliseconds
        case .awaitingTracking: 0
        }
    }
    let maxBytes: Int
    let maxEntries: Int
    private var slots: [String: Slot] = [:]
    /// Insertion order; a re-put or a removal leaves a stale record behind (its generation no
    /// longer matches the slot's), dropped when it reaches the front or at the next compaction.
    private var order: [(key: String, generation: UInt64)] = []
    private var orderStart = 0
    /// What the entries take, by ``CachedResponse/approximateSize`` plus their keys.
    package private(set) var bytes = 0
    private var generation: UInt64 = 0
    /// Lookups answered from the tier, since start (the metrics read them on the loop).
    package private(set) var hits = 0
    /// Entries dropped to make room (not those that expired or were purged), since start.
    package private(set) var evictions = 0
    /// Bumped by every flush: a read begun before it must not fill the tier.
    private var epoch: UInt64 = 0
    /// Bumped by every key invalidation.
    private var sequence: UInt64 = 0
    /// Reads from Redis in flight, by key: how many, and the sequence of the last invalidation of
    /// the key while any was. Bounded by the reads in flight.
    private var reading: [String: (count: Int, invalidatedAt: UInt64)] = [:]

    /// - Parameters:
    ///   - ttlMilliseconds: how long an entry is kept (capped by its own freshness); with
    ///     `untrackedTTLMilliseconds`, the cap while tracked.
    ///   - untrackedTTLMilliseconds: the TTL while untracked (no tracking, or Redis refused it);
    ///     default: `ttlMilliseconds`.
    ///   - coherence: `.awaitingTracking` when a tracking connection is being set up.
    package init(
        ttlMilliseconds: UInt64, maxBytes: Int, maxEntries: Int = 10_000,
        untrackedTTLMilliseconds: UInt64? = nil, coherence: Coherence = .untracked
    ) {
        self.trackedTTLMilliseconds = ttlMilliseconds
        self.untrackedTTLMilliseconds = untrackedTTLMilliseconds ?? ttlMilliseconds
        self.coherence = coherence
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
    }

    /// Whether the tier answers and is filled now.
    package var isEnabled: Bool { ttlMilliseconds > 0 && maxBytes > 0 && maxEntries > 0 }

    // MARK: Coherence

    /// The tracking connection subscribed: what the tier held may have changed unheard, so it
    /// starts empty, and from now on every change in Redis evicts.
    package mutating func trackingEstablished() { flush(then: .tracked) }

    /// The tracking connection is gone: changes are no longer heard, so the tier empties and is
    /// bypassed until ``trackingEstablished()``.
    package mutating func trackingLost() { flush(then: .awaitingTracking) }

    /// Redis refused tracking (an old server, an ACL without `CLIENT`): today's TTL-only tier,
    /// with `ttlMilliseconds` (0: off).
    package mutating func trackingUnavailable(untrackedTTLMilliseconds: UInt64) {
        self.untrackedTTLMilliseconds = untrackedTTLMilliseconds
        flush(then: .untracked)
    }

    private mutating func flush(then coherence: Coherence) {
        removeAll()
        self.coherence = coherence
    }

    /// Redis said `key` changed (written, deleted, expired, evicted): drops it, and any read of
    /// it now in flight will not fill the tier.
    package mutating func invalidate(_ key: String) {
        remove(key)
        guard reading[key] != nil else { return }
        sequence &+= 1
        reading[key]!.invalidatedAt = sequence
    }

    // MARK: Filling from Redis

    /// Call before sending the GET whose answer may fill the tier; hand the ticket back to
    /// ``finishRead(_:filling:now:)`` whatever the answer.
    package mutating func beginRead(_ key: String) -> ReadTicket {
        reading[key, default: (0, 0)].count += 1
        return ReadTicket(key: key, epoch: epoch, sequence: sequence)
    }

    /// The GET of `ticket` was answered: keeps `entry`, unless its key was invalidated, or the
    /// tier flushed, since the GET was sent (the answer may predate the change).
    package mutating func finishRead(_ ticket: ReadTicket, filling entry: CachedResponse?, now: UInt64) {
        guard let state = reading[ticket.key] else { return }
        if state.count <= 1 { reading[ticket.key] = nil } else { reading[ticket.key]!.count -= 1 }
        guard let entry, ticket.epoch == epoch, state.invalidatedAt <= ticket.sequence else { return }
        put(ticket.key, entry, now: now)
    }

    /// Reads in flight (for tests: the bookkeeping must not outlive them).
    var readsInFlight: Int { reading.count }
    package var count: Int { slots.count }
    /// Records in the FIFO, stale ones included: what the order list costs in memory (for tests).
    var orderCount: Int { order.count - orderStart }

    package mutating func get(_ key: String, now: UInt64) -> CachedResponse? {
        guard let slot = slots[key] else { return nil }
        if now >= slot.until {
            remove(key)
            return nil
        }
        hits &+= 1
        return slot.entry
    }

    package mutating func put(_ key: String, _ entry: CachedResponse, now: UInt64) {
        guard isEnabled else { return }
        let until = min(now + ttlMilliseconds, entry.expiresAt)
        let size = entry.approximateSize + key.utf8.count
        guard until > now, size <= maxBytes else { return }
        remove(key)
        generation &+= 1
        slots[key] = Slot(entry: entry, until: until, size: size, generation: generation)
        order.append((key, generation))
        bytes += size
        while bytes > maxBytes || slots.count > maxEntries, orderStart < order.count {
            let oldest = order[orderStart]
            orderStart += 1
            if slots[oldest.key]?.generation == oldest.generation {
                remove(oldest.key)
                evictions &+= 1
            }
        }
        compactIfMostlyStale()
    }

    /// Drops every entry whose key `matches` (a purge).
    package mutating func remove(where matches: (String) -> Bool) {
        for key in slots.keys where matches(key) { remove(key) }
        for key in Array(reading.keys) where matches(key) { invalidate(key) }
    }

    /// Empties the tier; reads in flight will not fill it.
    package mutating func removeAll() {
        epoch &+= 1
        slots.removeAll()
        order.removeAll()
        orderStart = 0
        bytes = 0
    }

    private mutating func remove(_ key: String) {
        if let old = slots.removeValue(forKey: key) { bytes -= old.size }
    }

    /// A hot set re-stored every `local_ttl` never fills the budget, so eviction alone would let
    /// the FIFO grow by one stale record per put for ever. Rebuilding it once the records are
    /// more than twice the live entries keeps it within 2× (plus slack) of the live count, and
    /// costs O(1) amortised per put: each rebuild follows at least as many puts as it keeps.
    private mutating func compactIfMostlyStale() {
        let records = order.count - orderStart
        guard records > 2 * slots.count + 64 else { return }
        var live: [(key: String, generation: UInt64)] = []
        live.reserveCapacity(slots.count)
        for record in order[orderStart...] where slots[record.key]?.generation == record.generation {
            live.append(record)
        }
        order = live
        orderStart = 0
    }
}
