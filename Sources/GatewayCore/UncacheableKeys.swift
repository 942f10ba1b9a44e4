import Synchronization

/// Keys whose last answer could not be stored, for a short time (Varnish's hit-for-miss): requests
/// for them go upstream in parallel instead of queuing one by one behind a leader whose answer
/// they cannot share anyway. Shared by every loop; bounded, oldest marks dropped first.
public final class UncacheableKeys: Sendable {
    private struct State {
        var until: [String: UInt64] = [:]
        var order: [String] = []
        var orderStart = 0
    }

    private let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int = 10_000) {
        self.capacity = max(1, capacity)
    }

    /// Marks `key` until `now + milliseconds`.
    public func mark(_ key: String, milliseconds: Int, now: UInt64) {
        guard milliseconds > 0 else { return }
        state.withLock { s in
            if s.until.updateValue(now + UInt64(milliseconds), forKey: key) == nil { s.order.append(key) }
            while s.until.count > capacity, s.orderStart < s.order.count {
                s.until[s.order[s.orderStart]] = nil
                s.orderStart += 1
            }
            // Keep the FIFO within twice the live marks (a removed key may linger in it once).
            if s.orderStart > 64 && s.orderStart * 2 > s.order.count {
                s.order = s.order[s.orderStart...].filter { s.until[$0] != nil }
                s.orderStart = 0
            }
        }
    }

    /// Whether `key` is marked at `now`.
    public func contains(_ key: String, now: UInt64) -> Bool {
        state.withLock { s in
            guard let until = s.until[key] else { return false }
            if now < until { return true }
            s.until[key] = nil
            return false
        }
    }

    /// Forgets `key` (its answer was just stored, or it was purged).
    public func remove(_ key: String) {
        state.withLock { s in _ = s.until.removeValue(forKey: key) }
    }

    /// Forgets every mark whose key `matches`.
    public func remove(where matches: (String) -> Bool) {
        state.withLock { s in
            for key in s.until.keys where matches(key) { s.until[key] = nil }
        }
    }

    public var count: Int { state.withLock { $0.until.count } }
}
