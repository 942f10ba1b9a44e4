import GatewayCore

/// Reloading the configuration (SIGHUP): routes and cache policies change for requests from now
/// on; what the running connections, loops and key space were built from stays until a restart.
extension Gateway {
    /// Serves new requests by `new`'s routes, cache defaults and `upstream.host`, atomically (a
    /// request in flight finishes with the policy it started with).
    ///
    /// - Returns: The settings that differ from the running ones but take a restart (listen
    ///   address, server limits, event loops, Redis, the upstream's URL and limits, invalidation,
    ///   the in-process tier's sizes): empty when everything in `new` is in effect.
    public func reload(_ new: GatewayConfig) -> [String] {
        let running = config
        var restart: [String] = []
        if new.listen != running.listen { restart.append("listen") }
        if new.server != running.server { restart.append("server") }
        if new.redis != running.redis { restart.append("redis") }
        if new.invalidation != running.invalidation { restart.append("invalidation") }
        if new.accessLog != running.accessLog { restart.append("access_log") }
        if new.log != running.log { restart.append("log") }
        var upstream = new.upstream
        upstream.host = running.upstream.host
        if upstream != running.upstream { restart.append("upstream (all but host)") }
        if new.cache.localTTL != running.cache.localTTL || new.cache.localMaxBytes != running.cache.localMaxBytes
            || new.cache.localMaxEntries != running.cache.localMaxEntries
        {
            restart.append("cache.local_ttl, local_max_bytes, local_max_entries")
        }
        // What takes effect: the new routes and policies on the running infrastructure.
        var effective = running
        effective.routes = new.routes
        effective.cache = new.cache
        effective.cache.localTTL = running.cache.localTTL
        effective.cache.localMaxBytes = running.cache.localMaxBytes
        effective.cache.localMaxEntries = running.cache.localMaxEntries
        effective.upstream.host = new.upstream.host
        effective.fileName = new.fileName
        let policy = Policy(config: effective)
        replacePolicy(policy)
        stats.reloaded()
        return restart
    }
}
