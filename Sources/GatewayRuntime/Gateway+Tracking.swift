import GatewayCore
import GatewayRedis

extension Gateway {
    /// Applies what the tracking listener heard to every loop's in-process tier. Called on the
    /// listener's thread, one event at a time, for the current listener only
    /// (``InvalidationListeners`` drops those of a replaced one); each loop gets the events in
    /// the order they came, since one thread hops them all onto its queue.
    func applyTracking(_ event: RedisTrackingEvent) {
        switch event {
        case .established:
            metrics.localTracking.set(to: 1)
            forEachTier { $0.trackingEstablished() }
        case .lost:
            metrics.localTracking.set(to: 0)
            metrics.localFlushesLost.increment()
            forEachTier { $0.trackingLost() }
        case .refused:
            metrics.localTracking.set(to: 0)
            let ttl = UInt64(max(0, runningConfig.cache.localTTLWithoutTracking.wholeMilliseconds))
            forEachTier { $0.trackingUnavailable(untrackedTTLMilliseconds: ttl) }
        case .flushed:
            metrics.localFlushesRedis.increment()
            forEachTier { $0.removeAll() }
        case .invalidated(let names):
            metrics.localInvalidations.increment(by: Int64(names.count))
            let keys = names.map { String(decoding: $0, as: UTF8.self) }
            forEachTier { tier in for key in keys { tier.invalidate(key) } }
        }
    }

    private func forEachTier(_ change: @escaping @Sendable (inout LocalCache) -> Void) {
        for resources in resources {
            resources.loop.execute { change(&resources.local) }
        }
    }
}
