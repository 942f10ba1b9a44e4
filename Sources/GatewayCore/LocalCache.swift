/// The optional in-process tier: recently seen entries of one event loop, kept for a short time
/// (`cache.local_ttl`) so that a hot key is not read from Redis on every request.
///
/// Bounded in bytes and in entries; when full, the oldest insertions go first (FIFO: cheap, and
/// with a TTL of a second or so, recency adds little). Entries are keyed by their Redis key, so
/// the per-user separation of keys holds here too. Owned by its loop: no lock.
package struct LocalCache {
    private struct Slot {
        var entry: CachedResponse
        var until: UInt64
        var size: Int
        var generation: UInt64
    }

    let ttlMilliseconds: UInt64
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

    package init(ttlMilliseconds: UInt64, maxBytes: Int, maxEntries: Int = 10_000) {
        self.ttlMilliseconds = ttlMilliseconds
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
    }

    package var isEnabled: Bool { ttlMilliseconds > 0 && maxBytes > 0 && maxEntries > 0 }
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
    }

    package mutating func removeAll() {
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
