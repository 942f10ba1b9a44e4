import GatewayHTTP

/// The freshness of a response on a route with `ttl: origin`: RFC 9111 §4.2 for a shared cache,
/// with RFC 5861's stale windows and RFC 9213's `CDN-Cache-Control`. Pure: headers and a clock in,
/// a decision out.
///
/// The rules, in order:
/// 1. `no-store` and `private` (from ``ResponseDirectives``, so `CDN-Cache-Control` first): not stored.
/// 2. Only 200 and the statuses the route lists (`ttl_by_status: { 404: origin }`) are stored.
/// 3. A request that carried `Authorization` to the origin (on a public route) is stored only with
///    `public`, `s-maxage` or `must-revalidate` (§3.5). per_user entries are never shared, so the
///    rule does not apply there.
/// 4. Freshness lifetime: `s-maxage`, else `max-age`, else `Expires` − `Date` (`Date` absent: the
///    time received); an invalid value means 0 (stale). Without any of them: a heuristic lifetime
///    if the route has `heuristic: true` (10% of `Date` − `Last-Modified`), else not stored. The
///    lifetime is capped by the route's `max_ttl`.
/// 5. Initial age (§4.2.3, simplified): max(`Age`, now − `Date`), `Date` used only if it parses.
///    What is left of the lifetime is the entry's freshness; the entry's `storedAt` is set back by
///    the initial age so that the `Age` it is served with counts from the origin's.
/// 6. `no-cache`: stored, but with no freshness: every reuse revalidates (conditional fetch).
/// 7. Stale windows: `no-cache`, `must-revalidate` and `proxy-revalidate` forbid serving stale at
///    all. Otherwise each window (`stale-while-revalidate`, `stale-if-error`) is the origin's
///    directive capped by the route's own window; without a directive it is the route's window
///    (the operator's configured grace, RFC 9111 §4.2.4), except that `s-maxage` implies
///    `proxy-revalidate` (§5.2.2.10) and so removes the route's grace (the origin's explicit RFC
///    5861 directive still applies, capped). A route window of 0 means no stale serving, whatever
///    the origin says.
/// 8. A response with no freshness left and no stale window is stored only if it has a validator
///    (`ETag` or `Last-Modified`), to make the next fetch conditional; it is then kept for the
///    route's `keep`, or its `max_ttl` when `keep` is 0.
public enum OriginFreshness {
    /// What the origin allows, in milliseconds.
    public struct Lifetime: Sendable, Equatable {
        /// The freshness lifetime (after the route's cap), from the response's generation.
        public var freshnessLifetime: Int64
        /// The response's age when it reached the gateway.
        public var initialAge: Int64
        public var staleWhileRevalidate: Int64
        public var staleIfError: Int64
        /// `must-revalidate`, `proxy-revalidate` or `no-cache`: never served stale.
        public var mustRevalidate: Bool
        /// `no-cache`: stored, revalidated before every reuse.
        public var noCache: Bool
        /// The lifetime is heuristic (RFC 9111 §4.2.2).
        public var heuristic: Bool

        /// What is left of the freshness on arrival (0 with `no-cache`).
        public var remaining: Int64 { noCache ? 0 : max(0, freshnessLifetime - initialAge) }

        public init(
            freshnessLifetime: Int64, initialAge: Int64 = 0, staleWhileRevalidate: Int64 = 0, staleIfError: Int64 = 0,
            mustRevalidate: Bool = false, noCache: Bool = false, heuristic: Bool = false
        ) {
            self.freshnessLifetime = freshnessLifetime
            self.initialAge = initialAge
            self.staleWhileRevalidate = staleWhileRevalidate
            self.staleIfError = staleIfError
            self.mustRevalidate = mustRevalidate
            self.noCache = noCache
            self.heuristic = heuristic
        }

        /// The entry's deadlines when stored at `now`, and how long Redis keeps it.
        /// - Parameters:
        ///   - keep: the route's `keep` (validators kept after the stale windows).
        ///   - ceiling: the route's `max_ttl`, the hold of an entry kept only for its validators
        ///     when `keep` is 0.
        public func windows(now: UInt64, keep: Duration, ceiling: Duration) -> EntryWindows {
            let fresh = UInt64(remaining)
            let swr = UInt64(max(0, staleWhileRevalidate)), sie = UInt64(max(0, staleIfError))
            var hold = max(swr, sie, UInt64(max(0, keep.wholeMilliseconds)))
            if fresh == 0 && hold == 0 { hold = UInt64(max(1, ceiling.wholeMilliseconds)) }
            let expiresAt = now + fresh
            let age = UInt64(max(0, initialAge))
            return EntryWindows(
                storedAt: now > age ? now - age : 0, expiresAt: expiresAt, staleWhileRevalidateUntil: expiresAt + swr,
                staleIfErrorUntil: expiresAt + sie, redisTTL: Int(max(1, fresh + hold)))
        }
    }

    public enum Decision: Sendable, Equatable {
        /// Not stored; the reason is a short constant for `Cache-Status`.
        case notStorable(reason: String)
        case storable(Lifetime)
    }

    /// Statuses that may get a heuristic lifetime (RFC 9110 §15.1).
    public static let heuristicallyCacheable: Set<Int> = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]
    /// The share of the time since `Last-Modified` a heuristic lifetime takes (RFC 9111 §4.2.2).
    public static let heuristicFraction: Int64 = 10

    /// Decides whether a response on an origin-mode route may be stored, and for how long.
    /// - Parameters:
    ///   - status: the response's status.
    ///   - headers: the response's fields.
    ///   - requestHasAuthorization: whether the request the origin answered carried `Authorization`.
    ///   - now: the time the response was received, milliseconds since 1970.
    ///   - settings: the route's settings (``CacheMode/origin(_:)``, `max_ttl` in ``RouteCacheSettings/ttl``,
    ///     the stale windows and `keep` in ``RouteCacheSettings/freshness``).
    ///   - routeClass: per_user routes are exempt from the `Authorization` rule and may store `private`.
    public static func evaluate(
        status: Int, headers: HTTPHeaders, requestHasAuthorization: Bool, now: UInt64,
        settings: RouteCacheSettings, routeClass: RouteClass = .public
    ) -> Decision {
        let origin: OriginModeSettings
        if case .origin(let o) = settings.mode { origin = o } else { origin = OriginModeSettings() }
        let d = ResponseDirectives(headers)
        let shared = routeClass != .perUser
        if d.noStore { return .notStorable(reason: "no-store") }
        if d.isPrivate && shared { return .notStorable(reason: "private") }
        guard origin.statuses.contains(status) else { return .notStorable(reason: "status") }
        if requestHasAuthorization && shared && !(d.isPublic || d.sMaxAge != nil || d.mustRevalidate) {
            return .notStorable(reason: "authorization")
        }

        let nowSeconds = Int64(now / 1000)
        let date = headers["Date"].flatMap(HTTPDate.parse)
        var heuristic = false
        var lifetime: Int64  // ms
        if let seconds = d.sMaxAge ?? d.maxAge {
            lifetime = Int64(seconds) * 1000
        } else if let expires = d.expires {
            lifetime = expires == .min ? 0 : max(0, expires - (date ?? nowSeconds)) * 1000
        } else if origin.heuristic, heuristicallyCacheable.contains(status) || d.isPublic,
            let modified = headers["Last-Modified"].flatMap(HTTPDate.parse)
        {
            heuristic = true
            lifetime = max(0, (date ?? nowSeconds) - modified) * 1000 / heuristicFraction
        } else if d.noCache {
            lifetime = 0  // revalidated before every reuse anyway
        } else {
            return .notStorable(reason: "no-freshness")
        }
        lifetime = min(lifetime, settings.ttl.wholeMilliseconds)

        let ageHeader = Self.ageHeader(headers).map { Int64($0) * 1000 } ?? 0
        let apparentAge = date.map { max(0, Int64(now) - $0 * 1000) } ?? 0
        let initialAge = max(ageHeader, apparentAge)

        let mustRevalidate = d.noCache || d.mustRevalidate || d.proxyRevalidate
        func window(_ directive: Int?, route: Duration) -> Int64 {
            if mustRevalidate { return 0 }
            let configured = max(0, route.wholeMilliseconds)
            if let directive { return min(Int64(directive) * 1000, configured) }
            return d.sMaxAge != nil ? 0 : configured
        }
        let result = Lifetime(
            freshnessLifetime: lifetime, initialAge: initialAge,
            staleWhileRevalidate: window(d.staleWhileRevalidate, route: settings.freshness.staleWhileRevalidate),
            staleIfError: window(d.staleIfError, route: settings.freshness.staleIfError),
            mustRevalidate: mustRevalidate, noCache: d.noCache, heuristic: heuristic)
        if result.remaining == 0 && result.staleWhileRevalidate == 0 && result.staleIfError == 0
            && !headers.contains("ETag") && !headers.contains("Last-Modified")
        {
            return .notStorable(reason: d.noCache ? "no-cache" : "stale")
        }
        return .storable(result)
    }

    /// The `Age` field's seconds (RFC 9111 §5.1): a non-negative integer, capped at 2^31; an
    /// invalid one is ignored.
    static func ageHeader(_ headers: HTTPHeaders) -> Int? {
        guard let text = headers["Age"]?.trimmingSpaces(), !text.isEmpty,
            text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
        else { return nil }
        if text.drop(while: { $0 == "0" }).count > 10 { return ResponseDirectives.deltaSecondsCeiling }
        return min(Int(text) ?? 0, ResponseDirectives.deltaSecondsCeiling)
    }
}
