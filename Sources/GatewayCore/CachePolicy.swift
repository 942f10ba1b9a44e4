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
/// the operator configured per route).
public enum CachePolicy {
    public static func decide(
        status: Int, headers: HTTPHeaders, bodyCount: Int, completeByFraming: Bool,
        routeClass: RouteClass, settings: RouteCacheSettings
    ) -> StoreDecision {
        let perUser = routeClass == .perUser
        // Personal answers first: never stored, never shared, whatever else is true.
        if headers.contains("Set-Cookie") { return .doNotShare(reason: "set-cookie") }
        let directives = HeaderRules.cacheControl(headers)
        if directives["no-store"] != nil { return .doNotShare(reason: "no-store") }
        // `private` forbids shared caches; a per_user entry is only ever served to its own user.
        if directives["private"] != nil && !perUser { return .doNotShare(reason: "private") }
        // A response that varies on headers the route allows is stored as a variant (the caller
        // asks ``Variants/plan(varied:settings:routeClass:)`` for which); on anything else one
        // variant could be served for another.
        if Variants.plan(varied: HeaderRules.vary(headers), settings: settings, routeClass: routeClass) == .unstorable {
            return perUser ? .doNotShare(reason: "vary") : .shareOnly(reason: "vary")
        }
        func notStored(_ reason: String) -> StoreDecision {
            perUser ? .doNotShare(reason: reason) : .shareOnly(reason: reason)
        }
        guard var ttl = settings.ttl(forStatus: status) else { return notStored("status") }
        if directives["no-cache"] != nil { return notStored("no-cache") }
        if !completeByFraming { return notStored("unframed") }
        if bodyCount > settings.maxBodySize { return notStored("too-large") }
        // The origin may shorten, never lengthen, the operator's TTL.
        if let maxAge = (directives["s-maxage"] ?? directives["max-age"]).flatMap({ Int($0) }) {
            if maxAge <= 0 { return notStored("max-age=0") }
            ttl = min(ttl, .seconds(maxAge))
        }
        return .store(ttl: ttl)
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
