extension GatewayConfig {
    /// A one-screen description for `gateway check-config`: addresses, limits, then the route
    /// table in match order. The Redis password is masked.
    public func summary() -> String {
        var lines: [String] = []
        lines.append("listen    \(listen) (\(server.eventLoops) event loop\(server.eventLoops == 1 ? "" : "s"), "
            + "at most \(server.maxConnections) connections)")
        lines.append("limits    head \(ByteSize.format(server.maxHeaderBytes)) in \(server.headerTimeout.configString), "
            + "\(server.maxHeaders) headers, body \(ByteSize.format(server.maxBodyBytes)); "
            + "idle \(server.idleTimeout.configString), drain \(server.drainTimeout.configString)")
        lines.append("upstream  \(upstream.url) (timeout \(upstream.timeout.configString), "
            + "connect \(upstream.connectTimeout.configString), \(upstream.maxConnections) connections, "
            + "queue \(upstream.maxQueue), Host \(upstream.host) on fills)")
        lines.append("redis     \(redis.url) (timeout \(redis.timeout.configString), "
            + "key prefix \"\(redis.keyPrefix)\", \(redis.connections) per loop)")
        lines.append("cache     store bodies up to \(ByteSize.format(cache.maxBodySize)), waiters wait up to "
            + "\(cache.maxWait.configString), Host \(cache.keyHost ? "in" : "not in") keys, fills forward "
            + (cache.forwardHeaders.isEmpty ? "no client headers" : cache.forwardHeaders.joined(separator: ",")) + " (defaults)")
        let f = cache.freshness
        lines.append("stale     " + (f.staleWhileRevalidate > .zero ? "served \(f.staleWhileRevalidate.configString) while refreshing" : "not served while refreshing")
            + ", " + (f.staleIfError > .zero ? "\(f.staleIfError.configString) on upstream errors" : "not on upstream errors")
            + (f.keep > .zero ? ", kept \(f.keep.configString) to revalidate" : "")
            + "; uncacheable keys remembered \(f.uncacheableTTL.configString); \(f.maxWaiters) waiters per key; Redis down: \(f.onStoreError.rawValue) (defaults)")
        lines.append("local     " + (cache.localTTL > .zero
            ? "in-process tier: \(cache.localTTL.configString), \(ByteSize.format(cache.localMaxBytes)), \(cache.localMaxEntries) entries"
                + (cache.localTracking
                    ? "; coherent through Redis tracking (without it: " + (cache.localTTLWithoutTracking > .zero ? cache.localTTLWithoutTracking.configString + ")" : "off)")
                    : "; not tracked (a change in Redis is seen after up to local_ttl)")
            : "no in-process tier (every hit is read from Redis)"))
        lines.append("coalesce  " + (cache.crossInstance
            ? "across instances: a lease in Redis per cold key, for \(upstream.timeout.configString) + 1s; fills announced on \(redis.keyPrefix)fills"
            : "per instance (cross_instance off)"))
        if let invalidation {
            var sources: [String] = []
            if let stream = invalidation.stream { sources.append("Redis stream \"\(stream)\" (group per instance)") }
            if let channel = invalidation.channel { sources.append("Redis channel \"\(channel)\"") }
            lines.append("purges    " + sources.joined(separator: " and ") + " (JSON events, purge <path>, purge-route <name>)"
                + (invalidation.purgeAPI != nil ? "; PURGE over HTTP" : ""))
        }
        if let admin {
            lines.append("admin     \(admin.listen): /metrics /stats /config /readyz /healthz, the status page"
                + (invalidation?.purgeAPI != nil ? " and POST /purge" : "")
                + "; public port " + (admin.publicHealth ? "keeps /healthz and /readyz" : "answers no admin paths"))
        }
        lines.append("")
        lines.append("routes (first match wins):")

        let header = ["NAME", "METHODS", "PATTERN", "CLASS", "TTL", "QUERY KEY", "IDENTITY"]
        let rows = routes.map { route -> [String] in
            let cache = route.cache
            var ttl = cache.map { $0.ttl.configString } ?? "-"
            if case .origin(let origin)? = cache?.mode {
                ttl = "origin (max \(cache!.ttl.configString)\(origin.heuristic ? ", heuristic" : ""))"
                let extra = origin.statuses.subtracting([200]).sorted()
                if !extra.isEmpty { ttl += " (also " + extra.map(String.init).joined(separator: ", ") + ")" }
            }
            if let extra = cache?.ttlByStatus, !extra.isEmpty {
                let statuses = extra.keys.sorted().map { "\($0): \(extra[$0]!.configString)" }
                ttl += " (" + statuses.joined(separator: ", ") + ")"
            }
            var query = cache.map { $0.query.isEmpty ? "-" : $0.query.joined(separator: ",") } ?? "-"
            if cache?.unlistedQuery == .bypass { query += " (others bypass)" }
            return [
                route.name, route.methods.description, route.pattern.source, route.routeClass.rawValue,
                ttl, query, cache?.identity?.description ?? "-",
            ]
        }
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        for row in [header] + rows {
            let cells = row.enumerated().map { column, text in
                column == row.count - 1 ? text : text + String(repeating: " ", count: widths[column] - text.count)
            }
            lines.append("  " + cells.joined(separator: "  "))
        }
        return lines.joined(separator: "\n")
    }
}
