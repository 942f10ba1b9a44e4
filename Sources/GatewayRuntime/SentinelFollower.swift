import GatewayCore
import GatewayRedis
import Logging
import Synchronization

/// Keeps the gateway on the master of a `redis+sentinel://` URL: resolves it at start and on a
/// reload that names other Sentinels, and runs the ``SentinelMonitor`` whose new masters move
/// every loop's Redis (``Gateway/moveRedis(toMaster:port:)``, the reload path) and the
/// invalidation listeners. Does nothing for other URLs. Calls come from the service, one at a time.
final class SentinelFollower: Sendable {
    private let logger: Logger
    private struct State {
        /// What a new master moves; set by ``attach(gateway:listeners:)`` before any monitor runs.
        var gateway: Gateway?
        var listeners: InvalidationListeners?
        var running: SentinelMonitor?
        /// Made by ``resolve(_:)``, started by ``resume()``.
        var pending: (monitor: SentinelMonitor, known: SentinelMonitor.Endpoint?)?
    }
    private let state = Mutex(State())

    init(logger: Logger) {
        self.logger = logger
    }

    /// The gateway was built on what ``resolve(_:running:)`` found first.
    func attach(gateway: Gateway, listeners: InvalidationListeners) {
        state.withLock { $0.gateway = gateway; $0.listeners = listeners }
    }

    var monitor: SentinelMonitor? { state.withLock { $0.running } }

    /// `url` with the master its Sentinels name now (blocking: a few short timeouts per Sentinel).
    /// Stops following the running URL's Sentinels when `url` names others, or none; `running`
    /// is the URL in effect (nil at start). Left unresolved (empty host) when no Sentinel answers:
    /// requests are then served from upstream until the monitor finds a master.
    func resolve(_ url: GatewayConfig.RedisURL, running: GatewayConfig.RedisURL?) -> GatewayConfig.RedisURL {
        if let running, url.sameSentinelTarget(as: running) { return url }
        let old = state.withLock { s in
            defer { s.running = nil }
            return s.running
        }
        old?.stop()
        guard let sentinel = url.sentinel else { return url }
        let configuration = RedisConfiguration(url, connectTimeout: .milliseconds(500))
        // Weak: the follower holds the monitor.
        let monitor = SentinelMonitor(
            sentinels: sentinel.endpoints,
            masterName: sentinel.masterName, master: configuration, sentinelPassword: sentinel.password, logger: logger
        ) { [weak self] master in
            self?.follow(master, name: sentinel.masterName)
        }
        let found = monitor.discover()
        state.withLock { $0.pending = (monitor, found.master) }
        guard let master = found.master else {
            logger.error(
                "no Sentinel names a usable master; serving from upstream until one does",
                metadata: ["redis.master_name": "\(sentinel.masterName)", "redis.sentinels": "\(Self.describe(found))"])
            return url
        }
        logger.info("redis master found through Sentinel", metadata: ["redis.master_name": "\(sentinel.masterName)", "redis.master": "\(master)"])
        return url.withMaster(host: master.host, port: master.port)
    }

    /// Starts the monitor ``resolve(_:running:)`` made, once the gateway runs on its answer.
    func resume() {
        let pending = state.withLock { s in
            defer { if let p = s.pending { s.running = p.monitor }; s.pending = nil }
            return s.pending
        }
        pending?.monitor.start(knownMaster: pending?.known)
    }

    func stop() {
        let monitors = state.withLock { s in
            defer { s.running = nil; s.pending = nil }
            return [s.running, s.pending?.monitor].compactMap { $0 }
        }
        for monitor in monitors { monitor.stop() }
    }

    private func follow(_ master: SentinelMonitor.Endpoint, name: String) {
        let (gateway, listeners) = state.withLock { ($0.gateway, $0.listeners) }
        guard let gateway, let listeners, let from = gateway.moveRedis(toMaster: master.host, port: master.port) else { return }
        listeners.replace(redis: gateway.runningConfig.redis)
        gateway.metrics.masterSwitched()
        logger.warning(
            "redis master switched", metadata: ["redis.master_name": "\(name)", "redis.from": "\(from)", "redis.to": "\(master)"])
    }

    static func describe(_ found: SentinelMonitor.Discovery) -> String {
        found.answers.map { answer in
            switch answer.result {
            case .success(let master): "\(answer.sentinel): \(master)"
            case .failure(let error): "\(answer.sentinel): \(error.serverMessage ?? "\(error)")"
            }
        }.joined(separator: "; ")
    }
}
