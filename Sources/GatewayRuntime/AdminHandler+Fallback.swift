import Foundation
import GatewayCore
import GatewayHTTP

extension AdminHandler {
    /// `/metrics` and `/stats` from the counters the gateway has always kept, in the shapes the
    /// metrics will serve: the stats JSON has the full schema, with `routes` empty and the values
    /// only the metrics know (upstream queue, local tier, last reload) null.
    ///
    /// Must be called off the public event loops: the Redis state is read on each loop's queue.
    public static func fallbackSources(gateway: Gateway, openConnections: @escaping @Sendable () -> Int,
                                       startedAt: UInt64) -> AdminSources {
        AdminSources(
            metricsText: {
                let s = gateway.stats.snapshot
                let counters: [(String, Int, String)] = [
                    ("hits", s.hits, "Answers from the cache"), ("misses", s.misses, "Cache misses fetched upstream"),
                    ("collapsed", s.collapsed, "Requests that waited for another's fill"),
                    ("bypassed", s.bypassed, "Cached-route requests that bypassed the cache"),
                    ("redis_errors", s.redisErrors, "Redis commands that failed or timed out"),
                    ("upstream_errors", s.upstreamErrors, "Upstream requests that failed"),
                    ("purged", s.purged, "Entries purged"), ("store_errors", s.storeErrors, "Failed cache writes"),
                    ("stale", s.stale, "Answers with a stale entry"), ("refreshes", s.refreshes, "Background refreshes"),
                    ("revalidated", s.revalidated, "Conditional fetches answered 304"),
                    ("poison_events", s.poisonEvents, "Invalidation messages that are not events"),
                    ("reloads", s.reloads, "Configuration reloads"),
                ]
                var text = ""
                for (name, value, help) in counters {
                    text += "# HELP cachegateway_\(name)_total \(help).\n# TYPE cachegateway_\(name)_total counter\n"
                    text += "cachegateway_\(name)_total \(value)\n"
                }
                text += "# HELP cachegateway_in_flight_keys Keys being fetched.\n# TYPE cachegateway_in_flight_keys gauge\n"
                text += "cachegateway_in_flight_keys \(gateway.inFlightKeyCount)\n"
                text += "# HELP cachegateway_open_connections Open client connections.\n# TYPE cachegateway_open_connections gauge\n"
                text += "cachegateway_open_connections \(openConnections())\n"
                return text
            },
            statsJSON: {
                let s = gateway.stats.snapshot
                let now = WallClock.nowMilliseconds()
                let connected = gateway.resources.filter { r in r.loop.queue.sync { r.redisConnected } }.count
                var object: [String: Any] = [
                    "version": GatewayService.version,
                    "uptime_seconds": Double(now &- startedAt) / 1000,
                    "time_ms": now,
                    "totals": [
                        "hits": s.hits, "misses": s.misses, "collapsed": s.collapsed, "bypassed": s.bypassed,
                        "redis_errors": s.redisErrors, "upstream_errors": s.upstreamErrors, "purged": s.purged,
                        "store_errors": s.storeErrors, "stale": s.stale, "refreshes": s.refreshes,
                        "revalidated": s.revalidated, "poison_events": s.poisonEvents, "reloads": s.reloads,
                    ],
                    "routes": [Any](),
                    "in_flight_keys": gateway.inFlightKeyCount,
                    "uncacheable_keys": gateway.uncacheable.count,
                    "open_connections": openConnections(),
                    "upstream": ["in_flight": NSNull(), "queued": NSNull(), "max_connections": gateway.config.upstream.maxConnections],
                    "redis": ["loops": gateway.resources.count, "connected_loops": connected, "errors": s.redisErrors],
                    "local_tier": NSNull(),
                    "stream": NSNull(),
                    "last_reload": NSNull(),
                ]
                if let stream = gateway.streamSnapshot() {
                    object["stream"] = [
                        "applied": stream.applied, "poison": stream.poison, "retried": stream.retried,
                        "claimed": stream.claimed, "lag": stream.lag ?? NSNull(), "connected": stream.isConnected,
                    ] as [String: Any]
                }
                let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
                return String(decoding: data, as: UTF8.self) + "\n"
            })
    }
}
