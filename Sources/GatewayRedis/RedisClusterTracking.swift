import Dispatch
import Logging
import Synchronization

/// Client tracking on a Redis Cluster: one BCAST tracking listener
/// (``RedisSubscriber/tracking(configuration:prefixes:liveness:logger:onEvent:)``) per master,
/// since a node broadcasts only the changes of its own keys, with their events combined into
/// one tracking state for the owner:
///
/// - ``RedisTrackingEvent/established`` once every master's listener is established (before
///   that some master's changes would go unheard);
/// - ``RedisTrackingEvent/lost`` as soon as any established listener is lost;
/// - invalidations, flushes and refusals as they come.
///
/// A thread of its own reads the master set from the seeds (`CLUSTER SLOTS`) at start, every
/// `recheckInterval` and at once after a listener is lost. A different set (a failover promoted
/// a replica, a master was added or removed) means a new listener set: the owner is told
/// ``RedisTrackingEvent/lost`` first, and the new set's ``RedisTrackingEvent/established``
/// comes when all of it is. When no seed answers before a master set is known, the owner is
/// told ``RedisTrackingEvent/refused(_:)`` (and it keeps asking); once one is known, an
/// unanswered re-check keeps it (its listeners reconnect on their own).
///
/// Events are delivered one at a time, in the order they were combined, on the listeners' and
/// the re-check's threads.
public final class RedisClusterTracking: Sendable {
    public let configuration: RedisConfiguration
    private let prefixes: [String]
    private let liveness: RedisLiveness
    private let recheckInterval: Duration
    private let logger: Logger
    private let onEvent: @Sendable (RedisTrackingEvent) -> Void

    private struct Master {
        var listener: RedisSubscriber
        var established = false
    }

    private struct State {
        var started = false
        var stopped = false
        /// The listener set whose events count; those of a replaced one are dropped.
        var generation = 0
        var masters: [ClusterNode: Master] = [:]
        /// Whether the owner was last told ``RedisTrackingEvent/established``.
        var established = false
    }

    /// Held while an event is combined and handed on: that keeps the owner's events in order
    /// across the listeners' threads (an `established` computed on one thread cannot overtake a
    /// `lost` computed on another). Never held while a listener stops (its thread may be waiting
    /// for it).
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - configuration: a cluster configuration (``RedisConfiguration/clusterSeeds`` set).
    ///   - recheckInterval: how often the master set is read again. Default: 2 s.
    ///   - onEvent: the combined events, one at a time.
    public init(
        configuration: RedisConfiguration, prefixes: [String], liveness: RedisLiveness = RedisLiveness(),
        recheckInterval: Duration = .seconds(2), logger: Logger,
        onEvent: @escaping @Sendable (RedisTrackingEvent) -> Void
    ) {
        precondition(!configuration.clusterSeeds.isEmpty, "RedisClusterTracking needs cluster seeds")
        self.configuration = configuration
        self.prefixes = prefixes
        self.liveness = liveness
        self.recheckInterval = recheckInterval
        self.logger = logger
        self.onEvent = onEvent
    }

    /// Whether every master's listener is established (the owner was told so).
    public var isEstablished: Bool { state.withLock { $0.established } }

    /// The masters listened to now.
    public var masters: Set<ClusterNode> { state.withLock { Set($0.masters.keys) } }

    /// The listener of one master, nil when `node` is not one now (for tests and health checks).
    public func listener(on node: ClusterNode) -> RedisSubscriber? { state.withLock { $0.masters[node]?.listener } }

    /// Starts the re-check thread, which makes the listeners. Call once.
    public func start() {
        let first: Bool = state.withLock { s in
            defer { s.started = true }
            return !s.started
        }
        precondition(first, "RedisClusterTracking.start() called twice")
        DispatchQueue(label: "gateway.redis-cluster-tracking").async { [self] in
            run()
            finished.signal()
        }
    }

    /// Stops the re-check thread and every listener, and waits for them.
    public func stop() {
        let started: Bool = state.withLock { s in
            s.stopped = true
            return s.started
        }
        guard started else { return }
        wake.signal()
        finished.wait()
        // After the re-check thread: it makes no listener from here on.
        let listeners = state.withLock { s in s.masters.values.map(\.listener) }
        for listener in listeners { listener.stop() }
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    private func run() {
        while !isStopped {
            switch configuration.clusterSlotMap(replyTimeout: liveness.replyTimeout) {
            case .success(let map) where !map.nodes.isEmpty:
                listen(to: Set(map.nodes))
            case .success:
                noMasters("CLUSTER SLOTS names no master")
            case .failure(let error):
                noMasters("cannot read the cluster's slot map: \(error)")
            }
            _ = wake.wait(timeout: .now() + .nanoseconds(Int(clamping: recheckInterval.clampedNanoseconds)))
        }
    }

    /// Without a master set there is nothing to listen to: refused, until one is read.
    private func noMasters(_ reason: String) {
        state.withLock { s in
            guard !s.stopped, s.masters.isEmpty else { return }
            onEvent(.refused(reason))
        }
    }

    /// Makes the listener set for `nodes` unless it is the current one.
    private func listen(to nodes: Set<ClusterNode>) {
        let replaced: [RedisSubscriber]? = state.withLock { s in
            guard !s.stopped, Set(s.masters.keys) != nodes else { return nil }
            let old = s.masters.values.map(\.listener)
            if !old.isEmpty {
                logger.info(
                    "Redis Cluster masters changed: tracking listeners made again",
                    metadata: ["redis.masters": "\(nodes.map(\.description).sorted())"])
                // Until every new master is heard, a change on one of them would go unheard.
                if s.established { onEvent(.lost) }
            }
            s.established = false
            s.generation += 1
            let generation = s.generation
            s.masters = [:]
            for node in nodes {
                let listener = RedisSubscriber.tracking(
                    configuration: configuration.pointed(at: node), prefixes: prefixes, liveness: liveness, logger: logger
                ) { [weak self] event in self?.heard(event, on: node, generation: generation) }
                s.masters[node] = Master(listener: listener)
                // Under the lock, so that stop() either sees it or it is never made.
                listener.start()
            }
            return old
        }
        for listener in replaced ?? [] { listener.stop() }
    }

    /// An event of the listener on `node` of listener set `generation`, on that listener's thread.
    private func heard(_ event: RedisTrackingEvent, on node: ClusterNode, generation: Int) {
        let recheck: Bool = state.withLock { s in
            guard s.generation == generation, !s.stopped, s.masters[node] != nil else { return false }
            switch event {
            case .established:
                s.masters[node]?.established = true
                if !s.established, s.masters.values.allSatisfy(\.established) {
                    s.established = true
                    onEvent(.established)
                }
            case .lost:
                s.masters[node]?.established = false
                if s.established {
                    s.established = false
                    onEvent(.lost)
                }
                return true
            case .invalidated, .flushed, .refused:
                onEvent(event)
            }
            return false
        }
        // A lost master may be a failover under way: read the master set again now.
        if recheck { wake.signal() }
    }
}
