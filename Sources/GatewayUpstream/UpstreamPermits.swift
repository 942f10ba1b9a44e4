import Synchronization

/// Admission shared by several ``UpstreamClient``s (one per event loop): at most `limit` transfers
/// run at once across all of them, and at most `maxQueued` requests wait for one.
///
/// A client starts a transfer only with a permit. One that finds none queues the request in its
/// own FIFO and leaves a wake-up here; a finished transfer hands its permit straight to the oldest
/// wake-up (so a free permit and a waiting request never coexist) and that client gets it with
/// one `queue.async`. A client that receives a permit it no longer needs gives it back. The pool
/// owns the counts and the wake-ups; each client owns its queued requests.
public final class UpstreamPermits: Sendable {
    /// The most transfers running at once, across every client sharing the pool.
    public let limit: Int
    /// The most requests waiting for a permit, across every client sharing the pool.
    public let maxQueued: Int

    struct Waiter {
        var owner: ObjectIdentifier
        var wake: @Sendable () -> Void
    }

    private struct State {
        var available: Int
        var waiters = FIFO<Waiter>()
    }

    enum Admission: Equatable {
        case acquired
        case queued
        /// Neither a permit nor room in the queue; the numbers are for the error's detail.
        case full(running: Int, queued: Int)
    }

    private let state: Mutex<State>

    /// - Parameters:
    ///   - limit: At least 1.
    ///   - maxQueued: At least 0.
    public init(limit: Int, maxQueued: Int) {
        precondition(limit >= 1 && maxQueued >= 0, "UpstreamPermits needs limit >= 1 and maxQueued >= 0")
        self.limit = limit
        self.maxQueued = maxQueued
        state = Mutex(State(available: limit))
    }

    /// Takes a permit, or else records `wake` to be called with one later (when the queue has room).
    func acquire(orWait owner: ObjectIdentifier, wake: @escaping @Sendable () -> Void) -> Admission {
        state.withLock { s in
            if s.available > 0 {
                s.available -= 1
                return .acquired
            }
            guard s.waiters.count < maxQueued else {
                return .full(running: limit, queued: s.waiters.count)
            }
            s.waiters.append(Waiter(owner: owner, wake: wake))
            return .queued
        }
    }

    /// Returns a permit: to the oldest waiter if there is one (its `wake` runs here, outside the
    /// lock), else to the pool.
    func release() {
        let next: Waiter? = state.withLock { s in
            if let waiter = s.waiters.popFirst() { return waiter }
            s.available += 1
            return nil
        }
        next?.wake()
    }

    /// Forgets `owner`'s wake-ups (it is shutting down and fails its queued requests itself).
    func cancelWaits(of owner: ObjectIdentifier) {
        state.withLock { s in
            var kept = FIFO<Waiter>()
            while let waiter = s.waiters.popFirst() {
                if waiter.owner != owner { kept.append(waiter) }
            }
            s.waiters = kept
        }
    }

    /// Permits not held by a transfer (for tests).
    var availableCount: Int { state.withLock { $0.available } }

    /// Transfers running and requests waiting for a permit, read together (for the metrics).
    public var usage: (running: Int, queued: Int) {
        state.withLock { (limit - $0.available, $0.waiters.count) }
    }
}
