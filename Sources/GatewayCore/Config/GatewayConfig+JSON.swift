import Foundation

extension GatewayConfig {
    /// What an operator reads on the admin port's `/config`.
    public static let redactedMarker = "<redacted>"

    /// The configuration as JSON, in the file's own key names, every value resolved (defaults
    /// filled in, routes carrying their cache settings). The Redis password and the purge token
    /// read `"<redacted>"`: the admin port has no authentication, and a pasted `/config` must not
    /// leak a credential. The name of `token_env` stays (it names a variable, not a secret).
    public func redactedJSON() -> String {
        let object: [String: Any] = [
            "file": fileName,
            "instance_id": instanceID.value,
            "listen": listen.description,
            "server": [
                "event_loops": server.eventLoops, "max_connections": server.maxConnections,
                "max_requests_per_connection": server.maxRequestsPerConnection,
                "header_timeout": server.headerTimeout.configString, "idle_timeout": server.idleTimeout.configString,
                "body_timeout": server.bodyTimeout.configString, "drain_timeout": server.drainTimeout.configString,
                "max_header_bytes": server.maxHeaderBytes, "max_headers": server.maxHeaders,
                "max_body_bytes": server.maxBodyBytes,
            ],
            "upstream": [
                "url": upstream.url.description, "connect_timeout": upstream.connectTimeout.configString,
                "timeout": upstream.timeout.configString, "max_connections": upstream.maxConnections,
                "max_queue": upstream.maxQueue, "host": upstream.host,
            ],
            "redis": redactedRedis,
            "cache": [
                "max_body_size": cache.maxBodySize, "max_wait": cache.maxWait.configString, "key_host": cache.keyHost,
                "local_ttl": cache.localTTL.configString, "local_tracking": cache.localTracking, "local_max_bytes": cache.localMaxBytes,
                "local_max_entries": cache.localMaxEntries, "forward_headers": cache.forwardHeaders,
                "vary_headers": cache.varyHeaders, "max_variants": cache.maxVariants,
                "cross_instance": cache.crossInstance,
            ].merging(cache.freshness.jsonFields) { a, _ in a },
            "invalidation": invalidation.map(Self.json(_:)) ?? NSNull(),
            "admin": admin.map { ["listen": $0.listen.description, "public_health": $0.publicHealth] as [String: Any] } ?? NSNull(),
            "routes": routes.map(\.jsonObject),
        ]
        // Sorted keys: the same config always reads the same, and two instances diff cleanly.
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private var redactedRedis: [String: Any] {
        var url = redis.url
        let hadPassword = url.password != nil
        let hadSentinelPassword = url.sentinel?.password != nil
        url.password = nil
        url.username = nil
        url.sentinel?.password = nil
        var fields: [String: Any] = [
            "url": url.description, "timeout": redis.timeout.configString, "key_prefix": redis.keyPrefix,
            "connections": redis.connections,
        ]
        if hadPassword { fields["password"] = Self.redactedMarker }
        if hadSentinelPassword { fields["sentinel_password"] = Self.redactedMarker }
        if let username = redis.url.username { fields["username"] = username }
        return fields
    }

    private static func json(_ invalidation: Invalidation) -> [String: Any] {
        var fields: [String: Any] = [
            "channel": invalidation.channel ?? NSNull(), "stream": invalidation.stream ?? NSNull(),
            "instance": invalidation.instance ?? NSNull(),
        ]
        if let api = invalidation.purgeAPI {
            fields["purge_api"] = [
                "token": api.token == nil ? NSNull() : redactedMarker, "token_env": api.tokenEnvironmentVariable ?? NSNull(),
                "allow": api.allow, "public": api.onPublicPort,
            ] as [String: Any]
        } else {
            fields["purge_api"] = NSNull()
        }
        return fields
    }
}

extension FreshnessSettings {
    fileprivate var jsonFields: [String: Any] {
        [
            "stale_while_revalidate": staleWhileRevalidate.configString, "stale_if_error": staleIfError.configString,
            "stale_if_error_statuses": staleIfErrorStatuses.sorted(), "keep": keep.configString,
            "uncacheable_ttl": uncacheableTTL.configString, "max_waiters": maxWaiters, "on_store_error": onStoreError.rawValue,
        ]
    }
}

extension Route {
    fileprivate var jsonObject: [String: Any] {
        var fields: [String: Any] = [
            "name": name, "match": pattern.source, "methods": methods.description, "class": routeClass.rawValue, "line": line,
        ]
        guard let cache else { return fields }
        switch cache.mode {
        case .forcedTTL:
            fields["ttl"] = cache.ttl.configString
        case .origin(let origin):
            fields["ttl"] = "origin"
            fields["max_ttl"] = cache.ttl.configString
            fields["heuristic"] = origin.heuristic
            fields["origin_statuses"] = origin.statuses.sorted()
        }
        fields["ttl_by_status"] = Dictionary(uniqueKeysWithValues: cache.ttlByStatus.map { (String($0.key), $0.value.configString) })
        fields["query"] = cache.query
        fields["unlisted_query"] = cache.unlistedQuery.rawValue
        fields["allow_authorized"] = cache.allowAuthorized
        switch cache.identity {
        case .header(let header)?: fields["identity"] = ["header": header]
        case .cookie(let cookie)?: fields["identity"] = ["cookie": cookie]
        case nil: break
        }
        fields["max_body_size"] = cache.maxBodySize
        fields["max_wait"] = cache.maxWait.configString
        fields["key_host"] = cache.keyHost
        fields["forward_headers"] = cache.forwardHeaders.sorted()
        fields["vary_headers"] = cache.varyHeaders.sorted()
        fields["max_variants"] = cache.maxVariants
        fields["tags"] = cache.tags
        fields["tags_header"] = cache.tagsHeader ?? NSNull()
        fields["expose_tags_header"] = cache.exposeTagsHeader
        return fields.merging(cache.freshness.jsonFields) { a, _ in a }
    }
}
