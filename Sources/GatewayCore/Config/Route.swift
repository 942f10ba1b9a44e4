/// One entry of `routes:`: which requests it takes (pattern and methods) and how they are served.
public struct Route: Sendable {
    /// Unique name, `[A-Za-z0-9_-]+`: a bounded label for logs and metrics.
    public var name: String
    /// The compiled `match` pattern.
    public var pattern: RoutePattern
    /// The methods this route takes; a request with another method falls through to later routes.
    /// Default: GET and HEAD for cached routes, every method but TRACE and CONNECT
    /// (``MethodSet/passDefault``) for pass routes.
    public var methods: MethodSet
    /// public | per_user | pass.
    public var routeClass: RouteClass
    /// How responses are cached; nil exactly when ``routeClass`` is ``RouteClass/pass``.
    public var cache: RouteCacheSettings?
    /// Line of the route in the configuration file (0 when built in code).
    public var line: Int

    public init(
        name: String, pattern: RoutePattern, methods: MethodSet, routeClass: RouteClass,
        cache: RouteCacheSettings? = nil, line: Int = 0
    ) {
        self.name = name
        self.pattern = pattern
        self.methods = methods
        self.routeClass = routeClass
        self.cache = cache
        self.line = line
    }
}

/// How a route's requests are served.
public enum RouteClass: String, Sendable, Hashable, CaseIterable {
    /// One cached answer for everyone.
    case `public` = "public"
    /// Cached per user: the key holds a digest of the user's identity (header or cookie).
    case perUser = "per_user"
    /// Never cached: forwarded upstream as is (any method, body and headers).
    case pass = "pass"
}

/// What identifies a user on a per_user route. Only a digest of its value ever reaches a key.
public enum IdentitySource: Sendable, Hashable, CustomStringConvertible {
    /// A request header, e.g. `Authorization` (matched case-insensitively).
    case header(String)
    /// A cookie from the `Cookie` header, e.g. `session_id` (matched case-sensitively).
    case cookie(String)

    public var description: String {
        switch self {
        case .header(let name): "header \(name)"
        case .cookie(let name): "cookie \(name)"
        }
    }
}

/// What happens to query parameters that are not in a route's `query` allow-list.
public enum UnlistedQueryPolicy: String, Sendable, Hashable, CaseIterable {
    /// Removed before the request is looked up and forwarded (default).
    case strip
    /// The request bypasses the cache and goes upstream with its query untouched.
    case bypass
}

/// The caching part of a public or per_user route, with the `cache:` defaults already applied.
public struct RouteCacheSettings: Sendable, Equatable {
    /// Whose clock a stored entry follows: the route's `ttl` (default) or the origin's
    /// (`ttl: origin`).
    public var mode: CacheMode
    /// With ``CacheMode/forcedTTL``: the TTL of a stored 200 response (`ttl`, > 0).
    /// With ``CacheMode/origin(_:)``: the longest freshness the origin may give (`max_ttl`,
    /// > 0, default 24h), so that Redis never holds a route's entries longer than its settings say.
    public var ttl: Duration
    /// Other statuses that are stored, each with its own TTL (`ttl_by_status`; never contains 200).
    /// Empty in origin mode, where ``OriginModeSettings/statuses`` lists what may be stored.
    public var ttlByStatus: [Int: Duration]
    /// Allow-listed query parameter names that are part of the key, sorted, without duplicates.
    public var query: [String]
    /// What to do with other query parameters.
    public var unlistedQuery: UnlistedQueryPolicy
    /// Public routes only: whether requests with `Authorization` or `Cookie` may be answered from
    /// the shared cache (otherwise they go upstream uncached). Always false on per_user routes.
    public var allowAuthorized: Bool
    /// Set exactly on per_user routes.
    public var identity: IdentitySource?
    /// Larger responses are served but not stored (route `max_body_size` or `cache.max_body_size`).
    public var maxBodySize: Int
    /// How long a coalesced waiter waits for the leader (route `max_wait` or `cache.max_wait`).
    public var maxWait: Duration
    /// Whether the Host header is part of the key (route `key_host` or `cache.key_host`).
    public var keyHost: Bool
    /// Lowercased names of the client headers a fill forwards (route `forward_headers` or
    /// `cache.forward_headers`); see ``GatewayConfig/Cache/forwardHeaders``.
    public var forwardHeaders: Set<String>
    /// Stale windows, hit-for-miss, waiter cap, Redis-down policy (route keys or `cache:`'s).
    public var freshness: FreshnessSettings
    /// Lowercased request headers a response may vary on and still be stored, one variant per
    /// combination (`vary_headers`, default accept-encoding, accept, accept-language).
    public var varyHeaders: Set<String>
    /// Variants stored per key; beyond, a new variant is served but not stored
    /// (`max_variants`, 1–1000, default 8).
    public var maxVariants: Int
    /// Tags every entry of the route carries (`tags`), with `{name}` filled from the path's
    /// captures: `["user:{user}", "catalog"]`.
    public var tags: [String] = []
    /// A response header that lists more tags, space or comma separated (`tags_header`, e.g.
    /// `Surrogate-Key`, `Cache-Tag`, `xkey`), lowercased; nil: none.
    public var tagsHeader: String?
    /// Whether clients see that header (`expose_tags_header`, default false: it names internals).
    public var exposeTagsHeader = false

    public init(
        mode: CacheMode = .forcedTTL, ttl: Duration, ttlByStatus: [Int: Duration] = [:], query: [String] = [],
        unlistedQuery: UnlistedQueryPolicy = .strip, allowAuthorized: Bool = false,
        identity: IdentitySource? = nil, maxBodySize: Int = 1 << 20, maxWait: Duration = .seconds(5),
        keyHost: Bool = false, forwardHeaders: Set<String> = [], freshness: FreshnessSettings = FreshnessSettings(),
        varyHeaders: Set<String> = ["accept-encoding", "accept", "accept-language"], maxVariants: Int = 8,
        tags: [String] = [], tagsHeader: String? = nil, exposeTagsHeader: Bool = false
    ) {
        self.tags = tags
        self.tagsHeader = tagsHeader
        self.exposeTagsHeader = exposeTagsHeader
        self.freshness = freshness
        self.varyHeaders = varyHeaders
        self.maxVariants = maxVariants
        self.mode = mode
        self.ttl = ttl
        self.ttlByStatus = ttlByStatus
        self.query = query
        self.unlistedQuery = unlistedQuery
        self.allowAuthorized = allowAuthorized
        self.identity = identity
        self.maxBodySize = maxBodySize
        self.maxWait = maxWait
        self.keyHost = keyHost
        self.forwardHeaders = forwardHeaders
    }

    /// The TTL for a response with this status, or nil when such responses are not stored:
    /// 200 uses ``ttl``, statuses in ``ttlByStatus`` their own, everything else is not cached.
    /// In origin mode: ``ttl`` (the ceiling) for a status that may be stored.
    public func ttl(forStatus status: Int) -> Duration? {
        if case .origin(let origin) = mode { return origin.statuses.contains(status) ? ttl : nil }
        return status == 200 ? ttl : ttlByStatus[status]
    }
}

/// Whose clock a route's entries follow.
public enum CacheMode: Sendable, Equatable {
    /// `ttl: <duration>` (default): the route's TTL is the lifetime; the origin may only shorten
    /// it (`max-age`, `s-maxage`) or forbid storing (`no-store`, `private`, `no-cache`), and a
    /// response without any freshness information is stored for the full TTL.
    case forcedTTL
    /// `ttl: origin`: the origin's freshness (RFC 9111 §4.2) decides, see ``OriginFreshness``.
    case origin(OriginModeSettings)
}

/// The settings of a route with `ttl: origin`.
public struct OriginModeSettings: Sendable, Equatable {
    /// Statuses that may be stored when the origin gives them freshness: 200 and the keys of the
    /// route's `ttl_by_status` (whose values must be `origin`).
    public var statuses: Set<Int>
    /// Whether a response without explicit freshness gets a heuristic one (RFC 9111 §4.2.2: 10%
    /// of the time since `Last-Modified`, at most the route's `max_ttl`). `heuristic`, default false.
    public var heuristic: Bool

    public init(statuses: Set<Int> = [200], heuristic: Bool = false) {
        self.statuses = statuses.union([200])
        self.heuristic = heuristic
    }
}
