import Dispatch
import GatewayCore
import GatewayHTTP
import GatewayRedis
import GatewayUpstream
import Logging

/// What one event loop owns besides its connections and its clients: its in-process tier, and
/// the retiring of clients a reload replaced. Touched only on `loop.queue`.
///
/// The clients themselves (``LoopClients``) belong to the policy snapshot, so that a request
/// reads routes, cache policies, Redis and upstream from one snapshot; ``clients`` is the loop's
/// share of the current one.
final class LoopResources: @unchecked Sendable {
    let loop: EventLoop
    private let policyBox: PolicyBox
    /// The in-process tier (`cache.local_ttl`; coherent through the tracking listener).
    var local: LocalCache
    /// Clients a reload replaced, not yet closed: their requests finish on them.
    private var retiring: [LoopClients] = []
    private let logger: Logger

    /// - Parameter coherence: `.awaitingTracking` when the gateway keeps a tracking connection.
    init(loop: EventLoop, policyBox: PolicyBox, cache: GatewayConfig.Cache, loopCount: Int, coherence: LocalCache.Coherence, logger: Logger) {
        self.loop = loop
        self.policyBox = policyBox
        self.logger = logger
        local = Self.localCache(cache, loopCount: loopCount, coherence: coherence)
    }

    static func localCache(_ cache: GatewayConfig.Cache, loopCount: Int, coherence: LocalCache.Coherence) -> LocalCache {
        LocalCache(
            ttlMilliseconds: UInt64(max(0, cache.localTTL.wholeMilliseconds)),
            maxBytes: cache.localMaxBytes / loopCount,
            maxEntries: cache.localMaxEntries / loopCount,
            untrackedTTLMilliseconds: UInt64(max(0, cache.localTTLWithoutTracking.wholeMilliseconds)),
            coherence: coherence)
    }

    /// This loop's clients in the current policy: what new requests, purges and readiness use.
    var clients: LoopClients { policyBox.current.clients[loop.index] }

    /// Closes the current clients and those still retiring (at shutdown).
    func stop() {
        clients.close(redis: true, upstream: true)
        for old in retiring { old.close(redis: true, upstream: true) }
        retiring.removeAll()
    }

    var redisConnected: Bool { clients.redis.isConnected }
    /// Why Redis is not connected on this loop, when a connection has failed (for `/readyz`).
    var redisFailure: String? { clients.redis.lastFailure }

    func redisGet(_ key: [UInt8], completion: @escaping (Result<[UInt8]?, RedisError>) -> Void) {
        clients.redisGet(key, completion: completion)
    }

    func redisSend(_ arguments: [[UInt8]], completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        clients.redisSend(arguments, completion: completion)
    }

    /// After a reload swapped the policy: closes what of `old` the current clients do not share,
    /// once nothing is pending on it (transfers and commands in flight finish where they started),
    /// or once everything started on it has had time to time out.
    func retire(_ old: LoopClients) {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        let current = clients
        let closeRedis = old.redis !== current.redis
        let closeUpstream = old.upstream !== current.upstream
        guard closeRedis || closeUpstream else { return }
        retiring.append(old)
        // A request may chain a Redis command and a transfer on the old clients (lookup, fetch,
        // store): the longest it can keep them busy is one of each.
        let grace = old.upstream.configuration.timeout + old.redis.commandTimeout + .seconds(1)
        let deadline = DispatchTime.now() + .nanoseconds(Int(clamping: grace.wholeMilliseconds * 1_000_000))
        closeWhenIdle(old, redis: closeRedis, upstream: closeUpstream, deadline: deadline)
    }

    private func closeWhenIdle(_ old: LoopClients, redis closeRedis: Bool, upstream closeUpstream: Bool, deadline: DispatchTime) {
        let idle = (!closeRedis || old.redis.pendingCommandCount == 0)
            && (!closeUpstream || old.upstream.inFlightCount + old.upstream.queuedCount == 0)
        guard idle || DispatchTime.now() >= deadline else {
            // Bounded by `deadline`: a 20 ms step until then.
            loop.queue.asyncAfter(deadline: .now() + .milliseconds(20)) { [self] in
                closeWhenIdle(old, redis: closeRedis, upstream: closeUpstream, deadline: deadline)
            }
            return
        }
        logger.debug("closed clients a reload replaced", metadata: [
            "event_loop": "\(loop.index)", "redis": "\(closeRedis)", "upstream": "\(closeUpstream)", "idle": "\(idle)",
        ])
        old.close(redis: closeRedis, upstream: closeUpstream)
        retiring.removeAll { $0 === old }
    }
}

/// The clients one loop's requests talk through: Redis connections and an upstream client, both
/// owned by the loop's queue and touched only there. A reload that changes their settings makes
/// new ones (sharing what did not change); a request keeps the set it started with until that
/// set is retired, then moves to the loop's current one (``Exchange/liveClients``).
final class LoopClients: @unchecked Sendable {
    let redis: any LoopRedis
    let upstream: UpstreamClient
    /// Set when a reload closed some of these: a request holding them moves to the current set.
    private(set) var isRetired = false

    init(redis: any LoopRedis, upstream: UpstreamClient) {
        self.redis = redis
        self.upstream = upstream
    }

    /// One loop's clients for `config`, reusing what of `previous` the config does not change.
    static func make(
        config: GatewayConfig, loop: EventLoop, permits: UpstreamPermits, reusing previous: LoopClients?,
        redisObserver: (any RedisCommandObserver)?, logger: Logger
    ) -> LoopClients {
        let redis = previous.flatMap { old -> (any LoopRedis)? in old.redis.settings == RedisPool.Settings(config.redis) ? old.redis : nil }
            ?? makeRedis(config.redis, loop: loop, observer: redisObserver, logger: logger)
        let configuration = upstreamConfiguration(config, permits: permits)
        let upstream = previous.flatMap { $0.upstream.configuration.sameSettings(as: configuration) ? $0.upstream : nil }
            ?? UpstreamClient(configuration: configuration, queue: loop.queue, readiness: loop.readiness)
        return LoopClients(redis: redis, upstream: upstream)
    }

    /// A cluster client for `redis+cluster://`, else the standalone pool.
    private static func makeRedis(_ redis: GatewayConfig.Redis, loop: EventLoop, observer: (any RedisCommandObserver)?, logger: Logger) -> any LoopRedis {
        if redis.url.isCluster {
            return RedisClusterPool(redis, loop: loop, observer: observer, logger: logger)
        }
        return RedisPool(redis, loop: loop, observer: observer, logger: logger)
    }

    private static func upstreamConfiguration(_ config: GatewayConfig, permits: UpstreamPermits) -> UpstreamConfiguration {
        // The upstream cap is for the whole gateway, so the permits are shared by every loop. A
        // loop's own connection cap is the full cap: any loop may run all the transfers at some
        // moment, so each may keep up to that many idle keep-alive connections.
        UpstreamConfiguration(
            baseURL: config.upstream.url.description,
            connectTimeout: config.upstream.connectTimeout,
            timeout: config.upstream.timeout,
            maxConnections: permits.limit,
            maxQueued: permits.maxQueued,
            maxResponseBodyBytes: max(config.server.maxBodyBytes, 64 << 20),
            permits: permits
        )
    }

    func close(redis closeRedis: Bool, upstream closeUpstream: Bool) {
        isRetired = true
        if closeRedis { redis.close() }
        if closeUpstream { upstream.shutdown() }
    }

    func redisGet(_ key: [UInt8], completion: @escaping (Result<[UInt8]?, RedisError>) -> Void) {
        redis.get(key, completion: completion)
    }

    func redisSend(_ arguments: [[UInt8]], completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        redis.send(arguments, completion: completion)
    }

    func redisSet(_ key: [UInt8], _ value: [UInt8], ttlMilliseconds: Int, completion: @escaping (Result<Void, RedisError>) -> Void) {
        redis.set(key, value, ttlMilliseconds: max(1, ttlMilliseconds), completion: completion)
    }
}

/// One loop's Redis, whatever the deployment behind `redis.url`: a standalone server
/// (``RedisPool``) or a Redis Cluster (``RedisClusterPool``). Every command the gateway sends
/// names one key or none, so both can serve each of them. Touched only on the loop's queue.
protocol LoopRedis: AnyObject, Sendable {
    /// What it was made from: a reload with other settings makes a new one.
    var settings: RedisPool.Settings { get }
    var commandTimeout: Duration { get }
    var connectTimeout: Duration { get }
    func start()
    func close()
    var isConnected: Bool { get }
    var lastFailure: String? { get }
    var pendingCommandCount: Int { get }
    func get(_ key: [UInt8], completion: @escaping (Result<[UInt8]?, RedisError>) -> Void)
    func set(_ key: [UInt8], _ value: [UInt8], ttlMilliseconds: Int, completion: @escaping (Result<Void, RedisError>) -> Void)
    /// A command naming one key (routed by it) or none.
    func send(_ arguments: [[UInt8]], completion: @escaping (Result<RedisReply, RedisError>) -> Void)
    /// Where a `SCAN` walk goes: one connection per node holding keys (each walked with its own
    /// cursor), since `SCAN` sees only the node it is sent to.
    var scanTargets: [RedisConnection] { get }
}

/// One loop's Redis connections (`redis.connections` of them), used round robin. Touched only on
/// the loop's queue.
final class RedisPool: LoopRedis, @unchecked Sendable {
    /// What the connections were made from: a reload with other settings makes a new pool.
    struct Settings: Equatable {
        var url: GatewayConfig.RedisURL
        var timeout: Duration
        var connections: Int

        init(_ redis: GatewayConfig.Redis) {
            url = redis.url
            timeout = redis.timeout
            connections = redis.connections
        }
    }

    let settings: Settings
    private let connections: [RedisConnection]
    private var next = 0

    /// - Parameter observer: Told how long each command took (the metrics).
    init(_ redis: GatewayConfig.Redis, loop: EventLoop, observer: (any RedisCommandObserver)?, logger: Logger) {
        settings = Settings(redis)
        let configuration = RedisConfiguration(
            redis.url, commandTimeout: redis.timeout, connectTimeout: max(redis.timeout, .milliseconds(500)))
        var logger = logger
        logger[metadataKey: "event_loop"] = "\(loop.index)"
        connections = (0..<redis.connections).map { [logger] _ in
            // Connection state changes only (connected, lost, reconnecting), never per command.
            // In the loop's epoll set: a reply wakes the loop with its clients' requests.
            let connection = RedisConnection(configuration: configuration, queue: loop.queue, readiness: loop.readiness, logger: logger)
            connection.commandObserver = observer
            return connection
        }
    }

    var commandTimeout: Duration { settings.timeout }
    var connectTimeout: Duration { connections[0].configuration.connectTimeout }

    func start() { for connection in connections { connection.start() } }
    func close() { for connection in connections { connection.close() } }
    var isConnected: Bool { connections.contains { $0.isConnected } }
    var lastFailure: String? { connections.lazy.compactMap(\.lastFailure).first }
    var pendingCommandCount: Int { connections.reduce(0) { $0 + $1.pendingCommandCount } }

    /// The next connection, round robin, preferring one that is up.
    func pick() -> RedisConnection {
        for _ in 0..<connections.count {
            let connection = connections[next]
            next = (next + 1) % connections.count
            if connection.isConnected { return connection }
        }
        return connections[0]
    }

    func get(_ key: [UInt8], completion: @escaping (Result<[UInt8]?, RedisError>) -> Void) {
        pick().get(key, completion: completion)
    }

    func set(_ key: [UInt8], _ value: [UInt8], ttlMilliseconds: Int, completion: @escaping (Result<Void, RedisError>) -> Void) {
        pick().set(key, value, ttlMilliseconds: ttlMilliseconds, completion: completion)
    }

    func send(_ arguments: [[UInt8]], completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        pick().send(arguments, completion: completion)
    }

    var scanTargets: [RedisConnection] { [pick()] }
}

extension Exchange {
    /// The clients this request talks through: those it started with, unless a reload retired
    /// them meanwhile (then the loop's current ones, so that nothing fails on a closed client).
    var liveClients: LoopClients { clients.isRetired ? resources.clients : clients }
}

extension UpstreamConfiguration {
    /// Whether a client made from `other` would behave the same (the permit pool included).
    func sameSettings(as other: UpstreamConfiguration) -> Bool {
        baseURL == other.baseURL && connectTimeout == other.connectTimeout && timeout == other.timeout
            && maxConnections == other.maxConnections && maxQueued == other.maxQueued
            && maxResponseBodyBytes == other.maxResponseBodyBytes && maxResponseHeaderBytes == other.maxResponseHeaderBytes
            && permits === other.permits
    }
}
