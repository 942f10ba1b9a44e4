import Dispatch
import GatewayIO
import Logging

/// A Redis Cluster client on one event loop's queue: one ``RedisConnection`` per master (so the
/// commands to one node are pipelined on its connection), each single-key command sent to the
/// master of its key's slot.
///
/// - The slot map comes from `CLUSTER SLOTS`, asked of any connected node: at start (the seeds),
///   after a `-MOVED`, and whenever a command finds no ready connection for its slot. Refreshes
///   are one at a time and at most one per ``refreshInterval``.
/// - `-MOVED slot host:port`: the command is sent again there, the map is patched for that slot
///   at once and refreshed in the background. `-ASK slot host:port`: `ASKING` and the command are
///   sent there once, the map is left alone. `-TRYAGAIN`/`-CLUSTERDOWN`: tried once more after
///   ``retryDelay``, then the error is the command's. At most ``maxRedirects`` hops per command.
/// - A command whose key names no slot (`PUBLISH`, `PING`) goes to any ready master; `SCAN` walks
///   one node's keys, so callers send it to each of ``masterConnections`` themselves.
///
/// Same rules as ``RedisConnection``: every call and completion on `queue`, no locks; while a
/// slot's master is not connected its commands fail with ``RedisError/notConnected`` (a cache
/// miss, not a wait). Call ``close()`` before letting go of a started client.
public final class RedisClusterConnection: @unchecked Sendable {
    /// Timeouts, credentials and backoff for every node's connection (host and port are the nodes').
    public let configuration: RedisConfiguration
    public let seeds: [ClusterNode]
    public let queue: DispatchQueue
    /// Told of each reply's round trip; set before ``start()``.
    public var commandObserver: (any RedisCommandObserver)?
    /// Told of each redirection followed; set before ``start()``.
    public var redirectObserver: (any RedisRedirectObserver)?

    public static let maxRedirects = 5
    public static let retryDelay: DispatchTimeInterval = .milliseconds(50)
    public static let refreshInterval: UInt64 = 100_000_000

    private let logger: Logger
    private var map: ClusterSlotMap?
    private var connections: [ClusterNode: RedisConnection] = [:]
    private var refreshing = false
    private var refreshQueued = false
    private var lastRefresh: UInt64 = 0
    private var closed = false
    private var started = false

    /// The epoll set every node's connection is watched in (the owning loop's, or their own).
    private let readiness: ReadinessSet?

    public init(configuration: RedisConfiguration, seeds: [ClusterNode], queue: DispatchQueue, readiness: ReadinessSet? = nil, logger: Logger) {
        self.readiness = readiness
        precondition(!seeds.isEmpty, "a cluster needs at least one seed node")
        self.configuration = configuration
        self.seeds = seeds
        self.queue = queue
        self.logger = logger
    }

    // MARK: Lifecycle and state

    /// Connects to the seeds and asks them for the slot map.
    public func start() {
        assertOnQueue()
        guard !started, !closed else { return }
        started = true
        for seed in seeds { _ = connection(to: seed) }
        refreshMap()
    }

    /// Closes every node's connection; pending commands fail with ``RedisError/closed``.
    public func close() {
        assertOnQueue()
        closed = true
        for connection in connections.values { connection.close() }
    }

    /// Whether the slot map is known and at least one master is connected.
    public var isConnected: Bool {
        assertOnQueue()
        guard map != nil else { return false }
        return connections.values.contains { $0.isConnected }
    }

    public var lastFailure: String? {
        assertOnQueue()
        if map == nil, let failure = connections.values.lazy.compactMap(\.lastFailure).first {
            return "no slot map: \(failure)"
        }
        return masterConnections.lazy.compactMap(\.lastFailure).first
    }

    public var pendingCommandCount: Int {
        assertOnQueue()
        return connections.values.reduce(0) { $0 + $1.pendingCommandCount }
    }

    /// The current slot map (nil until the first `CLUSTER SLOTS` answered).
    public var slotMap: ClusterSlotMap? {
        assertOnQueue()
        return map
    }

    /// One connection per master of the current map (for `SCAN`, which walks one node), or the
    /// seeds' while no map is known.
    public var masterConnections: [RedisConnection] {
        assertOnQueue()
        guard let map else { return seeds.map { connection(to: $0) } }
        return map.nodes.map { connection(to: $0) }
    }

    // MARK: Commands

    /// `GET key` on the key's master.
    public func get(_ key: [UInt8], completion: @escaping (Result<[UInt8]?, RedisError>) -> Void) {
        dispatch(key: key, attempt: Attempt(), { $0.get(key, completion: $1) }, completion: completion)
    }

    /// `SET key value PX ttlMilliseconds` on the key's master.
    public func set(_ key: [UInt8], _ value: [UInt8], ttlMilliseconds: Int, completion: @escaping (Result<Void, RedisError>) -> Void) {
        dispatch(key: key, attempt: Attempt(), { $0.set(key, value, ttlMilliseconds: ttlMilliseconds, completion: $1) }, completion: completion)
    }

    /// Any single-key command on its key's master (``ClusterSlots/routingKey(of:)``), or a keyless
    /// one on any master.
    public func send(_ arguments: [[UInt8]], completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        dispatch(key: ClusterSlots.routingKey(of: arguments), attempt: Attempt(), { $0.send(arguments, completion: $1) }, completion: completion)
    }

    private struct Attempt {
        var hops = 0
        var retriedLater = false
        /// Set for the hop after `-ASK`: that node, with `ASKING` first.
        var asking: ClusterNode?
    }

    private func dispatch<Value>(
        key: [UInt8]?, attempt: Attempt,
        _ operation: @escaping (RedisConnection, @escaping (Result<Value, RedisError>) -> Void) -> Void,
        completion: @escaping (Result<Value, RedisError>) -> Void
    ) {
        assertOnQueue()
        let target: RedisConnection
        if let node = attempt.asking {
            target = connection(to: node)
            // Pipelined on the same connection: the node reads ASKING, then the command.
            target.send([Array("ASKING".utf8)]) { _ in }
        } else {
            target = route(key)
        }
        operation(target) { [self] result in
            guard case .failure(let error) = result, let message = error.serverMessage,
                let redirect = ClusterRedirect(serverMessage: message), attempt.hops < Self.maxRedirects, !closed
            else { return completion(result) }
            var next = attempt
            next.hops += 1
            next.asking = nil
            switch redirect {
            case .moved(let slot, let node):
                redirectObserver?.redisRedirected(.moved)
                map?.assign(slot: slot, to: node)
                refreshMap()
                dispatch(key: key, attempt: next, operation, completion: completion)
            case .ask(_, let node):
                redirectObserver?.redisRedirected(.ask)
                next.asking = node
                dispatch(key: key, attempt: next, operation, completion: completion)
            case .retryLater:
                guard !attempt.retriedLater else { return completion(result) }
                next.retriedLater = true
                // Back on this same queue: the box only carries the closures across.
                let retry = SameQueue { [self, next] in dispatch(key: key, attempt: next, operation, completion: completion) }
                queue.asyncAfter(deadline: .now() + Self.retryDelay) { retry.value() }
            }
        }
    }

    /// The connection for `key`'s slot; any ready one for no key or an unknown slot owner (a
    /// wrong guess is answered with `-MOVED`, which is followed).
    private func route(_ key: [UInt8]?) -> RedisConnection {
        if let key, let node = map?.node(forSlot: ClusterSlots.slot(of: key)) {
            let connection = connection(to: node)
            if !connection.isConnected { refreshMap() }
            return connection
        }
        if key != nil { refreshMap() }
        let candidates = map.map { $0.nodes.map { connection(to: $0) } } ?? Array(connections.values)
        return candidates.first { $0.isConnected } ?? connection(to: seeds[0])
    }

    /// The node's connection, made and started on first use.
    private func connection(to node: ClusterNode) -> RedisConnection {
        if let existing = connections[node] { return existing }
        var nodeConfiguration = configuration
        nodeConfiguration.host = node.host
        nodeConfiguration.port = node.port
        nodeConfiguration.unixSocketPath = nil
        nodeConfiguration.database = 0
        let connection = RedisConnection(configuration: nodeConfiguration, queue: queue, readiness: readiness, logger: logger)
        connection.commandObserver = commandObserver
        connections[node] = connection
        if closed { connection.close() } else if started { connection.start() }
        return connection
    }

    // MARK: The slot map

    /// Asks a connected node for `CLUSTER SLOTS`, unless a refresh is under way or one ran less
    /// than ``refreshInterval`` ago (then one runs when that interval is over).
    private func refreshMap() {
        guard started, !closed, !refreshing else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        let due = lastRefresh &+ Self.refreshInterval
        guard now >= due || lastRefresh == 0 else {
            guard !refreshQueued else { return }
            refreshQueued = true
            queue.asyncAfter(deadline: DispatchTime(uptimeNanoseconds: due)) { [self] in
                refreshQueued = false
                refreshMap()
            }
            return
        }
        // Prefer the map's masters; before the first map, the seeds (connecting just now).
        guard let (node, asked) = connections.first(where: { $0.value.isConnected }).map({ ($0.key, $0.value) }) else {
            // Nothing is up yet: try again once the interval is over (each connection reconnects
            // with its own backoff meanwhile).
            lastRefresh = now
            refreshMap()
            return
        }
        refreshing = true
        lastRefresh = now
        asked.send([Array("CLUSTER".utf8), Array("SLOTS".utf8)]) { [self] result in
            refreshing = false
            guard !closed else { return }
            let parsed = result.flatMap { reply -> Result<ClusterSlotMap, RedisError> in
                do throws(RedisError) { return .success(try ClusterSlotMap(clusterSlots: reply, queriedHost: node.host)) } catch { return .failure(error) }
            }
            switch parsed {
            case .success(let fresh) where !fresh.nodes.isEmpty:
                if fresh != map {
                    logger.info("redis cluster slot map", metadata: [
                        "redis.masters": "\(fresh.nodes.map(\.description).joined(separator: ","))",
                        "redis.all_slots_covered": "\(fresh.coversAllSlots)",
                    ])
                }
                map = fresh
                for master in fresh.nodes { _ = connection(to: master) }
            case .success:
                logger.warning("redis cluster has no slots assigned", metadata: ["redis.address": "\(node)"])
                refreshMap()
            case .failure(let error):
                logger.warning("redis cluster slot map refresh failed", metadata: ["redis.address": "\(node)", "redis.error": "\(error)"])
                refreshMap()
            }
        }
    }

    @inline(__always)
    private func assertOnQueue() {
        #if DEBUG
        dispatchPrecondition(condition: .onQueue(queue))
        #endif
    }
}

/// Carries a closure across `queue.asyncAfter` to the queue it was made on.
private struct SameQueue: @unchecked Sendable {
    let value: () -> Void
    init(_ value: @escaping () -> Void) { self.value = value }
}
