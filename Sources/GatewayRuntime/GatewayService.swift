import Dispatch
import Foundation
import GatewayCore
import GatewayHTTP
import GatewayRedis
import Logging

/// The whole gateway as one long-running service: the HTTP server and the read-through handler
/// with its per-loop Redis and upstream clients. The CLI adds signals; tests start it directly.
public final class GatewayService: Sendable {
    /// The gateway's version (`gateway --version`, the stats JSON).
    public static let version = "0.6.0"

    public let config: GatewayConfig
    public let gateway: Gateway
    public let server: HTTPServer
    /// The admin endpoints; its ``AdminHandler/sources`` may be replaced before ``start()``.
    public let admin: AdminHandler
    /// The admin listener (`admin:`), nil when the config has none.
    public let adminServer: HTTPServer?
    /// Listens for purges when the config names an `invalidation.channel`.
    public let subscriber: RedisSubscriber?
    /// Reads purges from `invalidation.stream`, through this instance's own consumer group.
    public let streamConsumer: RedisStreamConsumer?
    private let logger: Logger

    public init(config: GatewayConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        self.gateway = Gateway(config: config, logger: logger)
        let server = HTTPServer(configuration: config.httpServerConfiguration, handler: gateway, logger: logger)
        self.server = server
        let admin = AdminHandler(
            gateway: gateway,
            sources: AdminHandler.fallbackSources(
                gateway: gateway, openConnections: { server.connectionCount }, startedAt: WallClock.nowMilliseconds()))
        self.admin = admin
        adminServer = config.adminServerConfiguration.map { HTTPServer(configuration: $0, handler: admin, logger: logger) }
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
        gateway.attach(to: server.loops)
        subscriber?.start()
        streamConsumer?.start()
        do throws(SystemError) {
            try server.start()
            do throws(SystemError) {
                try adminServer?.start()
            } catch {
                server.shutdown(drainTimeout: .zero) {}
                throw error
            }
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
                "admin": "\(adminServer?.localAddress.map { "\($0)" } ?? "off")",
            ])
    }

    /// The bound address (useful with port 0).
    public var localAddress: SocketAddress? { server.localAddress }
    /// The admin listener's bound address; nil without `admin:`.
    public var adminAddress: SocketAddress? { adminServer?.localAddress }

    /// Stops accepting, drains within `server.drain_timeout`, closes Redis and upstream clients.
    /// The admin listener stays up while the public port drains (`/readyz` and the status page
    /// can watch it), and closes after it.
    public func shutdown(completion: @escaping @Sendable () -> Void) {
        logger.info("draining", metadata: ["connections": "\(server.connectionCount)"])
        server.shutdown(drainTimeout: config.server.drainTimeout) { [gateway, logger, subscriber, streamConsumer, adminServer] in
            // This runs on an event loop; closing the clients waits on every loop's queue.
            DispatchQueue.global().async {
                subscriber?.stop()
                streamConsumer?.stop()
                let finish: @Sendable () -> Void = {
                    DispatchQueue.global().async {
                        gateway.shutdown()
                        logger.info("stopped")
                        completion()
                    }
                }
                // Admin requests (a purge) use the public loops' Redis: stop them first.
                if let adminServer { adminServer.shutdown(drainTimeout: .seconds(1), completion: finish) } else { finish() }
            }
        }
    }
}

extension GatewayConfig {
    /// The admin listener in the HTTP module's terms: one event loop and a few connections are
    /// plenty for a status page, a scraper and an operator, and cannot crowd out the public port.
    public var adminServerConfiguration: HTTPServerConfiguration? {
        guard let admin else { return nil }
        var c = HTTPServerConfiguration()
        c.host = admin.listen.host
        c.port = admin.listen.port
        c.eventLoops = 1
        c.maxConnections = 64
        c.headerTimeout = .seconds(5)
        c.idleTimeout = .seconds(30)
        c.parserLimits = HTTPParserLimits(maxHeaderBytes: 16 * 1024, maxHeaderCount: 100, maxBodyBytes: 64 * 1024)
        return c
    }

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
