import Dispatch
import Foundation
import GatewayCore
import GatewayHTTP
import GatewayRedis
import Logging

/// The whole gateway as one long-running service: the HTTP server and the read-through handler
/// with its per-loop Redis and upstream clients. The CLI adds signals; tests start it directly.
public final class GatewayService: Sendable {
    /// The configuration the service started with; ``Gateway/runningConfig`` is what is in effect.
    public let config: GatewayConfig
    public let gateway: Gateway
    public let server: HTTPServer
    /// The admin endpoints; its ``AdminHandler/sources`` may be replaced before ``start()``.
    public let admin: AdminHandler
    /// The admin listener (`admin:`), nil when the config has none.
    public let adminServer: HTTPServer?
    /// Listens for purges when the config names an `invalidation.channel` (on the running
    /// `redis.url`: a reload that moves Redis makes a new one).
    public var subscriber: RedisSubscriber? { listeners.subscriber }
    /// Reads purges from `invalidation.stream`, through this instance's own consumer group.
    public var streamConsumer: RedisStreamConsumer? { listeners.streamConsumer }
    /// Hears the other instances' fill announcements (`cache.cross_instance`).
    public var fillsSubscriber: RedisSubscriber? { listeners.fills }
    /// Keeps the in-process tier coherent (`cache.local_tracking`), on the running `redis.url`.
    public var trackingListener: RedisSubscriber? { listeners.trackingListener }
    /// On a Redis Cluster, in place of ``trackingListener``: a tracking listener per master.
    public var clusterTracking: RedisClusterTracking? { listeners.clusterTracking }
    private let listeners: InvalidationListeners
    private let sentinel: SentinelFollower
    private let logger: Logger
    /// `access_log`: the log, or why its file could not be opened (reported by `start`).
    private let accessLogOpening: Result<AccessLog, SystemError>?

    /// The access log, when `access_log` is not off and its destination opened.
    public var accessLog: AccessLog? { try? accessLogOpening?.get() }

    public init(config: GatewayConfig, logger: Logger) {
        var logger = logger
        // Several instances write to one log pipeline: every line says whose it is (the `gateway`
        // executable's log handler adds it too, for the lines written before the service exists).
        logger[metadataKey: "instance"] = "\(config.instanceID)"
        self.config = config
        self.logger = logger
        accessLogOpening = config.accessLog.map { settings in
            Result { () throws(SystemError) in try AccessLog(settings: settings, logger: logger) }
        }
        // A Sentinel URL starts on the master its Sentinels name now (blocking, bounded by a
        // few short timeouts per Sentinel); the follower then moves the gateway along.
        let sentinel = SentinelFollower(logger: logger)
        self.sentinel = sentinel
        var resolved = config
        resolved.redis.url = sentinel.resolve(config.redis.url, running: nil)
        self.gateway = Gateway(config: resolved, logger: logger)
        self.server = HTTPServer(configuration: config.httpServerConfiguration, handler: gateway, logger: logger)
        let admin = AdminHandler(gateway: gateway, sources: AdminSources(
            metricsText: { [gateway] in gateway.prometheusText(completion: $0) },
            statsJSON: { [gateway] in gateway.statsJSON(completion: $0) }))
        self.admin = admin
        adminServer = config.adminServerConfiguration.map { HTTPServer(configuration: $0, handler: admin, logger: logger) }
        listeners = InvalidationListeners(config: resolved, gateway: gateway, logger: logger)
        sentinel.attach(gateway: gateway, listeners: listeners)
        gateway.streamSnapshot = { [listeners] in listeners.streamConsumer?.snapshot }
        gateway.fillsListening = { [listeners] in listeners.fills?.isSubscribed ?? false }
        // Weak: the server holds the gateway, which holds its metrics.
        gateway.metrics.openConnections = { [weak server] in server?.connectionCount ?? 0 }
    }

    /// Applies `new` to requests from now on (``Gateway/reload(_:)``), and moves the invalidation
    /// listeners to a new `redis.url`. Blocks for at most a few Redis connect timeouts; call from
    /// one thread at a time, never from an event loop.
    public func reload(_ new: GatewayConfig) -> ReloadReport {
        var new = new
        new.redis.url = sentinel.resolve(new.redis.url, running: gateway.runningConfig.redis.url)
        let report = gateway.reload(new)
        if report.redisURLChanged { listeners.replace(redis: gateway.runningConfig.redis) }
        sentinel.resume()
        return report
    }

    /// Follows the master of a `redis+sentinel://` URL; nil for other URLs.
    public var sentinelMonitor: SentinelMonitor? { sentinel.monitor }

    /// Connects to Redis (in the background), then binds and starts accepting.
    public func start() throws(SystemError) {
        if let api = config.invalidation?.purgeAPI, let name = api.tokenEnvironmentVariable, gateway.purgeToken == nil {
            logger.error("purge API token not set: only addresses in allow may purge", metadata: ["purge_api.token_env": "\(name)"])
        }
        if let accessLogOpening {
            let log = try accessLogOpening.get()
            log.attach(to: server.loops)
            gateway.requestObservers.append(log)
            gateway.metrics.accessLogDropped = { [log] in log.dropped }
        }
        gateway.attach(to: server.loops)
        listeners.start()
        sentinel.resume()
        do throws(SystemError) {
            try server.start()
            do throws(SystemError) {
                try adminServer?.start()
            } catch {
                server.shutdown(drainTimeout: .zero) {}
                throw error
            }
        } catch {
            sentinel.stop()
            listeners.stop()
            gateway.shutdown()
            throw error
        }
        logger.info(
            "gateway listening",
            metadata: [
                "listen": "\(server.localAddress.map { "\($0)" } ?? "\(config.listen)")",
                "upstream": "\(config.upstream.url)",
                "redis": "\(gateway.runningConfig.redis.url)",
                "redis.master": "\(gateway.runningConfig.redis.url.address)",
                "routes": "\(config.routes.count)",
                "event_loops": "\(server.loops.count)",
                "admin": "\(adminServer?.localAddress.map { "\($0)" } ?? "off")",
            ])
    }

    /// SIGUSR1: reopens the access log's file at its path (logrotate moved it); a no-op when
    /// it logs to stdout or stderr.
    public func reopenAccessLog() throws(SystemError) {
        try accessLog?.reopen()
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
        // `drain_timeout` as reloaded: it is read only here.
        server.shutdown(drainTimeout: gateway.runningConfig.server.drainTimeout) { [gateway, logger, listeners, sentinel, accessLog, adminServer] in
            // This runs on an event loop; closing the clients waits on every loop's queue.
            DispatchQueue.global().async {
                // First: a master switch now would start new clients and listeners.
                sentinel.stop()
                listeners.stop()
                let finish: @Sendable () -> Void = {
                    DispatchQueue.global().async {
                        gateway.shutdown()
                        // After the drain: the last requests answered are in the log.
                        accessLog?.flush()
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
