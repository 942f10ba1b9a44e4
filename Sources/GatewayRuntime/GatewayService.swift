import GatewayCore
import Dispatch
import GatewayHTTP
import GatewayRedis
import Logging

/// The whole gateway as one long-running service: the HTTP server and the read-through handler
/// with its per-loop Redis and upstream clients. The CLI adds signals; tests start it directly.
public final class GatewayService: Sendable {
    public let config: GatewayConfig
    public let gateway: Gateway
    public let server: HTTPServer
    /// Listens for purges when the config has an `invalidation` section.
    public let subscriber: RedisSubscriber?
    private let logger: Logger

    public init(config: GatewayConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        self.gateway = Gateway(config: config, logger: logger)
        self.server = HTTPServer(configuration: config.httpServerConfiguration, handler: gateway, logger: logger)
        if let invalidation = config.invalidation {
            let url = config.redis.url
            let gateway = self.gateway
            subscriber = RedisSubscriber(
                configuration: RedisConfiguration(
                    host: url.host, port: url.port, database: url.database, username: url.username, password: url.password,
                    connectTimeout: max(config.redis.timeout, .milliseconds(500))),
                channel: invalidation.channel, logger: logger
            ) { message in gateway.invalidate(message) }
        } else {
            subscriber = nil
        }
    }

    /// Connects to Redis (in the background), then binds and starts accepting.
    public func start() throws(SystemError) {
        if let api = config.invalidation?.purgeAPI, let name = api.tokenEnvironmentVariable, gateway.purgeToken == nil {
            logger.error("purge API token not set: only addresses in allow may purge", metadata: ["purge_api.token_env": "\(name)"])
        }
        gateway.attach(to: server.loops)
        subscriber?.start()
        do {
            try server.start()
        } catch {
            subscriber?.stop()
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

    /// The bound address (useful with port 0).
    public var localAddress: SocketAddress? { server.localAddress }

    /// Stops accepting, drains within `server.drain_timeout`, closes Redis and upstream clients.
    public func shutdown(completion: @escaping @Sendable () -> Void) {
        logger.info("draining", metadata: ["connections": "\(server.connectionCount)"])
        server.shutdown(drainTimeout: config.server.drainTimeout) { [gateway, logger, subscriber] in
            // This runs on an event loop; closing the clients waits on every loop's queue.
            DispatchQueue.global().async {
                subscriber?.stop()
                gateway.shutdown()
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
