import GatewayHTTP

/// What to do with an upstream response fetched for a cached route.
public enum StoreDecision: Sendable, Equatable {
    /// Store it for this long, and hand it to every waiter.
    case store(ttl: Duration)
    /// Do not store it, but it is the same for everyone who asked: hand it to the waiters.
    case shareOnly(reason: String)
    /// Do not store it and do not hand it to anyone else: it may be personal (`Set-Cookie`,
    /// `private`), or it belongs to one user. Each waiter fetches for itself.
    case doNotShare(reason: String)
}

/// The rules that decide whether a response may be stored (RFC 9111 §3, for a shared cache that
/// the operator configured per route). The directives come from ``ResponseDirectives``:
/// `CDN-Cache-Control` when it is valid, else `Cache-Control`, in both route modes.
public enum CachePolicy {
    /// The decision alone (``plan(status:headers:bodyCount:completeByFraming:requestHasAuthorization:routeClass:settings:now:)``
    /// without a clock; in forced-TTL mode the TTL does not depend on one).
    public static func decide(
        status: Int, headers: HTTPHeaders, bodyCount: Int, completeByFraming: Bool,
        routeClass: RouteClass, settings: RouteCacheSettings
    ) -> StoreDecision {
        plan(status: status, headers: headers, bodyCount: bodyCount, completeByFraming: completeByFraming,
             requestHasAuthorization: false, routeClass: routeClass, settings: settings, now: 0).decision
    }

    /// Whether a fetched response is stored, and if so the entry's clock.
    ///
    /// Both modes: `Set-Cookie`, `no-store` and (on public routes) `private` make it personal;
    /// `Vary` on anything the key does not hold, an unframed body or one above `max_body_size`
    /// keep it out of the cache but shared with the waiters.
    /// - Forced TTL (``CacheMode/forcedTTL``): the status's TTL from the route, shortened by
    ///   `s-maxage`/`max-age` minus the origin's `Age`; `no-cache`, `max-age=0` (or an invalid
    ///   one) and a response already older than its `max-age` are not stored. Without any
    ///   freshness information the response is stored for the full TTL.
    /// - Origin (``CacheMode/origin(_:)``): ``OriginFreshness/evaluate(status:headers:requestHasAuthorization:now:settings:routeClass:)``.
    ///
    /// In both modes the entry's `storedAt` is set back by the origin's `Age` (origin mode: the
    /// corrected initial age), so the `Age` it is served with goes on from the origin's.
    /// - Parameters:
    ///   - requestHasAuthorization: whether the fill sent `Authorization` (origin mode, §3.5).
    ///   - now: when the response arrived, milliseconds since 1970.
    public static func plan(
        status: Int, headers: HTTPHeaders, bodyCount: Int, completeByFraming: Bool,
        requestHasAuthorization: Bool, routeClass: RouteClass, settings: RouteCacheSettings, now: UInt64
    ) -> StorePlan {
        let perUser = routeClass == .perUser
        func refuse(_ decision: StoreDecision) -> StorePlan { StorePlan(decision: decision, windows: .none(at: now)) }
        // Personal answers first: never stored, never shared, whatever else is true.
        if headers.contains("Set-Cookie") { return refuse(.doNotShare(reason: "set-cookie")) }
        let directives = ResponseDirectives(headers)
        if directives.noStore { return refuse(.doNotShare(reason: "no-store")) }
        // `private` forbids shared caches; a per_user entry is only ever served to its own user.
        if directives.isPrivate && !perUser { return refuse(.doNotShare(reason: "private")) }
        // A response that varies on headers the route allows is stored as a variant (the caller
        // asks ``Variants/plan(varied:settings:routeClass:)`` for which); on anything else one
        // variant could be served for another.
        if Variants.plan(varied: HeaderRules.vary(headers), settings: settings, routeClass: routeClass) == .unstorable {
            return refuse(perUser ? .doNotShare(reason: "vary") : .shareOnly(reason: "vary"))
        }
        func notStored(_ reason: String) -> StorePlan {
            refuse(perUser ? .doNotShare(reason: reason) : .shareOnly(reason: reason))
        }

        if case .origin = settings.mode {
            if !completeByFraming { return notStored("unframed") }
            if bodyCount > settings.maxBodySize { return notStored("too-large") }
            switch OriginFreshness.evaluate(
                status: status, headers: headers, requestHasAuthorization: requestHasAuthorization, now: now,
                settings: settings, routeClass: routeClass)
            {
            case .notStorable(let reason):
                return notStored(reason)
            case .storable(let lifetime):
                let windows = lifetime.windows(now: now, keep: settings.freshness.keep, ceiling: settings.ttl)
                return StorePlan(decision: .store(ttl: .milliseconds(lifetime.remaining)), windows: windows)
            }
        }

        guard var ttl = settings.ttl(forStatus: status) else { return notStored("status") }
        if directives.noCache { return notStored("no-cache") }
        if !completeByFraming { return notStored("unframed") }
        if bodyCount > settings.maxBodySize { return notStored("too-large") }
        // The origin may shorten, never lengthen, the operator's TTL: by what is left of its own.
        let age = OriginFreshness.ageHeader(headers) ?? 0
        if let maxAge = directives.sMaxAge ?? directives.maxAge {
            if maxAge <= 0 { return notStored("max-age=0") }
            if maxAge <= age { return notStored("stale") }
            ttl = min(ttl, .seconds(maxAge - age))
        }
        var windows = EntryWindows(ReadThrough.windows(ttl: ttl, freshness: settings.freshness, now: now))
        let ageMilliseconds = UInt64(age) * 1000
        windows.storedAt = now > ageMilliseconds ? now - ageMilliseconds : 0
        return StorePlan(decision: .store(ttl: ttl), windows: windows)
    }

    /// The clock of an entry revalidated by a 304 (RFC 9111 §4.3.4): `headers` are the stored
    /// ones updated with the 304's, `notModified` the 304's own (for its `Age`). The same rules as
    /// a fresh store; if they no longer allow storing, the entry is renewed without freshness and
    /// dropped from Redis at once.
    public static func renewal(
        status: Int, headers: HTTPHeaders, notModified: HTTPHeaders, requestHasAuthorization: Bool,
        routeClass: RouteClass, settings: RouteCacheSettings, now: UInt64
    ) -> EntryWindows {
        var merged = headers
        merged.remove(name: "Age")
        if let age = notModified["Age"] { merged.add(name: "Age", value: age) }
        let result = plan(
            status: status, headers: merged, bodyCount: 0, completeByFraming: true,
            requestHasAuthorization: requestHasAuthorization, routeClass: routeClass, settings: settings, now: now)
        if case .store = result.decision { return result.windows }
        return .none(at: now)
    }
}

/// A store decision with the entry's clock.
public struct StorePlan: Sendable, Equatable {
    public var decision: StoreDecision
    /// Meaningful when ``decision`` is ``StoreDecision/store(ttl:)``.
    public var windows: EntryWindows
}

/// A stored entry's clock, milliseconds since 1970, and how long Redis keeps it.
public struct EntryWindows: Sendable, Equatable {
    /// When `Age` counts from: the store, set back by the origin's `Age`.
    public var storedAt: UInt64
    public var expiresAt: UInt64
    public var staleWhileRevalidateUntil: UInt64
    public var staleIfErrorUntil: UInt64
    /// Redis `PX`, ≥ 1.
    public var redisTTL: Int

    public init(storedAt: UInt64, expiresAt: UInt64, staleWhileRevalidateUntil: UInt64, staleIfErrorUntil: UInt64, redisTTL: Int) {
        self.storedAt = storedAt
        self.expiresAt = expiresAt
        self.staleWhileRevalidateUntil = staleWhileRevalidateUntil
        self.staleIfErrorUntil = staleIfErrorUntil
        self.redisTTL = redisTTL
    }

    init(_ w: (expiresAt: UInt64, staleWhileRevalidateUntil: UInt64, staleIfErrorUntil: UInt64, redisTTL: Int)) {
        self.init(storedAt: 0, expiresAt: w.expiresAt, staleWhileRevalidateUntil: w.staleWhileRevalidateUntil,
                  staleIfErrorUntil: w.staleIfErrorUntil, redisTTL: w.redisTTL)
    }

    /// No freshness and no stale window: stale at once, gone from Redis almost at once.
    static func none(at now: UInt64) -> EntryWindows {
        EntryWindows(storedAt: now, expiresAt: now, staleWhileRevalidateUntil: now, staleIfErrorUntil: now, redisTTL: 1)
    }
}

/// The leader's request, seen through a response's `Vary`: the values of every field the
/// response varies on. A waiter may be handed that response only if its own request has the
/// same values, field for field (absent matches only absent); otherwise it would get an
/// answer chosen for someone else's `Authorization`, `Cookie` or `Accept-Language`.
package struct VaryMatch: Sendable, Equatable {
    /// Lowercased field names and the leader's values joined with ", " (nil: absent), compared
    /// with the waiter's own request headers byte for byte.
    let fields: [(name: String, value: String?)]
    /// For a stored variant: the leader's selector (``Variants/selector(_:in:)``), compared with
    /// the waiter's, both computed from what each would forward upstream.
    let variant: (names: [String], selector: String)?

    package init(_ names: [String], in headers: HTTPHeaders) {
        fields = names.map { ($0, Self.value($0, in: headers)) }
        variant = nil
    }

    package init(variantOf names: [String], fill: [(name: String, value: String)]) {
        fields = []
        variant = (names, Variants.selector(names, in: fill))
    }

    /// Whether a waiter whose request has `headers` and whose fill would send `fill` may be
    /// handed the leader's response.
    package func matches(_ headers: HTTPHeaders, fill: [(name: String, value: String)] = []) -> Bool {
        if let variant { return Variants.selector(variant.names, in: fill) == variant.selector }
        return fields.allSatisfy { Self.value($0.name, in: headers) == $0.value }
    }

    private static func value(_ name: String, in headers: HTTPHeaders) -> String? {
        let values = headers.values(name)
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }

    package static func == (a: VaryMatch, b: VaryMatch) -> Bool {
        a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
            && a.variant?.names == b.variant?.names && a.variant?.selector == b.variant?.selector
    }
}
