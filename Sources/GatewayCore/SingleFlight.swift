import Synchronization

/// Collapses concurrent fetches of one key into one: the first caller leads, the others wait and
/// are handed the leader's result the moment it is ready (Varnish's waiting list, not a poll).
///
/// Shared by every event loop. The table sits behind one short critical section: decisions are
/// made inside it, and callbacks run after it is released (`hsh_rush1`/`hsh_rush2` in Varnish).
/// Waiters' callbacks are responsible for hopping to their own loop.
public final class SingleFlight<Value: Sendable>: Sendable {
    public typealias Callback = @Sendable (Value) -> Void

    private struct Flight {
        let id: UInt64
        /// What the key stands for, for purges that name it (the request path).
        var tag: String?
        /// A purge matched the flight while it was fetching: its result predates the change and
        /// must not be stored.
        var invalidated = false
        var waiters: [(id: UInt64, callback: Callback)] = []
        /// A held result a purge has matched: no result, and no flight either, since a new
        /// leader (or refresh) replaces it.
        var isPurgedResult: Bool { invalidated && result != nil }
        /// Set once the leader finished; kept until `release`, so that requests arriving between
        /// completion and the Redis write get the result instead of starting a second fetch.
        var result: Value?
    }

    private struct Table {
        var flights: [String: Flight] = [:]
        var nextID: UInt64 = 1
    }

    /// Proof of leadership for one flight; only its holder completes or releases it.
    public struct Token: Sendable, Hashable {
        public let key: String
        let id: UInt64
    }

    public enum Join: Sendable {
        /// Nobody was fetching this key: the caller fetches, then calls `complete` and `release`.
        case leader(Token)
        /// Someone is fetching: `callback` will be called once with the result, unless `leave` wins.
        case waiter(id: UInt64)
        /// A flight just finished and its result is still held: use it now.
        case finished(Value)
        /// `maxWaiters` are already waiting for this key; the caller was not added.
        case overflow
    }

    private let table = Mutex(Table())

    public init() {}

    /// Number of keys being fetched or held (for metrics and tests).
    public var count: Int { table.withLock { $0.flights.count } }

    /// Leads or joins the flight for `key`. `callback` is kept only in the `.waiter` case.
    public func join(_ key: String, maxWaiters: Int = .max, tag: String? = nil, callback: @escaping Callback) -> Join {
        table.withLock { table in
            let id = table.nextID
            table.nextID &+= 1
            if var flight = table.flights[key], !flight.isPurgedResult {
                if let result = flight.result { return .finished(result) }
                if flight.waiters.count >= maxWaiters { return .overflow }
                flight.waiters.append((id, callback))
                table.flights[key] = flight
                return .waiter(id: id)
            }
            table.flights[key] = Flight(id: id, tag: tag)
            return .leader(Token(key: key, id: id))
        }
    }

    /// Leads a new flight for `key` if there is none (fetching or held); never waits. For
    /// background refreshes: whoever finds a flight already there has nothing to do.
    public func tryLead(_ key: String, tag: String? = nil) -> Token? {
        table.withLock { table in
            // Else the refresh after a soft purge would wait out the purged hold's grace.
            if let flight = table.flights[key], !flight.isPurgedResult { return nil }
            let id = table.nextID
            table.nextID &+= 1
            table.flights[key] = Flight(id: id, tag: tag)
            return Token(key: key, id: id)
        }
    }

    /// Hands `value` to every waiter at once. With `hold`, later joiners get it too until `release`.
    public func complete(_ token: Token, with value: Value, hold: Bool) {
        let waiters: [(id: UInt64, callback: Callback)] = table.withLock { table in
            guard var flight = table.flights[token.key], flight.id == token.id else { return [] }
            let waiters = flight.waiters
            if hold {
                flight.waiters = []
                flight.result = value
                table.flights[token.key] = flight
            } else {
                table.flights[token.key] = nil
            }
            return waiters
        }
        for waiter in waiters { waiter.callback(value) }
    }

    /// Removes the flight; only the leader's own entry (a newer flight for the key is left alone).
    public func release(_ token: Token) {
        table.withLock { table in
            if table.flights[token.key]?.id == token.id { table.flights[token.key] = nil }
        }
    }

    /// Drops the held results of finished flights whose key `matches` (a purge: what was held
    /// must not outlive it). Flights still fetching are left alone.
    public func forgetHeld(where matches: (String) -> Bool) {
        invalidate { key, _ in matches(key) }
    }

    /// A purge: held results whose key and tag `match` are dropped, and flights still fetching are
    /// marked so that their leader does not store what it fetched from before the change.
    public func invalidate(where matches: (_ key: String, _ tag: String?) -> Bool) {
        table.withLock { table in
            // Held ones stay (marked) until their leader releases them: it checks the mark once
            // Redis acknowledged its write, and removes what it wrote.
            for (key, flight) in table.flights where matches(key, flight.tag) {
                table.flights[key]?.invalidated = true
            }
        }
    }

    /// Whether a purge matched this flight since it started. A flight that is no longer there
    /// (a new one replaced it after a purge) counts as matched: when in doubt, the leader
    /// removes what it wrote, which costs one fetch.
    public func isInvalidated(_ token: Token) -> Bool {
        table.withLock { table in
            guard let flight = table.flights[token.key], flight.id == token.id else { return true }
            return flight.invalidated
        }
    }

    /// Stops waiting (the waiter's own deadline passed). True if it was still waiting, in which
    /// case its callback will never be called.
    public func leave(_ key: String, waiter id: UInt64) -> Bool {
        table.withLock { table in
            guard var flight = table.flights[key], let index = flight.waiters.firstIndex(where: { $0.id == id }) else {
                return false
            }
            flight.waiters.remove(at: index)
            table.flights[key] = flight
            return true
        }
    }
}
