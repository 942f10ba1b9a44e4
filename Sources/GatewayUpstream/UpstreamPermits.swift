import Synchronization

/// Admission shared by several ``UpstreamClient``s (one per event loop): at most `limit` transfers
/// run at once across all of them, and at most `maxQueued` requests wait for one.
///
/// A client starts a transfer only with a permit. One that finds none queues the request in its
/// own FIFO and leaves a wake-up here; a finished transfer hands its permit straight to the oldest
/// wake-up (so a free permit and a waiting request never coexist) and that client gets it with
/// one `queue.async`. A client that receives a permit it no longer needs gives it back. The pool
/// owns the counts and the wake-ups; each client owns its queued requests.
///
/// A reload that changes the limits makes a new pool and calls ``handOver(to:)`` on the old one:
/// from then on the old pool forwards everything to the new one, which counts the permits the old
/// transfers still hold as its own. So the new cap is exact at once, across old and new clients
/// (the new pool may start in debt: a limit lowered below what is running admits no one until
/// enough old transfers finish).
public final class UpstreamPermits: Sendable {
    /// The most transfers running at once, across every client sharing the pool.
    public let limit: Int
    /// The most requests waiting for a permit, across every client sharing the pool.
    public let maxQueued: Int

    struct Waiter: Sendable {
        var owner: ObjectIdentifier
        var wake: @Sendable () -> Void
    }

    private struct State {
        /// Negative while transfers of a pool this one took over hold more than `limit`.
        var available: Int
        var waiters = FIFO<Waiter>()
        /// Set by ``handOver(to:)``: where every call goes from then on.
        var successor: UpstreamPermits?
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
        let (answer, successor): (Admission, UpstreamPermits?) = state.withLock { s in
            if let successor = s.successor { return (.queued, successor) }
            if s.available > 0 {
                s.available -= 1
                return (.acquired, nil)
            }
            guard s.waiters.count < maxQueued else {
                return (.full(running: limit, queued: s.waiters.count), nil)
            }
            s.waiters.append(Waiter(owner: owner, wake: wake))
            return (.queued, nil)
        }
        return successor?.acquire(orWait: owner, wake: wake) ?? answer
    }

    /// Returns a permit: to the oldest waiter if there is one (its `wake` runs here, outside the
    /// lock), else to the pool.
    func release() {
        let (next, successor): (Waiter?, UpstreamPermits?) = state.withLock { s in
            if let successor = s.successor { return (nil, successor) }
            // In debt: the permit pays it off rather than admitting one more.
            if s.available < 0 {
                s.available += 1
                return (nil, nil)
            }
            if let waiter = s.waiters.popFirst() { return (waiter, nil) }
            s.available += 1
            return (nil, nil)
        }
        if let successor { return successor.release() }
        next?.wake()
    }

    /// Forgets `owner`'s wake-ups (it is shutting down and fails its queued requests itself).
    func cancelWaits(of owner: ObjectIdentifier) {
        let successor: UpstreamPermits? = state.withLock { s in
            if let successor = s.successor { return successor }
            var kept = FIFO<Waiter>()
            while let waiter = s.waiters.popFirst() {
                if waiter.owner != owner { kept.append(waiter) }
            }
            s.waiters = kept
            return nil
        }
        successor?.cancelWaits(of: owner)
    }

    /// Makes `successor` the pool of every client of this one, for a change of limits without a
    /// restart: the permits this pool's transfers hold count against `successor` (they are given
    /// back to it), this pool's waiting requests wait there first, and later calls here go there.
    ///
    /// - Parameter successor: A new pool that no client has used yet. Call once per pool.
    public func handOver(to successor: UpstreamPermits) {
        // Both locks, this pool's first (a successor never calls back into its predecessor), so
        // that no permit is given back to the successor before it counts the ones held here.
        let woken: [Waiter] = state.withLock { s in
            precondition(s.successor == nil, "UpstreamPermits.handOver(to:) called twice")
            precondition(successor !== self, "a pool cannot hand over to itself")
            s.successor = successor
            let held = limit - s.available
            var waiters = s.waiters
            s.waiters = FIFO()
            return successor.state.withLock { n in
                n.available -= held
                while let waiter = n.waiters.popFirst() { waiters.append(waiter) }
                // A higher limit frees permits at once: a free permit and a waiter never coexist.
                var woken: [Waiter] = []
                while n.available > 0, let waiter = waiters.popFirst() {
                    n.available -= 1
                    woken.append(waiter)
                }
                n.waiters = waiters
                return woken
            }
        }
        for waiter in woken { waiter.wake() }
    }

    /// Permits not held by a transfer (for tests); negative while in debt after a hand-over.
    var availableCount: Int { state.withLock { $0.available } }

    /// Transfers running and requests waiting for a permit, read together (for the metrics).
    public var usage: (running: Int, queued: Int) {
        state.withLock { (limit - $0.available, $0.waiters.count) }
    }
}
