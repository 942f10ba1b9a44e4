import Dispatch
import GatewayHTTP
import GatewayCore
import GatewayRedis
import Logging

/// One loop's Redis Cluster client (`redis+cluster://`): one connection per master on this
/// loop, commands routed by their key's slot (``RedisClusterConnection``). `redis.connections`
/// does not multiply it: the commands to one node are pipelined on that node's connection.
final class RedisClusterPool: LoopRedis, @unchecked Sendable {
    let settings: RedisPool.Settings
    private let cluster: RedisClusterConnection

    /// - Parameter observer: Told how long each command took, and of each redirection if it
    ///   counts those too (the metrics).
    init(_ redis: GatewayConfig.Redis, loop: EventLoop, observer: (any RedisCommandObserver)?, logger: Logger) {
        settings = RedisPool.Settings(redis)
        let configuration = RedisConfiguration(
            redis.url, commandTimeout: redis.timeout, connectTimeout: max(redis.timeout, .milliseconds(500)))
        var logger = logger
        logger[metadataKey: "event_loop"] = "\(loop.index)"
        cluster = RedisClusterConnection(configuration: configuration, seeds: configuration.clusterSeeds, queue: loop.queue,
                                         readiness: loop.readiness, logger: logger)
        cluster.commandObserver = observer
        cluster.redirectObserver = observer as? any RedisRedirectObserver
    }

    var commandTimeout: Duration { settings.timeout }
    var connectTimeout: Duration { cluster.configuration.connectTimeout }

    func start() { cluster.start() }
    func close() { cluster.close() }
    var isConnected: Bool { cluster.isConnected }
    var lastFailure: String? { cluster.lastFailure }
    var pendingCommandCount: Int { cluster.pendingCommandCount }

    func get(_ key: [UInt8], completion: @escaping (Result<[UInt8]?, RedisError>) -> Void) {
        cluster.get(key, completion: completion)
    }

    func set(_ key: [UInt8], _ value: [UInt8], ttlMilliseconds: Int, completion: @escaping (Result<Void, RedisError>) -> Void) {
        cluster.set(key, value, ttlMilliseconds: ttlMilliseconds, completion: completion)
    }

    func send(_ arguments: [[UInt8]], completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        cluster.send(arguments, completion: completion)
    }

    var scanTargets: [RedisConnection] { cluster.masterConnections }
}
