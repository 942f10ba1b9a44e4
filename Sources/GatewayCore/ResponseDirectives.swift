import GatewayHTTP

/// The caching directives the gateway obeys for one response: those of `CDN-Cache-Control`
/// (RFC 9213) when it holds a valid, non-empty Structured Fields dictionary, else those of
/// `Cache-Control` (RFC 9111 §5.2.2) and `Expires`.
///
/// RFC 9213 §2.2: a cache that uses a targeted field ignores `Cache-Control` and `Expires` in
/// that response; a targeted field that is empty or does not parse is ignored as if absent (the
/// gateway then falls back to `Cache-Control`). Within `CDN-Cache-Control`, a directive whose
/// value has the wrong type (`max-age=1.5`, `max-age="60"`) is not consumed (§2.1): a flag that is
/// `?0` is off, a delta-seconds that is not a non-negative integer is ignored.
///
/// Within `Cache-Control`, an invalid delta-seconds (`max-age=abc`, `max-age=-1`) or two
/// different values for the same directive mean "stale" (RFC 9111 §1.2.2, §4.2.1): the value
/// is read as 0. Values above 2^31 are read as 2^31.
package struct ResponseDirectives: Sendable, Equatable {
    package enum Source: Sendable, Equatable {
        case cdnCacheControl
        case cacheControl
    }

    /// Where the directives came from.
    package var source: Source
    package var noStore = false
    /// `private` (with or without field names: the whole response is treated as private).
    package var isPrivate = false
    /// `no-cache` (with or without field names: the whole response must be revalidated).
    package var noCache = false
    package var isPublic = false
    package var mustRevalidate = false
    package var proxyRevalidate = false
    /// Seconds; 0 when the origin sent an invalid value.
    package var maxAge: Int?
    package var sMaxAge: Int?
    /// RFC 5861 windows, seconds.
    package var staleWhileRevalidate: Int?
    package var staleIfError: Int?
    /// `Expires` (seconds since 1970, or `.min` when present but invalid, which means "already
    /// expired", RFC 9111 §5.3); nil when absent or when `CDN-Cache-Control` is used.
    package var expires: Int64?

    /// Any explicit freshness: `s-maxage`, `max-age` or `Expires`.
    package var hasExplicitFreshness: Bool { sMaxAge != nil || maxAge != nil || expires != nil }

    /// The ceiling for delta-seconds (RFC 9111 §1.2.2).
    package static let deltaSecondsCeiling = 2_147_483_648

    package init(_ headers: HTTPHeaders) {
        let targeted = headers.values("CDN-Cache-Control")
        if !targeted.isEmpty, let members = StructuredFieldDictionary.parse(targeted), !members.isEmpty {
            self.init(cdn: members)
        } else {
            self.init(cacheControl: headers)
        }
    }

    private init(cdn members: [(key: String, value: StructuredFieldDictionary.Item)]) {
        source = .cdnCacheControl
        func flag(_ name: String) -> Bool {
            guard let item = members.first(where: { $0.key == name })?.value else { return false }
            return item != .boolean(false)
        }
        func seconds(_ name: String) -> Int? {
            guard case .integer(let value)? = members.first(where: { $0.key == name })?.value, value >= 0 else { return nil }
            return Int(min(value, Int64(Self.deltaSecondsCeiling)))
        }
        noStore = flag("no-store")
        isPrivate = flag("private")
        noCache = flag("no-cache")
        isPublic = flag("public")
        mustRevalidate = flag("must-revalidate")
        proxyRevalidate = flag("proxy-revalidate")
        maxAge = seconds("max-age")
        sMaxAge = seconds("s-maxage")
        staleWhileRevalidate = seconds("stale-while-revalidate")
        staleIfError = seconds("stale-if-error")
    }

    private init(cacheControl headers: HTTPHeaders) {
        source = .cacheControl
        var values: [String: [String?]] = [:]
        for line in headers.values("Cache-Control") {
            for part in Self.splitOutsideQuotes(line) {
                let item = part.trimmingSpaces()
                if item.isEmpty { continue }
                if let eq = item.firstIndex(of: "=") {
                    var v = item[item.index(after: eq)...].trimmingSpaces()
                    if v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
                    values[item[..<eq].trimmingSpaces().lowercased(), default: []].append(v)
                } else {
                    values[item.lowercased(), default: []].append(nil)
                }
            }
        }
        func seconds(_ name: String) -> Int? {
            guard let all = values[name] else { return nil }
            // Two different values: stale (RFC 9111 §4.2.1 allows "first" or "stale").
            guard Set(all.map { $0 ?? "" }).count == 1, let text = all[0], !text.isEmpty,
                text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
            else { return 0 }
            let digits = text.drop { $0 == "0" }
            if digits.count > 10 { return Self.deltaSecondsCeiling }
            return min(Int(digits) ?? 0, Self.deltaSecondsCeiling)
        }
        /// RFC 5861 windows are permissions, not limits: an invalid one is ignored, not zero.
        func window(_ name: String) -> Int? {
            guard let all = values[name], Set(all.map { $0 ?? "" }).count == 1, let text = all[0],
                !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
            else { return nil }
            return text.count > 10 ? Self.deltaSecondsCeiling : min(Int(text) ?? 0, Self.deltaSecondsCeiling)
        }
        noStore = values["no-store"] != nil
        isPrivate = values["private"] != nil
        noCache = values["no-cache"] != nil
        isPublic = values["public"] != nil
        mustRevalidate = values["must-revalidate"] != nil
        proxyRevalidate = values["proxy-revalidate"] != nil
        maxAge = seconds("max-age")
        sMaxAge = seconds("s-maxage")
        staleWhileRevalidate = window("stale-while-revalidate")
        staleIfError = window("stale-if-error")
        let expiresLines = headers.values("Expires")
        if !expiresLines.isEmpty {
            // More than one, or one that is not an IMF-fixdate: already expired.
            expires = expiresLines.count == 1 ? HTTPDate.parse(expiresLines[0]) ?? .min : .min
        }
    }

    /// Splits a Cache-Control line at commas that are not inside a quoted string
    /// (`private="set-cookie, x-user"` is one directive).
    private static func splitOutsideQuotes(_ line: String) -> [Substring] {
        var parts: [Substring] = []
        var start = line.startIndex
        var quoted = false
        var escaped = false
        for index in line.indices {
            let c = line[index]
            if escaped { escaped = false; continue }
            if quoted && c == "\\" { escaped = true; continue }
            if c == "\"" { quoted.toggle() }
            if c == "," && !quoted {
                parts.append(line[start..<index])
                start = line.index(after: index)
            }
        }
        parts.append(line[start...])
        return parts
    }
}
