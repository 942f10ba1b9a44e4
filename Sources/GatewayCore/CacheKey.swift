import GatewayHTTP

/// The parts of a request that decide which cached response answers it, and the Redis key
/// built from them.
///
/// Every part is length-prefixed into one SHA-256, so two different inputs can never produce the
/// same key (no separator to smuggle into a path or a parameter), keys have a fixed length
/// whatever the URL, and an identity appears only as a digest of a digest.
public struct CacheKey: Sendable, Equatable {
    /// The full Redis key: `<prefix>e:<route>:<64 hex digits>` (see ``KeySpace``).
    public let redisKey: String

    /// - Parameter query: The allow-listed query pieces exactly as forwarded (`page=2`, `page`,
    ///   `page=`), in forwarding order.
    public init(
        prefix: String, route: String, host: String?, path: String,
        query: [String], identityDigest: [UInt8]?
    ) {
        var h = SHA256()
        h.updateLengthPrefixed("cachegateway-key-v2".utf8)
        // GET and HEAD share entries; other methods are never cached.
        h.updateLengthPrefixed("GET".utf8)
        h.updateLengthPrefixed((host ?? "").utf8)
        h.updateLengthPrefixed(path.utf8)
        h.updateLengthPrefixed(String(query.count).utf8)
        for piece in query { h.updateLengthPrefixed(piece.utf8) }
        h.updateLengthPrefixed(identityDigest ?? [])
        redisKey = KeySpace.entryKey(prefix: prefix, route: route, digestHex: SHA256.hex(h.finalize()))
    }

    /// The digest that stands for a user's identity (a header value or a cookie value): the raw
    /// credential is hashed once here and never stored or logged.
    public static func identityDigest(_ credential: String) -> [UInt8] {
        var h = SHA256()
        h.updateLengthPrefixed("cachegateway-identity-v1".utf8)
        h.updateLengthPrefixed(credential.utf8)
        return h.finalize()
    }
}

/// The gateway's namespaces in Redis. Each starts with its own fixed tag right after the
/// configured prefix, so no route name (routes are `[A-Za-z0-9_-]+`, no `:`) can make one
/// namespace's keys or SCAN patterns reach into another's.
public struct KeySpace: Sendable {
    public let prefix: String
    public init(prefix: String) { self.prefix = prefix }

    /// Every entry, of every route: `<prefix>e:` (what the in-process tier's tracking watches).
    public var entryNamespace: String { prefix + "e:" }

    /// Entries of one route: `<prefix>e:<route>:`.
    public func entryPrefix(route: String) -> String { prefix + "e:" + route + ":" }

    /// One entry's key, `entryPrefix(route:)` followed by the digest's hex, built in one string
    /// of the right capacity: every request makes one, and the chain of `+` allocated each
    /// intermediate that outgrew a small string.
    static func entryKey(prefix: String, route: String, digestHex: String) -> String {
        var key = ""
        key.reserveCapacity(prefix.utf8.count + route.utf8.count + 3 + digestHex.utf8.count)
        key += prefix
        key += "e:"
        key += route
        key += ":"
        key += digestHex
        return key
    }

    /// The set listing the entries stored for one request path: `<prefix>i:<path>`, the path as
    /// sent, so that a prefix purge can find the paths under a prefix with SCAN.
    public func pathIndex(path: String) -> String { prefix + "i:" + path }

    /// The path a path index is for, or nil if `key` is not one.
    public func path(ofIndex key: String) -> String? {
        let head = prefix + "i:"
        return key.hasPrefix(head) ? String(key.dropFirst(head.count)) : nil
    }

    /// The sorted set of the entries carrying a tag, scored by when each expires:
    /// `<prefix>t:<tag>`.
    public func tagIndex(tag: String) -> String { prefix + "t:" + tag }

    /// The lease on filling one entry key across instances: `<prefix>l:<entry key>` (the entry
    /// key whole, so that a lease can never name two entries).
    public func lease(entryKey: String) -> String { prefix + "l:" + entryKey }

    /// The one pub/sub channel on which lease holders announce how their fill ended, for every
    /// key: `<prefix>fills` (a channel, not a key: it cannot collide with the namespaces above,
    /// and one subscription made at start is in place before any lease is waited on).
    public var fillsChannel: String { prefix + "fills" }

    /// A SCAN MATCH pattern for every entry of a route; glob characters of the prefix are escaped.
    public func entryPattern(route: String) -> String {
        Self.escapeGlob(entryPrefix(route: route)) + "*"
    }

    /// A SCAN MATCH pattern for the path indexes of every path under `pathPrefix`.
    public func pathIndexPattern(under pathPrefix: String) -> String {
        Self.escapeGlob(pathIndex(path: pathPrefix)) + "*"
    }

    static func escapeGlob(_ text: String) -> String {
        var escaped = ""
        for c in text {
            if c == "*" || c == "?" || c == "[" || c == "]" || c == "\\" { escaped.append("\\") }
            escaped.append(c)
        }
        return escaped
    }
}

/// Query strings and paths as the gateway sees them: raw (still percent-encoded) names and
/// values, so that what is keyed is exactly what is forwarded.
public enum RequestTarget {
    /// `a=1&b&c=` → [(a, "a=1"), (b, "b"), (c, "c=")]: each parameter's name and the piece
    /// exactly as sent, so that `b` and `b=` stay apart. Empty pieces are dropped.
    public static func parameters(_ query: String?) -> [(name: String, piece: String)] {
        guard let query, !query.isEmpty else { return [] }
        var result: [(name: String, piece: String)] = []
        for piece in query.split(separator: "&", omittingEmptySubsequences: true) {
            let name = piece.firstIndex(of: "=").map { piece[..<$0] } ?? piece
            result.append((String(name), String(piece)))
        }
        return result
    }

    /// Rebuilds a query from parameters; nil when there are none.
    public static func query(_ parameters: [(name: String, piece: String)]) -> String? {
        guard !parameters.isEmpty else { return nil }
        return parameters.map(\.piece).joined(separator: "&")
    }

    /// Why a path is refused before routing, or nil if it is safe.
    ///
    /// The router matches the path as sent, while the upstream may normalise it: a dot segment
    /// (`/catalog/../users/1/resources`), an encoded slash or a backslash could make the gateway
    /// route by one path and the monolith answer another, and so cache one user's answer under a
    /// public route. Such paths get a 400 instead.
    public static func unsafePathReason(_ path: String) -> String? {
        guard path.utf8.first == UInt8(ascii: "/") else { return "path must start with /" }
        // Scanned in place (a native string's storage), with no array of segments and no decoded
        // copy of each: this runs on every request (0.9 % of a hit's profile, mostly allocations).
        if let reason = path.utf8.withContiguousStorageIfAvailable({ unsafeSegmentReason(in: $0) }) { return reason }
        return Array(path.utf8).withUnsafeBufferPointer { unsafeSegmentReason(in: $0) }
    }

    /// The first unsafe segment's reason, segments taken as `split(separator: "/",
    /// omittingEmptySubsequences: false)` would (a leading, trailing or doubled `/` makes an empty one).
    private static func unsafeSegmentReason(in path: UnsafeBufferPointer<UInt8>) -> String? {
        var start = 0
        while start <= path.count {
            let end = path[start...].firstIndex(of: UInt8(ascii: "/")) ?? path.count
            if let reason = unsafeReason(segment: path[start..<end]) { return reason }
            start = end + 1
        }
        return nil
    }

    private static func unsafeReason(segment: Slice<UnsafeBufferPointer<UInt8>>) -> String? {
        // The decoded segment matters only through its length, its first two bytes and where its
        // first `;` is, so only those are kept.
        var decodedCount = 0
        var first: UInt8 = 0, second: UInt8 = 0
        var semicolon: Int?
        func decoded(_ v: UInt8) {
            if decodedCount == 0 { first = v } else if decodedCount == 1 { second = v }
            if v == UInt8(ascii: ";") && semicolon == nil { semicolon = decodedCount }
            decodedCount += 1
        }
        var i = segment.startIndex
        while i < segment.endIndex {
            let c = segment[i]
            if c == UInt8(ascii: "\\") { return "backslash in path" }
            if c == UInt8(ascii: "%"), segment.endIndex - i >= 3 {
                if let v = hexValue(segment[i + 1]).flatMap({ h in hexValue(segment[i + 2]).map { h << 4 | $0 } }) {
                    if v == UInt8(ascii: "/") || v == UInt8(ascii: "\\") { return "encoded slash in path" }
                    if v == 0 { return "encoded NUL in path" }
                    decoded(v)
                    i += 3
                    continue
                }
            }
            decoded(c)
            i += 1
        }
        // `.` or `..`: the decoded segment's first `count` bytes, all of it or up to a `;`.
        func dots(_ count: Int) -> Bool {
            (count == 1 && first == 0x2E) || (count == 2 && first == 0x2E && second == 0x2E)
        }
        if dots(decodedCount) { return "dot segment in path" }
        // `..;x` and `.;x`: Tomcat and others drop path parameters before resolving dot
        // segments, so the backend would walk up where the router did not.
        if let semicolon, dots(semicolon) { return "dot segment in path" }
        return nil
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The value of cookie `name` in the request's `Cookie` fields, or nil.
    public static func cookie(_ name: String, in headers: HTTPHeaders) -> String? {
        cookies(name, in: headers).first
    }

    /// Every value of cookie `name` across the request's `Cookie` fields, in order.
    public static func cookies(_ name: String, in headers: HTTPHeaders) -> [String] {
        var values: [String] = []
        for field in headers.values("Cookie") {
            for pair in field.split(separator: ";") {
                let item = pair.trimmingSpaces()
                guard let eq = item.firstIndex(of: "=") else { continue }
                if item[..<eq].trimmingSpaces() == name { values.append(String(item[item.index(after: eq)...])) }
            }
        }
        return values
    }
}
