import GatewayCore
import GatewayHTTP
import GatewayRedis
import GatewayUpstream
import Logging

/// What one event loop owns besides its connections: its Redis connections and its upstream
/// client. Touched only on `loop.queue`.
final class LoopResources: @unchecked Sendable {
    let loop: EventLoop
    let redis: [RedisConnection]
    let upstream: UpstreamClient
    /// The in-process tier (disabled unless `cache.local_ttl` is set).
    var local: LocalCache
    private var nextRedis = 0

    init(loop: EventLoop, config: GatewayConfig, loopCount: Int, upstreamPermits: UpstreamPermits, logger: Logger) {
        self.loop = loop
        let redisConfiguration = RedisConfiguration(
            config.redis.url, commandTimeout: config.redis.timeout, connectTimeout: max(config.redis.timeout, .milliseconds(500)))
        var redisLogger = logger
        redisLogger[metadataKey: "event_loop"] = "\(loop.index)"
        redis = (0..<config.redis.connections).map { [redisLogger] _ in
            // Connection state changes only (connected, lost, reconnecting), never per command.
            RedisConnection(configuration: redisConfiguration, queue: loop.queue, logger: redisLogger)
        }
        // The upstream cap is for the whole gateway, so the permits are shared by every loop. A
        // loop's own connection cap is the full cap: any loop may run all the transfers at some
        // moment, so each may keep up to that many idle keep-alive connections.
        let upstream = config.upstream
        let upstreamConfiguration = UpstreamConfiguration(
            baseURL: upstream.url.description,
            connectTimeout: upstream.connectTimeout,
            timeout: upstream.timeout,
            maxConnections: upstreamPermits.limit,
            maxQueued: upstreamPermits.maxQueued,
            maxResponseBodyBytes: max(config.server.maxBodyBytes, 64 << 20),
            permits: upstreamPermits
        )
        self.upstream = UpstreamClient(configuration: upstreamConfiguration, queue: loop.queue)
        local = LocalCache(
            ttlMilliseconds: UInt64(max(0, config.cache.localTTL.wholeMilliseconds)),
            maxBytes: config.cache.localMaxBytes / loopCount,
            maxEntries: config.cache.localMaxEntries / loopCount)
    }

    func start() {
        for connection in redis { connection.start() }
    }

    func stop() {
        for connection in redis { connection.close() }
        upstream.shutdown()
    }

    var redisConnected: Bool { redis.contains { $0.isConnected } }

    /// The next connection, round robin, preferring one that is up.
    private func pickRedis() -> RedisConnection {
        for _ in 0..<redis.count {
            let connection = redis[nextRedis]
            nextRedis = (nextRedis + 1) % redis.count
            if connection.isConnected { return connection }
        }
        return redis[0]
    }

    func redisGet(_ key: [UInt8], completion: @escaping (Result<[UInt8]?, RedisError>) -> Void) {
        pickRedis().get(key, completion: completion)
    }

    func redisSend(_ arguments: [[UInt8]], completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        pickRedis().send(arguments, completion: completion)
    }

    func redisSet(_ key: [UInt8], _ value: [UInt8], ttlMilliseconds: Int, completion: @escaping (Result<Void, RedisError>) -> Void) {
        pickRedis().set(key, value, ttlMilliseconds: max(1, ttlMilliseconds), completion: completion)
    }
}
