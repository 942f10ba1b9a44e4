import Foundation
import GatewayCore
import GatewayRedis
import Logging
import Synchronization

/// The invalidation subscriber and stream consumer of the running config: made from
/// `invalidation` and `redis.url`, started and stopped together, and made again against a new
/// `redis.url` by a reload (the new ones start before the old ones stop, so no moment listens
/// to neither). Readable from any thread; ``replace(redis:)`` and ``stop()`` run one at a time.
final class InvalidationListeners: Sendable {
    private struct Current {
        var subscriber: RedisSubscriber?
        var streamConsumer: RedisStreamConsumer?
        /// The other instances' fill announcements (`cache.cross_instance`).
        var fills: RedisSubscriber?
        var started = false
        var stopped = false
    }

    private let invalidation: GatewayConfig.Invalidation?
    /// The stream's consumer (and group) name: ``GatewayConfig/streamConsumerName``.
    private let consumerName: String
    /// The `<prefix>fills` channel, when `cache.cross_instance` was on at start.
    private let fillsChannel: String?
    private let gateway: Gateway
    private let logger: Logger
    private let current: Mutex<Current>

    init(invalidation: GatewayConfig.Invalidation?, consumerName: String, redis: GatewayConfig.Redis, fillsChannel: String? = nil,
         gateway: Gateway, logger: Logger) {
        self.invalidation = invalidation
        self.consumerName = consumerName
        self.fillsChannel = fillsChannel
        self.gateway = gateway
        self.logger = logger
        current = Mutex(Current())
        let (subscriber, consumer) = make(redis)
        let fills = makeFills(redis)
        current.withLock { $0.subscriber = subscriber; $0.streamConsumer = consumer; $0.fills = fills }
    }

    var subscriber: RedisSubscriber? { current.withLock { $0.subscriber } }
    var streamConsumer: RedisStreamConsumer? { current.withLock { $0.streamConsumer } }
    var fills: RedisSubscriber? { current.withLock { $0.fills } }

    func start() {
        let (subscriber, consumer, fills) = current.withLock { c in
            c.started = true
            return (c.subscriber, c.streamConsumer, c.fills)
        }
        subscriber?.start()
        consumer?.start()
        fills?.start()
    }

    /// Stops them for good: a later ``replace(redis:)`` does nothing.
    func stop() {
        let (subscriber, consumer, fills) = current.withLock { c in
            c.stopped = true
            return (c.subscriber, c.streamConsumer, c.fills)
        }
        subscriber?.stop()
        consumer?.stop()
        fills?.stop()
    }

    /// Listens on `redis` instead (a reload changed `redis.url`).
    func replace(redis: GatewayConfig.Redis) {
        guard invalidation?.channel != nil || invalidation?.stream != nil || fillsChannel != nil else { return }
        let (subscriber, consumer) = make(redis)
        let fills = makeFills(redis)
        // Started outside the lock (start spawns a thread); a stop in between wins.
        subscriber?.start()
        consumer?.start()
        fills?.start()
        let old: (RedisSubscriber?, RedisStreamConsumer?, RedisSubscriber?)? = current.withLock { c in
            guard c.started, !c.stopped else { return nil }
            defer { c.subscriber = subscriber; c.streamConsumer = consumer; c.fills = fills }
            return (c.subscriber, c.streamConsumer, c.fills)
        }
        guard let old else {
            subscriber?.stop()
            consumer?.stop()
            fills?.stop()
            return
        }
        old.0?.stop()
        old.1?.stop()
        old.2?.stop()
        logger.info("invalidation listeners moved to the new redis.url", metadata: ["redis": "\(redis.url)"])
    }

    /// One channel for every key's announcement, subscribed once: the subscription is in place
    /// before any request waits on a lease, which per-key SUBSCRIBEs could not promise.
    private func makeFills(_ redis: GatewayConfig.Redis) -> RedisSubscriber? {
        guard let fillsChannel else { return nil }
        let gateway = self.gateway
        return RedisSubscriber(
            configuration: RedisConfiguration(redis.url, connectTimeout: max(redis.timeout, .milliseconds(500))),
            channel: fillsChannel, logger: logger,
            // While it was away a holder may have announced: the waiting requests read Redis again.
            onResubscribe: { gateway.remoteFills.announcementsMayBeLost() }
        ) { message in gateway.fillAnnounced(message) }
    }

    private func make(_ redis: GatewayConfig.Redis) -> (RedisSubscriber?, RedisStreamConsumer?) {
        let configuration = RedisConfiguration(redis.url, connectTimeout: max(redis.timeout, .milliseconds(500)))
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
        return (subscriber, consumer)
    }
}
