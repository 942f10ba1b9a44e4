import Foundation
import XCTest
@testable import GatewayCore

/// A valid configuration of exactly 10 lines: lines appended to it start at line 11 (shared by
/// the config test files of this target).
let base = """
    listen: 127.0.0.1:8080
    upstream:
      url: http://127.0.0.1:9000
    redis:
      url: redis://127.0.0.1:6379/0
    routes:
      - name: catalog
        match: /catalog/**
        class: public
        ttl: 5m

    """

/// The diagnostics for a configuration that must fail to load, one per line (shared by the
/// config test files of this target).
func diagnostics(_ yaml: String, environment: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        let config = try GatewayConfig.parse(yaml: yaml, fileName: "gateway.yaml", environment: environment)
        XCTFail("expected errors, loaded \(config.routes.count) routes", file: file, line: line)
        return ""
    } catch {
        return error.description
    }
}

final class ConfigTests: XCTestCase {
    func testInvalidationSection() throws {
        let config = try GatewayConfig.parse(yaml: base + "invalidation: { channel: monolith.events }\n", fileName: "gateway.yaml")
        XCTAssertEqual(config.invalidation, GatewayConfig.Invalidation(channel: "monolith.events"))
        XCTAssertNil(try GatewayConfig.parse(yaml: base, fileName: "gateway.yaml").invalidation)
        XCTAssertEqual(diagnostics(base + "invalidation: { chanel: x }\n"), """
            gateway.yaml:11:15: error: invalidation: set "stream" (a Redis stream, no event lost) or "channel" (Redis pub/sub) for the backend's purges
            gateway.yaml:11:17: error: invalidation: unknown key "chanel" (did you mean "channel"?)
            """)
        let streamed = try GatewayConfig.parse(yaml: base + "invalidation: { stream: monolith.events, instance: gw-1 }\n", fileName: "gateway.yaml")
        XCTAssertEqual(streamed.invalidation, GatewayConfig.Invalidation(stream: "monolith.events", instance: "gw-1"))
    }

    // MARK: - Valid files

    func testExampleFileAtRepositoryRootLoads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let config = try GatewayConfig.load(path: root.appendingPathComponent("gateway.yaml").path)

        XCTAssertEqual(config.listen, GatewayConfig.ListenAddress(host: "127.0.0.1", port: 8080))
        XCTAssertEqual(config.server, GatewayConfig.Server())
        XCTAssertEqual(config.upstream, GatewayConfig.Upstream(url: GatewayConfig.UpstreamURL(host: "127.0.0.1", port: 9000)))
        XCTAssertEqual(config.redis.url, GatewayConfig.RedisURL(host: "127.0.0.1", port: 6379, database: 0))
        XCTAssertEqual(config.redis.timeout, .milliseconds(50))
        XCTAssertEqual(config.redis.keyPrefix, "gw:")
        XCTAssertEqual(config.cache, GatewayConfig.Cache(maxBodySize: 1 << 20, maxWait: .seconds(5), keyHost: false))
        XCTAssertEqual(config.routes.map(\.name), ["catalog", "user-resources", "everything-else"])

        let catalog = config.routes[0]
        XCTAssertEqual(catalog.pattern.source, "/catalog/**")
        XCTAssertEqual(catalog.methods, [.get, .head])
        XCTAssertEqual(catalog.routeClass, .public)
        XCTAssertEqual(catalog.cache, RouteCacheSettings(
            ttl: .seconds(300), ttlByStatus: [404: .seconds(30)], query: ["page", "sort"], unlistedQuery: .strip,
            allowAuthorized: false, identity: nil, maxBodySize: 1 << 20, maxWait: .seconds(5), keyHost: false,
            freshness: FreshnessSettings(staleWhileRevalidate: .seconds(30), staleIfError: .seconds(600))))
        XCTAssertEqual(catalog.cache?.ttl(forStatus: 200), .seconds(300))
        XCTAssertEqual(catalog.cache?.ttl(forStatus: 404), .seconds(30))
        XCTAssertNil(catalog.cache?.ttl(forStatus: 500))

        let user = config.routes[1]
        XCTAssertEqual(user.routeClass, .perUser)
        XCTAssertEqual(user.methods, .cacheable)
        XCTAssertEqual(user.cache?.identity, .header("Authorization"))
        XCTAssertEqual(user.cache?.ttl, .seconds(30))
        XCTAssertEqual(user.pattern.captureNames, ["user"])

        let rest = config.routes[2]
        XCTAssertEqual(rest.routeClass, .pass)
        XCTAssertEqual(rest.methods, .passDefault)
        XCTAssertFalse(rest.methods.contains(.trace), "TRACE echoes credentials: only an explicit list allows it")
        XCTAssertNil(rest.cache)
        XCTAssertTrue(config.fileName.hasSuffix("gateway.yaml"))
    }

    func testMinimalFileGetsDefaultsAndRoutesInheritCacheDefaults() throws {
        let config = try GatewayConfig.parse(yaml: base + """
            cache:
              max_body_size: 64KiB
              max_wait: 2s
              key_host: true
            server:
            """, fileName: "gateway.yaml")
        XCTAssertEqual(config.server, GatewayConfig.Server(), "an empty server: section means all defaults")
        XCTAssertEqual(config.upstream.timeout, .seconds(10))
        XCTAssertEqual(config.upstream.maxQueue, 1024)
        let settings = try XCTUnwrap(config.routes[0].cache)
        XCTAssertEqual(settings.maxBodySize, 64 << 10)
        XCTAssertEqual(settings.maxWait, .seconds(2))
        XCTAssertTrue(settings.keyHost)
        XCTAssertEqual(settings.unlistedQuery, .strip)
        XCTAssertEqual(settings.query, [])
    }

    func testEveryOptionIsRead() throws {
        let config = try GatewayConfig.parse(yaml: """
            listen: "[::1]:0"
            server:
              event_loops: 1
              max_connections: 5
              max_requests_per_connection: 7
              header_timeout: 2s
              idle_timeout: 3m
              body_timeout: 4s
              drain_timeout: 0s
              max_header_bytes: 8KiB
              max_headers: 20
              max_body_bytes: 0
            upstream:
              url: http://backend.internal:8081/api/
              connect_timeout: 250ms
              timeout: 1h
              max_connections: 8
              max_queue: 0
            redis:
              url: redis://app:p%40ss@[::1]:6380/3
              timeout: 20ms
              key_prefix: ""
              connections: 2
            routes:
              - name: search
                match: /search
                methods: [GET]
                class: public
                ttl: 10s
                ttl_by_status: { 404: 1s, "410": 2m }
                query: [sort, q]
                unlisted_query: bypass
                allow_authorized: true
                max_body_size: 2MiB
                max_wait: 100ms
                key_host: true
              - name: me
                match: /me
                class: per_user
                identity: { cookie: session_id }
                ttl: 1s
              - name: writes
                match: /**
                methods: [POST, PUT]
                class: pass
            """, fileName: "gateway.yaml")
        XCTAssertEqual(config.listen, GatewayConfig.ListenAddress(host: "::1", port: 0))
        XCTAssertEqual(config.server, GatewayConfig.Server(
            eventLoops: 1, maxConnections: 5, maxRequestsPerConnection: 7, headerTimeout: .seconds(2),
            idleTimeout: .seconds(180), bodyTimeout: .seconds(4), drainTimeout: .zero, maxHeaderBytes: 8192,
            maxHeaders: 20, maxBodyBytes: 0))
        XCTAssertEqual(config.upstream, GatewayConfig.Upstream(
            url: GatewayConfig.UpstreamURL(host: "backend.internal", port: 8081, basePath: "/api"),
            connectTimeout: .milliseconds(250), timeout: .seconds(3600), maxConnections: 8, maxQueue: 0))
        XCTAssertEqual(config.redis, GatewayConfig.Redis(
            url: GatewayConfig.RedisURL(host: "::1", port: 6380, username: "app", password: "p@ss", database: 3),
            timeout: .milliseconds(20), keyPrefix: "", connections: 2))
        XCTAssertEqual(config.routes[0].methods, .get)
        XCTAssertEqual(config.routes[0].cache, RouteCacheSettings(
            ttl: .seconds(10), ttlByStatus: [404: .seconds(1), 410: .seconds(120)], query: ["q", "sort"],
            unlistedQuery: .bypass, allowAuthorized: true, identity: nil, maxBodySize: 2 << 20,
            maxWait: .milliseconds(100), keyHost: true))
        XCTAssertEqual(config.routes[1].cache?.identity, .cookie("session_id"))
        XCTAssertEqual(config.routes[2].methods, [.post, .put])
        XCTAssertEqual(config.routes.map(\.line), [25, 37, 42])
    }

    func testCrossInstanceCoalescing() throws {
        let config = try GatewayConfig.parse(yaml: base, fileName: "gateway.yaml")
        XCTAssertTrue(config.cache.crossInstance, "on by default: N instances make one backend call per cold key")
        XCTAssertFalse(try GatewayConfig.parse(yaml: base + """
            cache: { cross_instance: false }
            """, fileName: "gateway.yaml").cache.crossInstance)
        XCTAssertTrue(config.summary().contains("coalesce  across instances: a lease in Redis per cold key, for 10s + 1s; fills announced on gw:fills"),
                      config.summary())
        XCTAssertEqual(diagnostics(base + """
            cache: { cross_instance: sometimes }
            """), """
            gateway.yaml:11:26: error: cache.cross_instance: expected true or false, found "sometimes"
            """)
    }

    /// On by default, with a long cap, only while tracking keeps it coherent; a TTL-only tier
    /// only when the file asks for one.
    func testLocalTierDefaultsFollowTracking() throws {
        func cache(_ yaml: String) throws -> GatewayConfig.Cache {
            try GatewayConfig.parse(yaml: base + yaml, fileName: "gateway.yaml").cache
        }
        let byDefault = try cache("")
        XCTAssertEqual([byDefault.localTTL, byDefault.localTTLWithoutTracking], [.seconds(300), .zero])
        XCTAssertTrue(byDefault.localTracking)
        XCTAssertTrue(byDefault.tracksLocalTier)
        let given = try cache("cache: { local_ttl: 2s }")
        XCTAssertEqual([given.localTTL, given.localTTLWithoutTracking], [.seconds(2), .seconds(2)])
        let untracked = try cache("cache: { local_tracking: false }")
        XCTAssertEqual([untracked.localTTL, untracked.localTTLWithoutTracking], [.zero, .zero], "TTL-only stays opt-in")
        XCTAssertFalse(untracked.tracksLocalTier)
        let off = try cache("cache: { local_ttl: 0s }")
        XCTAssertFalse(off.tracksLocalTier, "no tier, no tracking connection")
        XCTAssertEqual(diagnostics(base + """
            cache: { local_tracking: sometimes }
            """), """
            gateway.yaml:11:26: error: cache.local_tracking: expected true or false, found "sometimes"
            """)
    }

    func testLocalTierLimits() throws {
        let config = try GatewayConfig.parse(yaml: base + """
            cache: { local_ttl: 100ms, local_max_bytes: 1MiB, local_max_entries: 500 }
            """, fileName: "gateway.yaml")
        XCTAssertEqual(config.cache.localMaxEntries, 500)
        XCTAssertEqual(try GatewayConfig.parse(yaml: base, fileName: "gateway.yaml").cache.localMaxEntries, 10_000)
        XCTAssertTrue(config.summary().contains("local     in-process tier: 100ms, 1MiB, 500 entries"), config.summary())
        XCTAssertEqual(diagnostics(base + """
            cache: { local_max_entries: -1 }
            """), """
            gateway.yaml:11:29: error: cache.local_max_entries: must be between 0 and 10000000, got -1
            """)
    }

    func testSummary() throws {
        let config = try GatewayConfig.parse(yaml: """
            listen: 0.0.0.0:8080
            upstream: { url: "http://10.0.0.5:9000/api" }
            redis: { url: "redis://:hunter2@127.0.0.1/1" }
            routes:
              - { name: catalog, match: "/catalog/**", class: public, ttl: 5m, ttl_by_status: { 404: 30s }, query: [sort, page] }
              - { name: me, match: "/users/{user}", class: per_user, ttl: 90s, identity: { cookie: sid }, unlisted_query: bypass }
              - { name: rest, match: "/**", class: pass }
            """, fileName: "gateway.yaml")
        XCTAssertEqual(config.summary(), """
            listen    0.0.0.0:8080 (2 event loops, at most 10000 connections)
            limits    head 16KiB in 10s, 100 headers, body 8MiB; idle 1m, drain 10s
            upstream  http://10.0.0.5:9000/api (timeout 10s, connect 1s, 64 connections, queue 1024, Host 10.0.0.5:9000 on fills)
            redis     redis://:***@127.0.0.1:6379/1 (timeout 50ms, key prefix "gw:", 1 per loop)
            cache     store bodies up to 1MiB, waiters wait up to 5s, Host not in keys, fills forward no client headers (defaults)
            stale     not served while refreshing, not on upstream errors; uncacheable keys remembered 30s; 10000 waiters per key; Redis down: origin (defaults)
            local     in-process tier: 5m, 64MiB, 10000 entries; coherent through Redis tracking (without it: off)
            coalesce  across instances: a lease in Redis per cold key, for 10s + 1s; fills announced on gw:fills

            routes (first match wins):
              NAME     METHODS      PATTERN        CLASS     TTL            QUERY KEY          IDENTITY
              catalog  GET,HEAD     /catalog/**    public    5m (404: 30s)  page,sort          -
              me       GET,HEAD     /users/{user}  per_user  90s            - (others bypass)  cookie sid
              rest     * but TRACE  /**            pass      -              -                  -
            """)
        XCTAssertFalse(config.summary().contains("hunter2"))
    }

    // MARK: - Golden diagnostics

    func testYAMLSyntaxErrorsArePositioned() {
        XCTAssertEqual(diagnostics("""
            listen: 127.0.0.1:8080
            routes:
              - name: a
               match: b
            """), """
            gateway.yaml:4:4: error: invalid YAML: did not find expected '-' indicator (while parsing a block collection at line 3, column 3)
            """)
        XCTAssertEqual(diagnostics(base + "    methods: [GET, HEAD\n"), """
            gateway.yaml:12:1: error: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 11, column 14)
            """)
        XCTAssertEqual(diagnostics(base + "---\nlisten: 1\n"), """
            gateway.yaml:11:1: error: invalid YAML: expected a single document, found a second one
            """)
    }

    func testDuplicateYAMLKey() {
        XCTAssertEqual(diagnostics(base + "    ttl: 1m\n"), """
            gateway.yaml:10:5: error: duplicate key "ttl" in the same mapping
            """)
    }

    func testEmptyFileAndWrongDocumentShape() {
        XCTAssertEqual(diagnostics("# only a comment\n"), """
            gateway.yaml: error: the file is empty; expected listen, upstream, redis and routes
            """)
        XCTAssertEqual(diagnostics("- listen\n"), """
            gateway.yaml:1:1: error: expected a mapping with listen, upstream, redis and routes, found a list
            """)
    }

    func testWrongTypes() {
        XCTAssertEqual(diagnostics(base + """
              - name: [x]
                match: /b
                methods: GET
                class: pass
            server: fast
            cache:
              key_host: 1
            """), """
            gateway.yaml:11:11: error: routes[1].name: expected a string, found a list
            gateway.yaml:13:14: error: routes[1].methods: expected a list, found "GET"
            gateway.yaml:15:9: error: server: expected a mapping, found "fast"
            gateway.yaml:17:13: error: cache.key_host: expected true or false, found "1"
            """)
        XCTAssertEqual(diagnostics("""
            listen: a:1
            upstream: { url: "http://a" }
            redis: { url: "redis://a" }
            routes:
              - catalog
            """), """
            gateway.yaml:5:5: error: routes[0]: expected a mapping, found "catalog"
            """)
    }

    func testUnknownKeysSuggestTheClosestKnownKey() {
        XCTAssertEqual(diagnostics(base + """
                tll: 5m
            listn: x
            redis_url: redis://a
            server:
              idle_timeout: 5s
              max-connections: 4
            """), """
            gateway.yaml:11:5: error: routes[0]: unknown key "tll" (did you mean "ttl"?)
            gateway.yaml:12:1: error: unknown key "listn" (did you mean "listen"?)
            gateway.yaml:13:1: error: unknown key "redis_url" (expected one of: listen, pid_file, server, upstream, redis, cache, invalidation, admin, routes, access_log, log, instance_id)
            gateway.yaml:16:3: error: server: unknown key "max-connections" (did you mean "max_connections"?)
            """)
    }

    func testMissingRequiredFields() {
        XCTAssertEqual(diagnostics("""
            upstream:
              url: http://a
            redis: {}
            routes:
              - match: /a
                class: pass
              - name: b
                class: pass
            """), """
            gateway.yaml:1:1: error: missing required field "listen"
            gateway.yaml:3:8: error: redis: missing required field "url"
            gateway.yaml:5:5: error: routes[0]: missing required field "name"
            gateway.yaml:7:5: error: routes[1]: missing required field "match"
            """)
        XCTAssertEqual(diagnostics("listen: a:1\nupstream: { url: 'http://a' }\nredis: { url: 'redis://a' }\nroutes: []\n"), """
            gateway.yaml:4:9: error: routes: expected at least one route
            """)
    }

    func testBadDurations() {
        XCTAssertEqual(diagnostics(base + """
              - name: b
                match: /b
                class: public
                ttl: 5x
            server:
              idle_timeout: 0s
              drain_timeout: -1s
              header_timeout: 10
              body_timeout: 1.5s
            """), """
            gateway.yaml:14:10: error: routes[1].ttl: invalid duration "5x" (expected a number followed by ms, s, m or h, e.g. 250ms, 30s, 5m)
            gateway.yaml:16:17: error: server.idle_timeout: must be greater than 0, got "0s"
            gateway.yaml:17:18: error: server.drain_timeout: must not be negative, got "-1s"
            gateway.yaml:18:19: error: server.header_timeout: invalid duration "10" (expected a number followed by ms, s, m or h, e.g. 250ms, 30s, 5m)
            gateway.yaml:19:17: error: server.body_timeout: invalid duration "1.5s" (expected a number followed by ms, s, m or h, e.g. 250ms, 30s, 5m)
            """)
    }

    func testBadSizes() {
        XCTAssertEqual(diagnostics(base + """
                max_body_size: 1GiB
            server:
              max_header_bytes: 16KB
              max_body_bytes: 2GiB
            cache:
              max_body_size: -1
            """), """
            gateway.yaml:11:20: error: routes[0].max_body_size: must be between 0B and 512MiB, got "1GiB"
            gateway.yaml:13:21: error: server.max_header_bytes: invalid size "16KB" (expected a number of bytes, or a number followed by KiB, MiB or GiB, e.g. 4096, 16KiB, 1MiB)
            gateway.yaml:14:19: error: server.max_body_bytes: must be between 0B and 1GiB, got "2GiB"
            gateway.yaml:16:18: error: cache.max_body_size: invalid size "-1" (expected a number of bytes, or a number followed by KiB, MiB or GiB, e.g. 4096, 16KiB, 1MiB)
            """)
    }

    func testBadURLs() {
        XCTAssertEqual(diagnostics("""
            listen: a:1
            upstream:
              url: https://api.internal
            redis:
              url: http://cache.internal
            routes:
              - { name: a, match: /a, class: pass }
            """), """
            gateway.yaml:3:8: error: upstream.url: invalid upstream URL "https://api.internal": https is not supported; the upstream must be http://
            gateway.yaml:5:8: error: redis.url: invalid Redis URL "http://cache.internal" (expected redis://[:password@]host[:port][/db], unix:///path/to/redis.sock[?db=N] or redis+sentinel://host:26379,host:26379/master-name[/db], e.g. redis://127.0.0.1:6379/0)
            """)
        XCTAssertEqual(diagnostics("""
            listen: a:1
            upstream:
              url: http://a b/
            redis:
              url: redis://:secret@cache:6379/x
            routes:
              - { name: a, match: /a, class: pass }
            """), """
            gateway.yaml:3:8: error: upstream.url: invalid upstream URL "http://a b/": invalid host "a b"
            gateway.yaml:5:8: error: redis.url: invalid Redis URL "redis://:***@cache:6379/x": the database must be a number, e.g. redis://127.0.0.1:6379/0
            """)
    }

    func testSentinelURLs() throws {
        let url = try GatewayConfig.RedisURL(parsing: "redis+sentinel://app:s%40cret@10.0.0.1,10.0.0.2:26380,[::1]:5000/cache-main/3")
        XCTAssertEqual(url.sentinel?.nodes, [.init(host: "10.0.0.1"), .init(host: "10.0.0.2", port: 26380), .init(host: "::1", port: 5000)])
        XCTAssertEqual(url.sentinel?.masterName, "cache-main")
        XCTAssertEqual(url.username, "app")
        XCTAssertEqual(url.password, "s@cret")
        XCTAssertEqual(url.database, 3)
        XCTAssertEqual(url.host, "", "the master is not known until a Sentinel names it")
        XCTAssertEqual(url.address, "master \"cache-main\" (not resolved yet)")
        XCTAssertEqual(url.description, "redis+sentinel://app:***@10.0.0.1:26379,10.0.0.2:26380,[::1]:5000/cache-main/3")
        let resolved = url.withMaster(host: "10.0.0.9", port: 6380)
        XCTAssertEqual(resolved.address, "10.0.0.9:6380")
        XCTAssertTrue(resolved.sameSentinelTarget(as: url))
        var otherDB = url
        otherDB.database = 4
        XCTAssertFalse(otherDB.sameSentinelTarget(as: url))
        XCTAssertFalse(GatewayConfig.RedisURL(host: "a").sameSentinelTarget(as: GatewayConfig.RedisURL(host: "a")))
        XCTAssertEqual(try GatewayConfig.RedisURL(parsing: "redis+sentinel://s1/m").database, 0)

        XCTAssertEqual(diagnostics("""
            listen: a:1
            upstream: { url: "http://a" }
            redis:
              url: redis+sentinel://:pw@s1:26379,s2:26379
            routes:
              - { name: a, match: /a, class: pass }
            """), """
            gateway.yaml:4:8: error: redis.url: invalid Redis URL "redis+sentinel://:***@s1:26379,s2:26379": name the master after the Sentinels (e.g. redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0)
            """)
        for (text, problem) in [
            ("redis+sentinel://s1,,s2/m", "invalid Sentinel address \"\""),
            ("redis+sentinel://s1:0/m", "Sentinel port must be a number between 1 and 65535"),
            ("redis+sentinel://s1/m y", "invalid master name \"m y\""),
            ("redis+sentinel://s1/m/x", "the database must be a number"),
            ("redis+sentinel://s1/m/0/extra", "at most a database"),
        ] {
            XCTAssertThrowsError(try GatewayConfig.RedisURL(parsing: text), text) { error in
                XCTAssertTrue("\(error)".contains(problem), "\(text): \(error)")
            }
        }
    }

    func testBadListenAddresses() {
        let rest = "\nupstream: { url: 'http://a' }\nredis: { url: 'redis://a' }\nroutes: [{ name: a, match: /a, class: pass }]\n"
        XCTAssertEqual(diagnostics("listen: 8080" + rest), """
            gateway.yaml:1:9: error: listen: invalid listen address "8080": missing port (expected host:port or [ipv6]:port, e.g. 127.0.0.1:8080)
            """)
        XCTAssertEqual(diagnostics("listen: '[::1]:70000'" + rest), """
            gateway.yaml:1:9: error: listen: invalid listen address "[::1]:70000": port must be a number between 0 and 65535
            """)
        XCTAssertEqual(diagnostics("listen: ::1:80" + rest), """
            gateway.yaml:1:9: error: listen: invalid listen address "::1:80" (expected host:port or [ipv6]:port, e.g. 127.0.0.1:8080)
            """)
    }

    func testDuplicateRouteNames() {
        XCTAssertEqual(diagnostics(base + """
              - name: catalog
                match: /other
                class: pass
            """), """
            gateway.yaml:11:11: error: routes[1].name: duplicate route name "catalog" (already used by routes[0], line 7)
            """)
    }

    func testInvalidRouteNamesAndPatterns() {
        XCTAssertEqual(diagnostics(base + """
              - { name: a, match: catalog/x, class: pass }
              - { name: b, match: "/a/**/b", class: pass }
              - { name: c, match: "/users/{}", class: pass }
              - { name: d, match: "/users/{1d}", class: pass }
              - { name: e, match: "/a/{id}/{id}", class: pass }
              - { name: f, match: "/a/x{id}", class: pass }
              - { name: g, match: "/a//b", class: pass }
              - { name: h, match: "/a?b", class: pass }
              - { name: "my route", match: /i, class: pass }
            """), """
            gateway.yaml:11:23: error: routes[1].match: invalid pattern "catalog/x": a pattern must start with "/"
            gateway.yaml:12:23: error: routes[2].match: invalid pattern "/a/**/b": "**" is only allowed as the last segment
            gateway.yaml:13:23: error: routes[3].match: invalid pattern "/users/{}": empty capture name "{}"
            gateway.yaml:14:23: error: routes[4].match: invalid pattern "/users/{1d}": invalid capture name "1d" (use letters, digits and "_", not starting with a digit)
            gateway.yaml:15:23: error: routes[5].match: invalid pattern "/a/{id}/{id}": duplicate capture name "id"
            gateway.yaml:16:23: error: routes[6].match: invalid pattern "/a/x{id}": a capture must be a whole segment, like /users/{id}, not "x{id}"
            gateway.yaml:17:23: error: routes[7].match: invalid pattern "/a//b": empty segment ("//")
            gateway.yaml:18:23: error: routes[8].match: invalid pattern "/a?b": a pattern matches the path only; list query parameters under "query"
            gateway.yaml:19:13: error: routes[9].name: invalid route name "my route" (use letters, digits, "_" and "-", at most 64)
            """)
    }

    func testShadowedRoutes() {
        XCTAssertEqual(diagnostics(base + """
              - { name: item, match: "/catalog/{id}", class: public, ttl: 1m }
              - { name: writes, match: "/catalog/{id}", methods: [POST], class: pass }
              - { name: all, match: "/**", class: pass }
              - { name: late, match: /late, class: pass }
            """), """
            gateway.yaml:11:26: error: routes[1].match: this route can never match: every request it would take goes to the earlier route "catalog" (routes[0], line 7)
            gateway.yaml:14:26: error: routes[4].match: this route can never match: every request it would take goes to the earlier route "all" (routes[3], line 13)
            """)
    }

    func testInvalidClass() {
        XCTAssertEqual(diagnostics(base + """
              - { name: a, match: /a, class: private }
              - { name: b, match: /b, class: peruser }
              - { name: c, match: /c }
            """), """
            gateway.yaml:11:34: error: routes[1].class: invalid class "private" (expected public, per_user or pass)
            gateway.yaml:12:34: error: routes[2].class: invalid class "peruser" (did you mean "per_user"? expected public, per_user or pass)
            gateway.yaml:13:5: error: routes[3]: missing required field "class" (public, per_user or pass)
            """)
    }

    func testIdentityRules() {
        XCTAssertEqual(diagnostics(base + """
              - { name: a, match: /a, class: per_user, ttl: 1m }
              - { name: b, match: /b, class: public, ttl: 1m, identity: { header: X-User } }
              - { name: c, match: /c, class: per_user, ttl: 1m, identity: Authorization }
              - { name: d, match: /d, class: per_user, ttl: 1m, identity: { header: A, cookie: b } }
              - { name: e, match: /e, class: per_user, ttl: 1m, identity: { header: "X User" } }
              - { name: f, match: /f, class: per_user, ttl: 1m, identity: { cookie: sid }, allow_authorized: true }
            """), """
            gateway.yaml:11:5: error: routes[1]: missing required field "identity" (a per_user route is keyed by the user's identity: { header: NAME } or { cookie: NAME })
            gateway.yaml:12:51: error: routes[2].identity: "identity" is only allowed on per_user routes (a public route has one answer for everyone)
            gateway.yaml:13:63: error: routes[3].identity: expected { header: NAME } or { cookie: NAME }, found "Authorization"
            gateway.yaml:14:63: error: routes[4].identity: use exactly one of "header" or "cookie", e.g. { header: Authorization } or { cookie: session_id }
            gateway.yaml:15:73: error: routes[5].identity.header: invalid header name "X User"
            gateway.yaml:16:80: error: routes[6].allow_authorized: "allow_authorized" is only allowed on public routes
            """)
    }

    func testTTLRequiredOnCachedRoutesAndForbiddenOnPass() {
        XCTAssertEqual(diagnostics(base + """
              - { name: a, match: /a, class: public }
              - { name: b, match: /b, class: pass, ttl: 1m, query: [x], max_wait: 1s }
            """), """
            gateway.yaml:11:5: error: routes[1]: missing required field "ttl" (how long a public route's responses are cached, e.g. ttl: 30s)
            gateway.yaml:12:40: error: routes[2].ttl: "ttl" is not allowed on a pass route (pass routes are never cached)
            gateway.yaml:12:49: error: routes[2].query: "query" is not allowed on a pass route (pass routes are never cached)
            gateway.yaml:12:61: error: routes[2].max_wait: "max_wait" is not allowed on a pass route (pass routes are never cached)
            """)
    }

    func testBadStatusInTTLByStatus() {
        XCTAssertEqual(diagnostics(base + """
                ttl_by_status: { 404: 30s, 99: 1m, 600: 1m, abc: 1s, 200: 1m, 410: 0s }
            """), """
            gateway.yaml:11:32: error: routes[0].ttl_by_status: invalid status "99" (expected an HTTP status code between 100 and 599)
            gateway.yaml:11:40: error: routes[0].ttl_by_status: invalid status "600" (expected an HTTP status code between 100 and 599)
            gateway.yaml:11:49: error: routes[0].ttl_by_status: invalid status "abc" (expected an HTTP status code between 100 and 599)
            gateway.yaml:11:58: error: routes[0].ttl_by_status: status 200 is cached for the route's "ttl"; do not list it here
            gateway.yaml:11:72: error: routes[0].ttl_by_status.410: must be greater than 0, got "0s"
            """)
    }

    func testBadMethodNames() {
        XCTAssertEqual(diagnostics(base + """
              - { name: a, match: /a, class: pass, methods: [get, GTE, PURGE, POST, POST] }
              - { name: b, match: /b, class: public, ttl: 1m, methods: [GET, POST] }
              - { name: c, match: /c, class: pass, methods: [] }
            """), """
            gateway.yaml:11:50: error: routes[1].methods[0]: methods are case-sensitive: write "GET", not "get"
            gateway.yaml:11:55: error: routes[1].methods[1]: unknown method "GTE" (did you mean "GET"?)
            gateway.yaml:11:60: error: routes[1].methods[2]: unknown method "PURGE" (expected one of: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT)
            gateway.yaml:11:73: error: routes[1].methods[4]: duplicate method "POST"
            gateway.yaml:12:66: error: routes[2].methods[1]: POST cannot be cached: a public route takes only GET and HEAD (use a pass route for POST)
            gateway.yaml:13:49: error: routes[3].methods: expected at least one method
            """)
    }

    func testOutOfRangeAndNonIntegerNumbers() {
        XCTAssertEqual(diagnostics(base + """
            server:
              event_loops: 0
              max_headers: lots
              max_connections: 1.5
            upstream:
              url: http://a
              max_connections: 100000
            redis:
              url: redis://a
              connections: 65
            """), """
            gateway.yaml:4:1: error: duplicate keys "redis", "upstream" in the same mapping
            """, "YAML duplicate keys are found before any value is checked")
        XCTAssertEqual(diagnostics(base + """
            server:
              event_loops: 0
              max_headers: lots
              max_connections: 1.5
              max_requests_per_connection: "7"
            """), """
            gateway.yaml:12:16: error: server.event_loops: must be between 1 and 64, got 0
            gateway.yaml:13:16: error: server.max_headers: expected an integer, found "lots"
            gateway.yaml:14:20: error: server.max_connections: expected an integer, found "1.5"
            """, "a quoted integer is accepted")
        XCTAssertEqual(diagnostics("""
            listen: a:1
            upstream: { url: "http://a", max_connections: 100000, max_queue: -1 }
            redis: { url: "redis://a", connections: 65 }
            routes: [{ name: a, match: /a, class: pass }]
            """), """
            gateway.yaml:2:47: error: upstream.max_connections: must be between 1 and 10000, got 100000
            gateway.yaml:2:66: error: upstream.max_queue: must be between 0 and 1000000, got -1
            gateway.yaml:3:41: error: redis.connections: must be between 1 and 64, got 65
            """)
    }

    func testTwoErrorsAreReportedTogetherInFileOrder() {
        let yaml = """
            listen: 127.0.0.1:8080
            upstream:
              url: http://127.0.0.1:9000
            redis:
              url: redis://127.0.0.1:6379/0
            routes:
              - name: catalog
                match: /catalog/**
                class: public
                tll: 5m
              - name: search
                match: /search
                class: public
                ttl: 5x
            """
        do {
            _ = try GatewayConfig.parse(yaml: yaml, fileName: "gateway.yaml")
            XCTFail("expected errors")
        } catch {
            XCTAssertEqual(error.errors.count, 3)
            XCTAssertEqual(error.errors.map(\.path), ["routes[0]", "routes[0]", "routes[1].ttl"])
            XCTAssertEqual(error.description, """
                gateway.yaml:7:5: error: routes[0]: missing required field "ttl" (how long a public route's responses are cached, e.g. ttl: 30s)
                gateway.yaml:10:5: error: routes[0]: unknown key "tll" (did you mean "ttl"?)
                gateway.yaml:14:10: error: routes[1].ttl: invalid duration "5x" (expected a number followed by ms, s, m or h, e.g. 250ms, 30s, 5m)
                """)
        }
    }

    func testOtherRouteValues() {
        XCTAssertEqual(diagnostics(base + """
                unlisted_query: drop
                allow_authorized: maybe
                query: [page, page, "", "a&b"]
                <<: { ttl: 1m }
            """), """
            gateway.yaml:11:21: error: routes[0].unlisted_query: invalid value "drop" (expected strip or bypass)
            gateway.yaml:12:23: error: routes[0].allow_authorized: expected true or false, found "maybe"
            gateway.yaml:13:19: error: routes[0].query[1]: duplicate query parameter "page"
            gateway.yaml:13:25: error: routes[0].query[2]: empty query parameter name
            gateway.yaml:13:29: error: routes[0].query[3]: character "&" is not allowed in a query parameter name
            gateway.yaml:14:5: error: routes[0]: merge keys (<<) are not supported; write the settings out
            """)
    }

    func testForwardHeadersAndUpstreamHost() throws {
        XCTAssertEqual(diagnostics(base + """
                forward_headers: [Accept-Language, Host, "bad name", X-Forwarded-For, Authorization]
            """), """
            gateway.yaml:11:40: error: routes[0].forward_headers[1]: "Host" cannot be forwarded from the client: the gateway sends upstream.host, or the client's Host when key_host is true
            gateway.yaml:11:46: error: routes[0].forward_headers[2]: invalid header name "bad name"
            gateway.yaml:11:58: error: routes[0].forward_headers[3]: "X-Forwarded-For" cannot be forwarded from the client: the gateway sets it to the client's address
            gateway.yaml:11:75: error: routes[0].forward_headers[4]: "Authorization" cannot be forwarded from the client: it is forwarded on per_user routes keyed by it and on allow_authorized routes
            """)
        XCTAssertEqual(diagnostics("""
            listen: 127.0.0.1:8080
            upstream: { url: "http://[::1]:9000", host: "a b" }
            redis: { url: redis://127.0.0.1 }
            routes: [{ name: r, match: "/**", class: pass, forward_headers: [Accept] }]
            """), """
            gateway.yaml:2:45: error: upstream.host: invalid host "a b" (expected host[:port], e.g. api.example.com)
            gateway.yaml:4:48: error: routes[0].forward_headers: "forward_headers" is not allowed on a pass route (pass routes are never cached)
            """)
        let config = try GatewayConfig.parse(yaml: """
            listen: 127.0.0.1:8080
            upstream: { url: "http://[::1]:9000" }
            redis: { url: redis://127.0.0.1 }
            cache: { forward_headers: [Accept-Language, accept-language, User-Agent] }
            routes:
              - { name: a, match: "/a", class: public, ttl: 1m }
              - { name: b, match: "/b", class: public, ttl: 1m, forward_headers: [Accept] }
            """, fileName: "gateway.yaml")
        XCTAssertEqual(config.upstream.host, "[::1]:9000", "the URL's authority by default")
        XCTAssertEqual(config.cache.forwardHeaders, ["accept-language", "user-agent"])
        XCTAssertEqual(config.routes[0].cache?.forwardHeaders, ["accept-language", "user-agent"])
        XCTAssertEqual(config.routes[1].cache?.forwardHeaders, ["accept"], "a route's list replaces the default")
        XCTAssertEqual(GatewayConfig.UpstreamURL(host: "backend", port: 80).authority, "backend")
    }

    func testFreshnessKeys() throws {
        XCTAssertEqual(diagnostics(base + """
                stale_while_revalidate: -1s
                stale_if_error_statuses: [500, 200, x]
                on_store_error: crash
                max_waiters: 0
            """), """
            gateway.yaml:11:29: error: routes[0].stale_while_revalidate: must not be negative, got "-1s"
            gateway.yaml:12:36: error: routes[0].stale_if_error_statuses[1]: must be between 400 and 599, got 200
            gateway.yaml:12:41: error: routes[0].stale_if_error_statuses[2]: expected an integer, found "x"
            gateway.yaml:13:21: error: routes[0].on_store_error: invalid value "crash" (expected origin or fail)
            gateway.yaml:14:18: error: routes[0].max_waiters: must be between 1 and 1000000, got 0
            """)
        let config = try GatewayConfig.parse(yaml: """
            listen: 127.0.0.1:8080
            upstream: { url: "http://127.0.0.1:9000" }
            redis: { url: redis://127.0.0.1 }
            cache: { stale_while_revalidate: 30s, stale_if_error: 10m, keep: 1h, uncacheable_ttl: 0s }
            routes:
              - { name: a, match: "/a", class: public, ttl: 1m }
              - { name: b, match: "/b", class: public, ttl: 1m, stale_if_error: 0s, on_store_error: fail,
                  stale_if_error_statuses: [502], max_waiters: 5 }
            """, fileName: "gateway.yaml")
        XCTAssertEqual(config.routes[0].cache?.freshness, FreshnessSettings(
            staleWhileRevalidate: .seconds(30), staleIfError: .seconds(600), keep: .seconds(3600), uncacheableTTL: .zero))
        XCTAssertEqual(config.routes[1].cache?.freshness, FreshnessSettings(
            staleWhileRevalidate: .seconds(30), staleIfError: .zero, staleIfErrorStatuses: [502], keep: .seconds(3600),
            uncacheableTTL: .zero, maxWaiters: 5, onStoreError: .fail))
        XCTAssertEqual(GatewayConfig.Cache().freshness, FreshnessSettings(), "defaults: no stale windows, 30 s hit-for-miss")
        XCTAssertEqual(config.routes[0].cache?.varyHeaders, ["accept-encoding", "accept", "accept-language"])
        XCTAssertEqual(config.routes[0].cache?.maxVariants, 8)
        let varied = try GatewayConfig.parse(yaml: """
            listen: 127.0.0.1:8080
            upstream: { url: "http://127.0.0.1:9000" }
            redis: { url: redis://127.0.0.1 }
            cache: { vary_headers: [Accept-Encoding, X-Device], max_variants: 3 }
            routes: [{ name: a, match: "/a", class: public, ttl: 1m, max_variants: 2 }]
            """, fileName: "gateway.yaml")
        XCTAssertEqual(varied.routes[0].cache?.varyHeaders, ["accept-encoding", "x-device"])
        XCTAssertEqual(varied.routes[0].cache?.maxVariants, 2)
    }

    func testPurgeAPI() throws {
        XCTAssertEqual(diagnostics(base + """
            invalidation:
              channel: events
              purge_api: { token: short }
            """), """
            gateway.yaml:13:23: error: invalidation.purge_api.token: must be at least 16 characters (a guessable token opens purging to anyone)
            """)
        XCTAssertEqual(diagnostics(base + """
            invalidation: { channel: events, purge_api: { allow: [] } }
            """), """
            gateway.yaml:11:45: error: invalidation.purge_api: set token, token_env or allow: PURGE is never open to everyone
            """)
        let config = try GatewayConfig.parse(yaml: base + """
            invalidation: { channel: events, purge_api: { token_env: GATEWAY_PURGE_TOKEN, allow: [127.0.0.1, "::1"] } }
            """, fileName: "gateway.yaml")
        XCTAssertEqual(config.invalidation?.purgeAPI, GatewayConfig.PurgeAPI(tokenEnvironmentVariable: "GATEWAY_PURGE_TOKEN", allow: ["127.0.0.1", "::1"]))
    }

    func testLoadReportsAMissingFile() {
        XCTAssertThrowsError(try GatewayConfig.load(path: "/nonexistent/gateway.yaml")) { error in
            XCTAssertEqual("\(error)", "/nonexistent/gateway.yaml: error: no such file")
        }
    }

    // MARK: - Values

    func testDurationParsing() {
        let valid: [(String, Duration)] = [
            ("250ms", .milliseconds(250)), ("30s", .seconds(30)), ("5m", .seconds(300)), ("1h", .seconds(3600)),
            ("0s", .zero), ("0ms", .zero), ("-5s", .seconds(-5)), ("1500ms", .milliseconds(1500)),
            ("007s", .seconds(7)), ("24h", .seconds(86_400)),
        ]
        for (text, expected) in valid {
            XCTAssertEqual(Duration(configString: text), expected, text)
        }
        let invalid = ["", "5", "5x", "s", "ms", "1.5s", "5 s", " 5s", "5S", "5M", "5sec", "1m30s", "+5s", "--5s",
                       "5d", "１s", "99999999999999999999h", "9999999999999999h"]
        for text in invalid {
            XCTAssertNil(Duration(configString: text), text)
        }
    }

    func testDurationFormattingAndMilliseconds() {
        XCTAssertEqual(Duration.seconds(3600).configString, "1h")
        XCTAssertEqual(Duration.seconds(300).configString, "5m")
        XCTAssertEqual(Duration.seconds(90).configString, "90s")
        XCTAssertEqual(Duration.milliseconds(1500).configString, "1500ms")
        XCTAssertEqual(Duration.zero.configString, "0s")
        XCTAssertEqual(Duration.milliseconds(250).wholeMilliseconds, 250)
        XCTAssertEqual(Duration.seconds(90).wholeMilliseconds, 90_000)
        for text in ["250ms", "30s", "5m", "1h", "90s"] {
            XCTAssertEqual(Duration(configString: text)?.configString, text, "round trip of \(text)")
        }
    }

    func testSizeParsing() {
        let valid: [(String, Int)] = [
            ("0", 0), ("4096", 4096), ("512B", 512), ("16KiB", 16_384), ("1MiB", 1_048_576), ("8MiB", 8_388_608),
            ("1GiB", 1_073_741_824),
        ]
        for (text, expected) in valid {
            XCTAssertEqual(ByteSize.parse(text), expected, text)
        }
        let invalid = ["", "KiB", "16KB", "16kib", "16K", "1MB", "1.5MiB", "-1", "16 KiB", "1TiB", "99999999999999999GiB"]
        for text in invalid {
            XCTAssertNil(ByteSize.parse(text), text)
        }
        XCTAssertEqual(ByteSize.format(16_384), "16KiB")
        XCTAssertEqual(ByteSize.format(1000), "1000B")
        XCTAssertEqual(ByteSize.format(3 << 30), "3GiB")
    }

    func testAddressParsing() throws {
        XCTAssertEqual(try GatewayConfig.ListenAddress(parsing: "[::1]:8080"), .init(host: "::1", port: 8080))
        XCTAssertEqual(try GatewayConfig.ListenAddress(parsing: "localhost:0"), .init(host: "localhost", port: 0))
        XCTAssertEqual(GatewayConfig.ListenAddress(host: "::1", port: 80).description, "[::1]:80")
        XCTAssertThrowsError(try GatewayConfig.ListenAddress(parsing: ":8080"))
        XCTAssertThrowsError(try GatewayConfig.ListenAddress(parsing: "a:-1"))

        let upstream = try GatewayConfig.UpstreamURL(parsing: "http://api:81/v1//")
        XCTAssertEqual(upstream, .init(host: "api", port: 81, basePath: "/v1"))
        XCTAssertEqual(upstream.description, "http://api:81/v1")
        XCTAssertEqual(try GatewayConfig.UpstreamURL(parsing: "HTTP://api/").description, "http://api:80")
        XCTAssertThrowsError(try GatewayConfig.UpstreamURL(parsing: "http://user@api"))
        XCTAssertThrowsError(try GatewayConfig.UpstreamURL(parsing: "http://api:0"))
        XCTAssertThrowsError(try GatewayConfig.UpstreamURL(parsing: "http://"))

        let redis = try GatewayConfig.RedisURL(parsing: "redis://:s%3Acret@cache")
        XCTAssertEqual(redis, .init(host: "cache", port: 6379, username: nil, password: "s:cret", database: 0))
        XCTAssertEqual(redis.description, "redis://:***@cache:6379/0")
        XCTAssertEqual(try GatewayConfig.RedisURL(parsing: "redis://cache:7000/").description, "redis://cache:7000/0")
        XCTAssertThrowsError(try GatewayConfig.RedisURL(parsing: "rediss://cache"))
        XCTAssertThrowsError(try GatewayConfig.RedisURL(parsing: "redis://:@cache"))
    }

    func testClusterURLs() throws {
        let url = try GatewayConfig.RedisURL(parsing: "redis+cluster://:s%3Acret@10.0.0.1:7000,[::1]:7001,cache")
        XCTAssertTrue(url.isCluster)
        XCTAssertEqual(url.clusterSeeds, [.init(host: "10.0.0.1", port: 7000), .init(host: "::1", port: 7001), .init(host: "cache", port: 6379)])
        XCTAssertEqual(url.host, "10.0.0.1")
        XCTAssertEqual(url.port, 7000)
        XCTAssertEqual(url.password, "s:cret")
        XCTAssertEqual(url.database, 0)
        XCTAssertEqual(url.description, "redis+cluster://:***@10.0.0.1:7000,[::1]:7001,cache:6379/0")
        XCTAssertEqual(try GatewayConfig.RedisURL(parsing: "REDIS+CLUSTER://a:1/0").clusterSeeds, [.init(host: "a", port: 1)])
        XCTAssertFalse(try GatewayConfig.RedisURL(parsing: "redis://a").isCluster)
    }

    func testBadClusterURLsNameTheLineAndField() {
        XCTAssertEqual(diagnostics("""
            listen: a:1
            upstream: { url: 'http://a' }
            redis:
              url: redis+cluster://:secret@a:7000,b:7001/2
            routes:
              - { name: a, match: /a, class: pass }
            """), """
            gateway.yaml:4:8: error: redis.url: invalid Redis URL "redis+cluster://:***@a:7000,b:7001/2": a Redis Cluster has only database 0, got /2
            """)
        XCTAssertEqual(diagnostics("""
            listen: a:1
            upstream: { url: 'http://a' }
            redis:
              url: redis+cluster://a:7000,,b:7001
            routes:
              - { name: a, match: /a, class: pass }
            """), """
            gateway.yaml:4:8: error: redis.url: invalid Redis URL "redis+cluster://a:7000,,b:7001": an empty node in the seed list (expected redis+cluster://[:password@]host:port,host:port[/0], e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000)
            """)
        XCTAssertEqual(diagnostics("""
            listen: a:1
            upstream: { url: 'http://a' }
            redis:
              url: redis+cluster://a:7000,b:99999
            routes:
              - { name: a, match: /a, class: pass }
            """), """
            gateway.yaml:4:8: error: redis.url: invalid Redis URL "redis+cluster://a:7000,b:99999": seed "b:99999" is not a host:port with a port between 1 and 65535 (expected redis+cluster://[:password@]host:port,host:port[/0], e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000)
            """)
    }
}
