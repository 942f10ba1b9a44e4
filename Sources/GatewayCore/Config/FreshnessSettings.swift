/// How long a stored entry may be used after its TTL, and what the read-through does when a key
/// cannot be stored or Redis fails: the freshness model of a cached route. The same keys sit in
/// `cache:` (defaults) and on each route (overrides).
public struct FreshnessSettings: Sendable, Equatable {
    /// After the TTL, the entry is served at once while one background request refreshes it
    /// (Varnish's grace, nginx's `proxy_cache_background_update`). `stale_while_revalidate`, ≥ 0,
    /// default 0s (off).
    public var staleWhileRevalidate: Duration
    /// After the TTL, the entry stands in for an upstream failure: refused, timed out, truncated,
    /// queue full, or a status in ``staleIfErrorStatuses`` (nginx's `proxy_cache_use_stale`).
    /// `stale_if_error`, ≥ 0, default 0s (off).
    public var staleIfError: Duration
    /// Upstream statuses treated as a failure for ``staleIfError``.
    /// `stale_if_error_statuses`, default [500, 502, 503, 504].
    public var staleIfErrorStatuses: Set<Int>
    /// After the TTL and both stale windows, the entry is still kept this long for its validators:
    /// a refresh sends `If-None-Match`/`If-Modified-Since`, and a 304 renews it without a body.
    /// `keep`, ≥ 0, default 0s.
    public var keep: Duration
    /// When a key's answer turns out not storable, requests for it skip coalescing this long and
    /// go upstream in parallel (Varnish's hit-for-miss). `uncacheable_ttl`, ≥ 0, default 30s.
    public var uncacheableTTL: Duration
    /// Requests that may wait behind one fetch; beyond, a request gets the stale entry if there is
    /// one, else a 503. `max_waiters`, 1–1,000,000, default 10,000.
    public var maxWaiters: Int
    /// What a request gets when Redis cannot be read. `on_store_error`, default `origin`.
    public var onStoreError: StoreErrorPolicy

    public init(
        staleWhileRevalidate: Duration = .zero, staleIfError: Duration = .zero,
        staleIfErrorStatuses: Set<Int> = [500, 502, 503, 504], keep: Duration = .zero,
        uncacheableTTL: Duration = .seconds(30), maxWaiters: Int = 10_000, onStoreError: StoreErrorPolicy = .origin
    ) {
        self.staleWhileRevalidate = staleWhileRevalidate
        self.staleIfError = staleIfError
        self.staleIfErrorStatuses = staleIfErrorStatuses
        self.keep = keep
        self.uncacheableTTL = uncacheableTTL
        self.maxWaiters = maxWaiters
        self.onStoreError = onStoreError
    }
}

/// What a request on a cached route gets when Redis cannot be read.
public enum StoreErrorPolicy: String, Sendable, Hashable, CaseIterable {
    /// Served from upstream, still coalesced and behind `upstream.max_connections`.
    case origin
    /// 503: for routes whose traffic the monolith must never see, even during a cache outage.
    case fail
}
