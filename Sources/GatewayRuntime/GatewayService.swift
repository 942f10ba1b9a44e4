import Dispatch
import Foundation
import GatewayCore
import GatewayHTTP
import GatewayRedis
import Logging

/// The whole gateway as one long-running service: the HTTP server and the read-through handler
/// with its per-loop Redis and upstream clients. The CLI adds signals; tests start it directly.
public final class GatewayService: Sendable {
    public let config: GatewayConfig
    public let gateway: Gateway
    public let server: HTTPServer
    /// Listens for purges when the config names an `invalidation.channel`.
    public let subscriber: RedisSubscriber?
    /// Reads purges from `invalidation.stream`, through this instance's own consumer group.
    public let streamConsumer: RedisStreamConsumer?
    private let logger: Logger
    /// `access_log`: the log, or why its file could not be opened (reported by `start`).
    private let accessLogOpening: Result<AccessLog, SystemError>?

    /// The access log, when `access_log` is not off and its destination opened.
    public var accessLog: AccessLog? { try? accessLogOpening?.get() }

    public init(config: GatewayConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        accessLogOpening = config.accessLog.map { settings in
            Result { () throws(SystemError) in try AccessLog(settings: settings, logger: logger) }
        }
        self.gateway = Gateway(config: config, logger: logger)
        self.server = HTTPServer(configuration: config.httpServerConfiguration, handler: gateway, logger: logger)
        let url = config.redis.url
        let redis = RedisConfiguration(
            host: url.host, port: url.port, database: url.database, username: url.username, password: url.password,
            connectTimeout: max(config.redis.timeout, .milliseconds(500)))
        let gateway = self.gateway
        if let channel = config.invalidation?.channel {
            subscriber = RedisSubscriber(
                configuration: redis, channel: channel, logger: logger,
                // Messages published while it was away are lost: what the in-process tiers hold
                // may have been purged meanwhile.
                onResubscribe: { gateway.clearLocalTiers() }
            ) { message in gateway.invalidate(message) }
        } else {
            subscriber = nil
        }
        if let stream = config.invalidation?.stream {
            // A group of this instance's own: every instance applies every event (its in-process
            // tier and its flights are its own), and the group keeps its position while it is away.
            let instance = config.invalidation?.instance ?? ProcessInfo.processInfo.hostName
            streamConsumer = RedisStreamConsumer(
                redis: redis,
                configuration: .init(stream: stream, group: "cachegateway:" + instance, consumer: instance),
                logger: logger
            ) { id, fields, completion in
                gateway.applyStreamEntry(id: id, fields: fields, completion: completion)
            }
        } else {
            streamConsumer = nil
        }
        gateway.streamSnapshot = { [streamConsumer] in streamConsumer?.snapshot }
    }

    /// Connects to Redis (in the background), then binds and starts accepting.
    public func start() throws(SystemError) {
        if let api = config.invalidation?.purgeAPI, let name = api.tokenEnvironmentVariable, gateway.purgeToken == nil {
            logger.error("purge API token not set: only addresses in allow may purge", metadata: ["purge_api.token_env": "\(name)"])
        }
        if let accessLogOpening {
            let log = try accessLogOpening.get()
            log.attach(to: server.loops)
            gateway.requestObservers.append(log)
        }
        gateway.attach(to: server.loops)
        subscriber?.start()
        streamConsumer?.start()
        do {
            try server.start()
        } catch {
            subscriber?.stop()
            streamConsumer?.stop()
            gateway.shutdown()
            throw error
        }
        logger.info(
            "gateway listening",
            metadata: [
                "listen": "\(server.localAddress.map { "\($0)" } ?? "\(config.listen)")",
                "upstream": "\(config.upstream.url)",
                "redis": "\(config.redis.url)",
                "routes": "\(config.routes.count)",
                "event_loops": "\(server.loops.count)",
            ])
    }

    /// SIGUSR1: reopens the access log's file at its path (logrotate moved it); a no-op when
    /// it logs to stdout or stderr.
    public func reopenAccessLog() throws(SystemError) {
        try accessLog?.reopen()
    }

    /// The bound address (useful with port 0).
    public var localAddress: SocketAddress? { server.localAddress }

    /// Stops accepting, drains within `server.drain_timeout`, closes Redis and upstream clients.
    public func shutdown(completion: @escaping @Sendable () -> Void) {
        logger.info("draining", metadata: ["connections": "\(server.connectionCount)"])
        server.shutdown(drainTimeout: config.server.drainTimeout) { [gateway, logger, subscriber, streamConsumer, accessLog] in
            // This runs on an event loop; closing the clients waits on every loop's queue.
            DispatchQueue.global().async {
                subscriber?.stop()
                streamConsumer?.stop()
                gateway.shutdown()
                // After the drain: the last requests answered are in the log.
                accessLog?.flush()
                logger.info("stopped")
                completion()
            }
        }
    }
}

extension GatewayConfig {
    /// The server part of the config, in the HTTP module's terms.
    public var httpServerConfiguration: HTTPServerConfiguration {
        var c = HTTPServerConfiguration()
        c.host = listen.host
        c.port = listen.port
        c.eventLoops = server.eventLoops
        c.maxConnections = server.maxConnections
        c.maxRequestsPerConnection = server.maxRequestsPerConnection
        c.headerTimeout = server.headerTimeout
        c.idleTimeout = server.idleTimeout
        c.bodyTimeout = server.bodyTimeout
        c.parserLimits = HTTPParserLimits(
            maxHeaderBytes: server.maxHeaderBytes, maxHeaderCount: server.maxHeaders, maxBodyBytes: server.maxBodyBytes)
        return c
    }
}
