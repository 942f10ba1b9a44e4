import Foundation
import GatewayCore
import GatewayRedis
import Logging
import Synchronization

/// The invalidation subscriber, stream consumer, tracking listener (one per master on a Cluster)
/// and fill-announcement subscriber of the running config: made from `invalidation`, `cache` and
/// `redis.url`, started and stopped together, and made again against a new `redis.url` by a
/// reload (the new ones start before the old ones stop, so no moment listens to neither). Readable from any thread; ``replace(redis:)`` and ``stop()`` run
/// one at a time.
final class InvalidationListeners: Sendable {
    private struct Listeners {
        var subscriber: RedisSubscriber?
        var streamConsumer: RedisStreamConsumer?
        var tracking: RedisSubscriber?
        /// On a Cluster, in place of ``tracking``: a listener per master.
        var clusterTracking: RedisClusterTracking?
        /// The other instances' fill announcements (`cache.cross_instance`).
        var fills: RedisSubscriber?

        var all: [any StartStop] { [subscriber as (any StartStop)?, streamConsumer, tracking, clusterTracking, fills].compactMap { $0 } }
    }

    private struct Current {
        var listeners = Listeners()
        /// The tracking listener whose events count; those of a replaced one are dropped.
        var trackingGeneration = 0
        /// Redis's answer when it refused tracking, until tracking is established.
        var trackingRefusal: String?
        var started = false
        var stopped = false
    }

    private let invalidation: GatewayConfig.Invalidation?
    /// The stream's consumer (and group) name: ``GatewayConfig/streamConsumerName``.
    private let consumerName: String
    private let tracksLocalTier: Bool
    /// The `<prefix>fills` channel, when `cache.cross_instance` was on at start.
    private let fillsChannel: String?
    private let keySpace: KeySpace
    private let gateway: Gateway
    private let logger: Logger
    private let current: Mutex<Current>

    init(config: GatewayConfig, gateway: Gateway, logger: Logger) {
        self.invalidation = config.invalidation
        self.consumerName = config.streamConsumerName
        self.tracksLocalTier = config.cache.tracksLocalTier
        self.keySpace = KeySpace(prefix: config.redis.keyPrefix)
        self.fillsChannel = config.cache.crossInstance ? keySpace.fillsChannel : nil
        self.gateway = gateway
        self.logger = logger
        current = Mutex(Current())
        let made = make(config.redis, trackingGeneration: 0)
        current.withLock { $0.listeners = made }
    }

    var subscriber: RedisSubscriber? { current.withLock { $0.listeners.subscriber } }
    var streamConsumer: RedisStreamConsumer? { current.withLock { $0.listeners.streamConsumer } }
    var trackingListener: RedisSubscriber? { current.withLock { $0.listeners.tracking } }
    var clusterTracking: RedisClusterTracking? { current.withLock { $0.listeners.clusterTracking } }
    var fills: RedisSubscriber? { current.withLock { $0.listeners.fills } }

    func start() {
        let listeners = current.withLock { c in
            c.started = true
            return c.listeners
        }
        for listener in listeners.all { listener.start() }
    }

    /// Stops them for good: a later ``replace(redis:)`` does nothing.
    func stop() {
        let listeners = current.withLock { c in
            c.stopped = true
            return c.listeners
        }
        for listener in listeners.all { listener.stop() }
    }

    /// Listens on `redis` instead (a reload changed `redis.url`).
    func replace(redis: GatewayConfig.Redis) {
        guard invalidation?.channel != nil || invalidation?.stream != nil || tracksLocalTier || fillsChannel != nil else { return }
        // From here the old Redis's invalidations are not the loops' (they read the new one):
        // the tiers empty and wait for the new listener.
        let generation: Int? = current.withLock { c in
            guard c.started, !c.stopped else { return nil }
            c.trackingGeneration += 1
            return c.trackingGeneration
        }
        guard let generation else { return }
        if tracksLocalTier { gateway.applyTracking(.lost) }
        let made = make(redis, trackingGeneration: generation)
        // Started outside the lock (start spawns a thread); a stop in between wins.
        for listener in made.all { listener.start() }
        let old: Listeners? = current.withLock { c in
            guard !c.stopped else { return nil }
            defer { c.listeners = made }
            return c.listeners
        }
        guard let old else {
            for listener in made.all { listener.stop() }
            return
        }
        for listener in old.all { listener.stop() }
        logger.info("invalidation listeners moved to the new redis.url", metadata: ["redis": "\(redis.url)"])
    }

    /// An event of the tracking listener made for `generation`, on its thread.
    private func tracking(_ event: RedisTrackingEvent, generation: Int) {
        let (isCurrent, firstRefusal): (Bool, Bool) = current.withLock { c in
            guard c.trackingGeneration == generation, !c.stopped else { return (false, false) }
            switch event {
            case .refused(let message):
                defer { c.trackingRefusal = message }
                return (true, c.trackingRefusal == nil)
            case .established:
                c.trackingRefusal = nil
            default:
                break
            }
            return (true, false)
        }
        guard isCurrent else { return }
        if case .refused(let message) = event {
            // The listener keeps asking with its backoff; the tier changes, and it is said, once.
            guard firstRefusal else { return }
            logger.warning(
                "no CLIENT TRACKING (Redis refused it, or a cluster's slot map could not be read): the in-process tier runs without it (local_ttl given in the config, else off)",
                metadata: ["redis.error": "\(message)"])
        }
        gateway.applyTracking(event)
    }

    private func make(_ redis: GatewayConfig.Redis, trackingGeneration: Int) -> Listeners {
        let configuration = RedisConfiguration(redis.url, connectTimeout: max(redis.timeout, .milliseconds(500)))
        var made = Listeners()
        made.fills = makeFills(configuration)
        if tracksLocalTier {
            // Weak: the listener is held by this object, and its events only matter while it lives.
            let onEvent: @Sendable (RedisTrackingEvent) -> Void = { [weak self] event in
                self?.tracking(event, generation: trackingGeneration)
            }
            if redis.url.isCluster {
                // A node broadcasts only its own keys' changes: one listener per master.
                made.clusterTracking = RedisClusterTracking(
                    configuration: configuration, prefixes: [keySpace.entryNamespace], logger: logger, onEvent: onEvent)
            } else {
                made.tracking = RedisSubscriber.tracking(
                    configuration: configuration, prefixes: [keySpace.entryNamespace], logger: logger, onEvent: onEvent)
            }
        }
        let gateway = self.gateway
        var subscriber: RedisSubscriber?
        if let channel = invalidation?.channel {
            subscriber = RedisSubscriber(
                configuration: configuration, channel: channel, logger: logger,
                // Messages published while it was away are lost: what the in-process tiers hold
                // may have been purged meanwhile.
                onResubscribe: { gateway.clearLocalTiers() }
            ) { message in gateway.invalidate(message) }
        }
        var consumer: RedisStreamConsumer?
        if let stream = invalidation?.stream {
            // A group of this instance's own: every instance applies every event (its in-process
            // tier and its flights are its own), and the group keeps its position while it is away.
            let instance = consumerName
            consumer = RedisStreamConsumer(
                redis: configuration,
                configuration: .init(stream: stream, group: "cachegateway:" + instance, consumer: instance),
                logger: logger
            ) { id, fields, completion in
                gateway.applyStreamEntry(id: id, fields: fields, completion: completion)
            }
        }
        made.subscriber = subscriber
        made.streamConsumer = consumer
        return made
    }
}

extension InvalidationListeners {
    /// One channel for every key's announcement, subscribed once: the subscription is in place
    /// before any request waits on a lease, which per-key SUBSCRIBEs could not promise.
    private func makeFills(_ configuration: RedisConfiguration) -> RedisSubscriber? {
        guard let fillsChannel else { return nil }
        let gateway = self.gateway
        return RedisSubscriber(
            configuration: configuration, channel: fillsChannel, logger: logger,
            // While it was away a holder may have announced: the waiting requests read Redis again.
            onResubscribe: { gateway.remoteFills.announcementsMayBeLost() }
        ) { message in gateway.fillAnnounced(message) }
    }
}

/// The listeners' common life cycle.
private protocol StartStop {
    func start()
    func stop()
}

extension RedisSubscriber: StartStop {}
extension RedisStreamConsumer: StartStop {}
extension RedisClusterTracking: StartStop {}
