/// The whole gateway configuration, as read from `gateway.yaml` and validated once at start.
///
/// Load it with ``GatewayConfig/load(path:)`` (or ``GatewayConfig/parse(yaml:fileName:)`` in tests);
/// both throw ``ConfigErrors`` listing every problem found. A value that loaded is consistent:
/// every route pattern compiles, no route is shadowed by an earlier one, cached routes have a TTL,
/// per_user routes have an identity, and every number is in range.
///
/// Durations are Swift `Duration`s (always whole milliseconds; see `Duration.wholeMilliseconds`),
/// sizes are `Int` bytes.
public struct GatewayConfig: Sendable {
    /// Where the gateway accepts client connections (`listen`, required).
    public var listen: ListenAddress
    /// Client-side limits and timeouts (`server`).
    public var server: Server
    /// The origin that misses and pass-through requests go to (`upstream`, required).
    public var upstream: Upstream
    /// The cache store (`redis`, required).
    public var redis: Redis
    /// Defaults for cached routes (`cache`); each ``Route`` already carries the resolved values.
    public var cache: Cache
    /// Purges published by the backend (`invalidation`); nil when the section is absent.
    public var invalidation: Invalidation?
    /// The admin listener (`admin`); nil when the section is absent: then the public port keeps
    /// `/healthz`, `/readyz` and `PURGE` as before, and there is no `/metrics`, `/stats` or `/config`.
    public var admin: Admin?
    /// The routes in file order: the first match wins. Never empty.
    public var routes: [Route]
    /// The file it was loaded from, as given to the loader (for messages).
    public var fileName: String
    /// `pid_file`: where `gateway serve` writes its process ID (and `gateway reload` reads it).
    /// Optional; `serve --pid-file` overrides it.
    public var pidFile: String?
    /// Where `listen`, `upstream.url` and `redis.url` were written, for checks made after loading
    /// (`check-config` resolving the listen host), so that they can name the line like the loader.
    public var sourcePositions: [String: SourcePosition] = [:]
    /// One line per answered request (`access_log`); nil when `access_log: off`.
    public var accessLog: AccessLog? = AccessLog()
    /// The application log's format and destination (`log`).
    public var log = Log()
    /// This instance's name (`instance_id`, default host name and pid): see ``InstanceID``.
    /// The cross-instance coalescing puts it in lease values; logs, `/stats` and `/config` show it.
    public var instanceID: InstanceID = .processDefault

    public init(
        listen: ListenAddress, server: Server = Server(), upstream: Upstream, redis: Redis,
        cache: Cache = Cache(), routes: [Route], fileName: String = "gateway.yaml"
    ) {
        self.listen = listen
        self.server = server
        self.upstream = upstream
        self.redis = redis
        self.cache = cache
        self.routes = routes
        self.fileName = fileName
    }
}

extension GatewayConfig {
    /// Client-facing server settings (`server:`). Every field is optional in the file.
    public struct Server: Sendable, Equatable {
        /// Serial event loops, each owning its connections, Redis context and curl handle.
        /// `event_loops`, 1–64, default 2.
        public var eventLoops: Int
        /// Open client connections beyond which new ones are closed at once.
        /// `max_connections`, 1–1,000,000, default 10,000.
        public var maxConnections: Int
        /// Requests served on one keep-alive connection before it is closed.
        /// `max_requests_per_connection`, 1–10,000,000, default 10,000.
        public var maxRequestsPerConnection: Int
        /// The whole request head must arrive within this after the first byte (slowloris).
        /// `header_timeout`, > 0, default 10s.
        public var headerTimeout: Duration
        /// A keep-alive connection with no request in flight is closed after this.
        /// `idle_timeout`, > 0, default 60s.
        public var idleTimeout: Duration
        /// Longest gap between two reads of a request body. `body_timeout`, > 0, default 30s.
        public var bodyTimeout: Duration
        /// On shutdown, in-flight requests get this long to finish. `drain_timeout`, ≥ 0, default 10s.
        public var drainTimeout: Duration
        /// Request line plus header lines, in bytes (431 beyond).
        /// `max_header_bytes`, 1KiB–1MiB, default 16KiB.
        public var maxHeaderBytes: Int
        /// Header fields per request (431 beyond). `max_headers`, 1–1000, default 100.
        public var maxHeaders: Int
        /// Decoded request body, in bytes (413 beyond). `max_body_bytes`, 0–1GiB, default 8MiB.
        public var maxBodyBytes: Int

        public init(
            eventLoops: Int = 2, maxConnections: Int = 10_000, maxRequestsPerConnection: Int = 10_000,
            headerTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60),
            bodyTimeout: Duration = .seconds(30), drainTimeout: Duration = .seconds(10),
            maxHeaderBytes: Int = 16 * 1024, maxHeaders: Int = 100, maxBodyBytes: Int = 8 * 1024 * 1024
        ) {
            self.eventLoops = eventLoops
            self.maxConnections = maxConnections
            self.maxRequestsPerConnection = maxRequestsPerConnection
            self.headerTimeout = headerTimeout
            self.idleTimeout = idleTimeout
            self.bodyTimeout = bodyTimeout
            self.drainTimeout = drainTimeout
            self.maxHeaderBytes = maxHeaderBytes
            self.maxHeaders = maxHeaders
            self.maxBodyBytes = maxBodyBytes
        }
    }

    /// The upstream origin (`upstream:`).
    public struct Upstream: Sendable, Equatable {
        /// `url`, required: `http://host[:port][/base]`.
        public var url: UpstreamURL
        /// TCP connect limit. `connect_timeout`, > 0, default 1s.
        public var connectTimeout: Duration
        /// Whole-exchange limit for one upstream request (504 beyond). `timeout`, > 0, default 10s.
        public var timeout: Duration
        /// Concurrent upstream requests, per gateway (shared by its event loops; each loop may keep
        /// this many idle keep-alive connections). `max_connections`, 1–10,000, default 64.
        public var maxConnections: Int
        /// Requests waiting for a connection beyond `maxConnections`, per gateway; beyond this the
        /// gateway answers 503. `max_queue`, 0–1,000,000, default 1024.
        public var maxQueue: Int
        /// The `Host` sent upstream on cached routes that do not key on the client's Host
        /// (`key_host: false`): a client's Host must never reach a response stored for everyone.
        /// `host`, default: the URL's authority (`host[:port]`).
        public var host: String

        public init(
            url: UpstreamURL, connectTimeout: Duration = .seconds(1), timeout: Duration = .seconds(10),
            maxConnections: Int = 64, maxQueue: Int = 1024, host: String? = nil
        ) {
            self.url = url
            self.connectTimeout = connectTimeout
            self.timeout = timeout
            self.maxConnections = maxConnections
            self.maxQueue = maxQueue
            self.host = host ?? url.authority
        }
    }

    /// The Redis cache store (`redis:`).
    public struct Redis: Sendable, Equatable {
        /// `url`, required: `redis://[[user]:password@]host[:port][/db]`.
        public var url: RedisURL
        /// Per-command limit; a slower Redis counts as a miss. `timeout`, > 0, default 50ms.
        public var timeout: Duration
        /// Prepended to every cache key. `key_prefix`, at most 128 bytes, default `gw:`.
        public var keyPrefix: String
        /// Redis connections per event loop. `connections`, 1–64, default 1.
        public var connections: Int
        /// `password_file`: the file the password was read from at load (already in `url.password`).
        public var passwordFile: String?

        public init(url: RedisURL, timeout: Duration = .milliseconds(50), keyPrefix: String = "gw:", connections: Int = 1) {
            self.url = url
            self.timeout = timeout
            self.keyPrefix = keyPrefix
            self.connections = connections
        }
    }

    /// Where the backend announces changes (`invalidation:`), so cached answers do not wait for
    /// their TTL. Messages on the channel are text:
    /// `purge <path>` removes every entry for that path (every user, every query variant), and
    /// `purge-route <route name>` every entry of a route.
    public struct Invalidation: Sendable, Equatable {
        /// The Redis pub/sub channel (`channel`): messages sent while a gateway is away are lost.
        public var channel: String?
        /// The Redis stream (`stream`): read through a consumer group of this instance's own, so
        /// that no event is lost while it is away, and every instance applies every event.
        public var stream: String?
        /// This instance's name in the stream's consumer groups (`instance`, default: an
        /// `instance_id` written in the file, else the host name; see
        /// ``GatewayConfig/streamConsumerName``). It must stay the same across restarts: the group
        /// keeps its position.
        public var instance: String?
        /// `PURGE <path>` over HTTP (`purge_api`); nil (the default): PURGE is not the gateway's
        /// and goes to the routes like any other method.
        public var purgeAPI: PurgeAPI?
        public init(channel: String? = nil, stream: String? = nil, instance: String? = nil, purgeAPI: PurgeAPI? = nil) {
            self.channel = channel
            self.stream = stream
            self.instance = instance
            self.purgeAPI = purgeAPI
        }
    }

    /// Who may send `PURGE <path>` to the gateway: a bearer token, client addresses, or both
    /// (either suffices). Never open without one of them.
    public struct PurgeAPI: Sendable, Equatable {
        /// The token, written in the file (`token`)…
        public var token: String?
        /// …or the name of the environment variable that holds it (`token_env`), so that it
        /// need not be in the file.
        public var tokenEnvironmentVariable: String?
        /// Client addresses that may purge without a token (`allow`, e.g. [127.0.0.1, ::1]).
        public var allow: [String]
        /// Whether `PURGE <path>` is also answered on the public port when an `admin:` listener is
        /// configured (`public`, default false: purging is an operator's act and moves to the admin
        /// port). Without `admin:` the public port is the only place, and answers it regardless.
        public var onPublicPort: Bool
        public init(token: String? = nil, tokenEnvironmentVariable: String? = nil, allow: [String] = [], onPublicPort: Bool = false) {
            self.token = token
            self.tokenEnvironmentVariable = tokenEnvironmentVariable
            self.allow = allow
            self.onPublicPort = onPublicPort
        }
    }

    /// The admin listener (`admin:`), like Envoy's admin interface: `/metrics`, `/stats`, `/config`,
    /// `/healthz`, `/readyz`, the purge API and the status page, off the public port. It has no
    /// authentication of its own (only the purge API's token): bind it to loopback or a private
    /// interface.
    public struct Admin: Sendable, Equatable {
        /// `listen`, default 127.0.0.1:9901 (Envoy's admin port; port 0 picks a free one).
        public var listen: ListenAddress
        /// Whether the public port still answers `/healthz` and `/readyz` (`public_health`, default
        /// true): load balancers usually check the port they send traffic to, and adding `admin:`
        /// should not take an instance out of rotation. False gives those two paths to the routes.
        public var publicHealth: Bool

        public init(listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 9901), publicHealth: Bool = true) {
            self.listen = listen
            self.publicHealth = publicHealth
        }
    }

    /// Defaults for cached routes (`cache:`); routes may override each.
    public struct Cache: Sendable, Equatable {
        /// Bigger responses are served but not stored. `max_body_size`, 0–512MiB, default 1MiB.
        public var maxBodySize: Int
        /// How long a coalesced waiter waits for the leader's response before it gets a 504.
        /// `max_wait`, > 0, default 5s.
        public var maxWait: Duration
        /// Whether the Host header is part of cache keys. `key_host`, default false.
        public var keyHost: Bool
        /// An in-process tier in front of Redis: entries read from Redis are also kept in memory
        /// for at most this long (never past their own freshness). With ``localTracking`` every
        /// change in Redis evicts them within milliseconds, and this is only a cap; without it, a
        /// change is seen after at most this long. `local_ttl`, 0 turns the tier off; default 5m
        /// with `local_tracking`, else 0s.
        public var localTTL: Duration
        /// Whether the in-process tier is kept coherent through Redis server-assisted client-side
        /// caching (`CLIENT TRACKING … BCAST PREFIX <key_prefix>e:` on a connection of its own).
        /// While that connection is down the tier is empty and bypassed. `local_tracking`,
        /// default true.
        public var localTracking: Bool
        /// The tier's TTL when Redis refuses tracking (too old, or an ACL without `CLIENT`): the
        /// `local_ttl` the file gave, or 0 (off) when it gave none, since the 5m default is only
        /// safe with tracking.
        public var localTTLWithoutTracking: Duration
        /// Memory for the in-process tier, split between the event loops; oldest entries go first.
        /// `local_max_bytes`, 0–4GiB, default 64MiB.
        public var localMaxBytes: Int
        /// Entries in the in-process tier, split between the event loops like `localMaxBytes`:
        /// many small entries would otherwise cost far more than their counted bytes.
        /// `local_max_entries`, 0–10,000,000, default 10,000.
        public var localMaxEntries: Int
        /// Client request headers sent upstream on cache fills, lowercased. Everything else the
        /// client sent is dropped on cached routes, because a header the backend reflects but the
        /// key does not hold would be served to everyone (`X-Forwarded-Host` and friends). The
        /// identity of per_user routes, and `Authorization`/`Cookie` on `allow_authorized` routes,
        /// are always sent. `forward_headers`, default none.
        public var forwardHeaders: [String]
        /// Stale windows, hit-for-miss, waiter cap, Redis-down policy (see ``FreshnessSettings``).
        public var freshness: FreshnessSettings
        /// Request headers a response may vary on and still be stored, lowercased.
        /// `vary_headers`, default [Accept-Encoding, Accept, Accept-Language].
        public var varyHeaders: [String] = ["accept-encoding", "accept", "accept-language"]
        /// Whether a gateway started with this config keeps a tracking connection: the tier is
        /// on and asks for tracking. (`local_tracking` takes a restart.)
        public var tracksLocalTier: Bool { localTracking && localTTL > .zero }
        /// `local_ttl` when the file gives none and tracking is on.
        public static let defaultTrackedLocalTTL: Duration = .seconds(300)
        /// Variants stored per key. `max_variants`, 1–1000, default 8.
        public var maxVariants: Int = 8
        /// Coalesce misses across every instance on the same Redis and `key_prefix`: before a
        /// fetch the local leader takes a lease in Redis, and instances that find it taken wait for
        /// the holder's announcement instead of fetching too (see ``ReadThrough``).
        /// `cross_instance`, default false; turning it on or off takes a restart (the announcement
        /// subscription is made at start).
        public var crossInstance: Bool = true

        public init(
            maxBodySize: Int = 1 << 20, maxWait: Duration = .seconds(5), keyHost: Bool = false,
            localTTL: Duration? = nil, localTracking: Bool = true, localMaxBytes: Int = 64 << 20, localMaxEntries: Int = 10_000,
            forwardHeaders: [String] = [], freshness: FreshnessSettings = FreshnessSettings()
        ) {
            self.freshness = freshness
            self.maxBodySize = maxBodySize
            self.maxWait = maxWait
            self.keyHost = keyHost
            self.localTracking = localTracking
            self.localTTL = localTTL ?? (localTracking ? Self.defaultTrackedLocalTTL : .zero)
            self.localTTLWithoutTracking = localTTL ?? .zero
            self.localMaxBytes = localMaxBytes
            self.localMaxEntries = localMaxEntries
            self.forwardHeaders = forwardHeaders
        }
    }
}

extension GatewayConfig {
    /// A line and column in the config file (1-based, as in ``ConfigError``).
    public struct SourcePosition: Sendable, Equatable {
        public var line: Int
        public var column: Int
        public init(line: Int, column: Int) {
            self.line = line
            self.column = column
        }
    }

    /// A diagnostic about a field found after loading, positioned where the field was written.
    /// - Parameters:
    ///   - field: a key of ``sourcePositions``, e.g. `listen`.
    ///   - message: what is wrong.
    public func error(at field: String, _ message: String) -> ConfigError {
        let position = sourcePositions[field]
        return ConfigError(file: fileName, line: position?.line, column: position?.column, path: field, message: message)
    }
}
