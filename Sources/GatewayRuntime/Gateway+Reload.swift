import Dispatch
import Foundation
import GatewayCore
import GatewayUpstream

/// What a reload did: the settings now in effect for new requests, and those that differ from
/// the running ones but take a restart. Names are the config's (`upstream.url`, `server.max_connections`).
public struct ReloadReport: Sendable, Equatable {
    /// Always starts with `routes` (routes and cache policies are applied on every reload).
    public var applied: [String] = []
    /// Empty when everything in the new file is in effect.
    public var needsRestart: [String] = []
    /// `redis.url` changed: the invalidation listeners must follow it (``GatewayService`` does).
    public var redisURLChanged = false
}

/// Reloading the configuration (SIGHUP): routes, cache policies, Redis and upstream settings and
/// the in-process tier's sizes change for requests from now on; what the listener, the loops and
/// the key space were built from stays until a restart.
extension Gateway {
    /// Serves new requests by `new`, atomically: one policy snapshot (routes, cache policies and
    /// every loop's Redis and upstream clients) replaces the running one, so a request reads
    /// either the old one or the new one. A request in flight finishes on what it started with:
    /// replaced clients are closed once nothing is pending on them. Blocks until new Redis
    /// connections are up (at most their connect timeout), so the switch costs no misses.
    ///
    /// Reloads are serialised; must not be called on an event loop.
    ///
    /// What stays until a restart: `listen`, `server.*` but `drain_timeout` (the listener, the
    /// loops and every connection's limits were built from them), `redis.key_prefix` (every
    /// stored entry would become unreadable at once, and a prefix shared with other instances
    /// is a deployment's decision), `invalidation` (channels, stream, purge API), `admin` and
    /// `instance_id` (logs, leases and the stream group already carry the old one).
    public func reload(_ new: GatewayConfig) -> ReloadReport {
        for resource in resources { dispatchPrecondition(condition: .notOnQueue(resource.loop.queue)) }
        return reloadQueue.sync { apply(new) }
    }

    private func apply(_ new: GatewayConfig) -> ReloadReport {
        let running = policy
        let was = running.config
        var report = ReloadReport()
        report.applied.append("routes")

        var effective = new
        // Restart-only settings keep their running values.
        effective.listen = was.listen
        effective.server = was.server
        effective.server.drainTimeout = new.server.drainTimeout
        effective.redis.keyPrefix = was.redis.keyPrefix
        effective.invalidation = was.invalidation
        effective.admin = was.admin
        effective.accessLog = was.accessLog
        effective.log = was.log
        effective.instanceID = was.instanceID
        // The tracking listener and the fills subscriber were made (or not) at start.
        effective.cache.localTracking = was.cache.localTracking
        effective.cache.crossInstance = was.cache.crossInstance

        func changed<Value: Equatable>(_ field: KeyPath<GatewayConfig, Value>) -> Bool {
            was[keyPath: field] != new[keyPath: field]
        }
        let restartOnly: [(String, Bool)] = [
            ("listen", changed(\.listen)),
            ("server.event_loops", changed(\.server.eventLoops)),
            ("server.max_connections", changed(\.server.maxConnections)),
            ("server.max_requests_per_connection", changed(\.server.maxRequestsPerConnection)),
            ("server.header_timeout", changed(\.server.headerTimeout)),
            ("server.idle_timeout", changed(\.server.idleTimeout)),
            ("server.body_timeout", changed(\.server.bodyTimeout)),
            ("server.max_header_bytes", changed(\.server.maxHeaderBytes)),
            ("server.max_headers", changed(\.server.maxHeaders)),
            ("server.max_body_bytes", changed(\.server.maxBodyBytes)),
            ("redis.key_prefix", changed(\.redis.keyPrefix)),
            ("cache.local_tracking", changed(\.cache.localTracking)),
            ("cache.cross_instance", changed(\.cache.crossInstance)),
            ("invalidation", changed(\.invalidation)),
            ("admin", changed(\.admin)),
            ("pid_file", changed(\.pidFile)),
            ("instance_id", changed(\.instanceID)),
            ("access_log", changed(\.accessLog)),
            ("log", changed(\.log)),
        ]
        report.needsRestart = restartOnly.filter(\.1).map(\.0)
        // The same Sentinel set: stay on the master it named, which the file cannot say.
        if new.redis.url.sameSentinelTarget(as: was.redis.url) {
            effective.redis.url = new.redis.url.withMaster(host: was.redis.url.host, port: was.redis.url.port)
        }
        report.redisURLChanged = effective.redis.url != was.redis.url
        let localChanged = changed(\.cache.localTTL) || changed(\.cache.localMaxBytes) || changed(\.cache.localMaxEntries)
        let live: [(String, Bool)] = [
            ("server.drain_timeout", changed(\.server.drainTimeout)),
            ("upstream.url", changed(\.upstream.url)),
            ("upstream.host", changed(\.upstream.host)),
            ("upstream.connect_timeout", changed(\.upstream.connectTimeout)),
            ("upstream.timeout", changed(\.upstream.timeout)),
            ("upstream.max_connections", changed(\.upstream.maxConnections)),
            ("upstream.max_queue", changed(\.upstream.maxQueue)),
            ("redis.url", report.redisURLChanged),
            ("invalidation (follows redis.url)", report.redisURLChanged && was.invalidation != nil),
            ("redis.timeout", changed(\.redis.timeout)),
            ("redis.connections", changed(\.redis.connections)),
            ("cache.local_ttl, local_max_bytes, local_max_entries (in-process tier emptied)", localChanged),
        ]
        report.applied += live.filter(\.1).map(\.0)

        // A new pool only for new limits: the old one hands its held permits and its waiting
        // requests over, so the new cap holds across old and new clients at once.
        var permits = running.permits
        if effective.upstream.maxConnections != was.upstream.maxConnections || effective.upstream.maxQueue != was.upstream.maxQueue {
            permits = UpstreamPermits(limit: effective.upstream.maxConnections, maxQueued: effective.upstream.maxQueue)
        }
        install(effective, permits: permits, replacing: running, emptyLocal: localChanged || report.redisURLChanged) {
            metrics.routesChanged(effective.routes.map(\.name))
            metrics.reloaded(ok: true, errors: [])
            stats.reloaded()
        }
        return report
    }

    /// Moves every loop's Redis to the master a Sentinel now names, keeping the rest of the
    /// running configuration (database, password, timeouts): the reload path with only
    /// `redis.url`'s host and port changed, without counting as a reload. Returns the address it
    /// moved from, or nil when `host:port` is already the one in use. Blocks like a reload (at
    /// most the connect timeout); must not be called on an event loop.
    func moveRedis(toMaster host: String, port: Int) -> String? {
        for resource in resources { dispatchPrecondition(condition: .notOnQueue(resource.loop.queue)) }
        return reloadQueue.sync {
            let running = policy
            let url = running.config.redis.url
            guard url.host != host || url.port != port else { return nil }
            var effective = running.config
            effective.redis.url = url.withMaster(host: host, port: port)
            // Emptied: the promoted replica may lack the last writes, and purges sent to the old
            // master while switching are not heard.
            install(effective, permits: running.permits, replacing: running, emptyLocal: true) {}
            return url.address
        }
    }

    /// Builds each loop's clients for `effective` (reusing those whose settings did not change),
    /// waits for new Redis pools to connect, swaps the policy snapshot, then retires the old
    /// clients on their loops. `swapped` runs right after the swap.
    private func install(
        _ effective: GatewayConfig, permits: UpstreamPermits, replacing running: Policy, emptyLocal: Bool,
        swapped: () -> Void
    ) {
        let loops = resources.map(\.loop)
        let clients = zip(loops, running.clients).map { loop, old in
            LoopClients.make(config: effective, loop: loop, permits: permits, reusing: old, redisObserver: metrics, logger: logger)
        }
        startNewRedis(clients, replacing: running.clients)

        if permits !== running.permits { running.permits.handOver(to: permits) }
        replacePolicy(Policy(config: effective, clients: clients, permits: permits))
        swapped()

        let cache = effective.cache
        for (resource, old) in zip(resources, running.clients) {
            resource.loop.execute {
                // Entries read from the old Redis are not the new one's; purges sent to the old
                // one while switching are not heard.
                if emptyLocal {
                    // Tracking's state carries over: it belongs to the listener, not the tier.
                    resource.local = LoopResources.localCache(cache, loopCount: max(1, loops.count), coherence: resource.local.coherence)
                }
                resource.retire(old)
            }
        }
    }

    /// Connects each new Redis pool on its loop and waits, within its connect timeout, for one
    /// connection of each to be ready: a pool that is not up by then is used anyway (its requests
    /// are misses served from upstream while it keeps reconnecting).
    private func startNewRedis(_ clients: [LoopClients], replacing old: [LoopClients]) {
        let fresh = zip(zip(resources, clients), old).compactMap { pair, old in
            pair.1.redis !== old.redis ? (pair.0.loop.queue, pair.1.redis) : nil
        }
        guard let timeout = fresh.first?.1.connectTimeout else { return }
        for (queue, pool) in fresh { queue.sync { pool.start() } }
        let deadline = DispatchTime.now() + .nanoseconds(Int(clamping: timeout.wholeMilliseconds * 1_000_000))
        // Bounded by the deadline: 10 ms steps for at most the connect timeout.
        while DispatchTime.now() < deadline, !fresh.allSatisfy({ queue, pool in queue.sync { pool.isConnected } }) {
            usleep(10_000)
        }
    }
}
