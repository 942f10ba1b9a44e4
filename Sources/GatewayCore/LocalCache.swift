/// The optional in-process tier: recently seen entries of one event loop, kept for a short time
/// (`cache.local_ttl`) so that a hot key is not read from Redis on every request.
///
/// Bounded in bytes; when full, the oldest insertions go first (FIFO: cheap, and with a TTL of
/// a second or so, recency adds little). Entries are keyed by their Redis key, so the per-user
/// separation of keys holds here too. Owned by its loop: no lock.
struct LocalCache {
    private struct Slot {
        var entry: CachedResponse
        var until: UInt64
        var size: Int
        var generation: UInt64
    }

    let ttlMilliseconds: UInt64
    let maxBytes: Int
    private var slots: [String: Slot] = [:]
    private var order: [(key: String, generation: UInt64)] = []
    private var orderStart = 0
    private var bytes = 0
    private var generation: UInt64 = 0

    init(ttlMilliseconds: UInt64, maxBytes: Int) {
        self.ttlMilliseconds = ttlMilliseconds
        self.maxBytes = maxBytes
    }

    var isEnabled: Bool { ttlMilliseconds > 0 && maxBytes > 0 }
    var count: Int { slots.count }

    mutating func get(_ key: String, now: UInt64) -> CachedResponse? {
        guard let slot = slots[key] else { return nil }
        if now >= slot.until {
            remove(key)
            return nil
        }
        return slot.entry
    }

    mutating func put(_ key: String, _ entry: CachedResponse, now: UInt64) {
        guard isEnabled else { return }
        let until = min(now + ttlMilliseconds, entry.expiresAt)
        let size = entry.approximateSize + key.utf8.count
        guard until > now, size <= maxBytes else { return }
        remove(key)
        generation &+= 1
        slots[key] = Slot(entry: entry, until: until, size: size, generation: generation)
        order.append((key, generation))
        bytes += size
        while bytes > maxBytes, orderStart < order.count {
            let oldest = order[orderStart]
            orderStart += 1
            if slots[oldest.key]?.generation == oldest.generation { remove(oldest.key) }
        }
        // Compact the FIFO once its consumed prefix dominates.
        if orderStart > 1024 && orderStart * 2 > order.count {
            order.removeFirst(orderStart)
            orderStart = 0
        }
    }

    mutating func removeAll() {
        slots.removeAll()
        order.removeAll()
        orderStart = 0
        bytes = 0
    }

    private mutating func remove(_ key: String) {
        if let old = slots.removeValue(forKey: key) { bytes -= old.size }
    }
}
