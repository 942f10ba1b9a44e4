// Routing: compiled path patterns and the first-match-wins route table.
//
// Pattern syntax (segments are separated by "/"; a pattern starts with "/"):
//   literal   `catalog`   the segment must be exactly these bytes (case-sensitive, no decoding)
//   `{name}`             exactly one non-empty segment, named (names are unique in a pattern)
//   `*`                  exactly one non-empty segment
//   `**`                 last segment only: zero or more segments, of any content
//
// Paths are split the same way, after the leading "/": `/a/b` is [a, b], `/a/` is [a, ""],
// `/` is [""]. So the trailing slash is significant: `/catalog` does not match `/catalog/`, and
// `/catalog/*` does not match `/catalog/` (a `*` or `{name}` needs a non-empty segment). Only `**`
// absorbs it: `/catalog/**` matches `/catalog`, `/catalog/` and `/catalog/a/b`. Patterns may end
// with "/" to match exactly the trailing-slash form (`/catalog/` matches only `/catalog/`).
// Paths are matched as sent: no percent-decoding, no dot-segment removal (the HTTP layer decides
// what to do with `..`), and a path that does not start with "/" matches nothing.

/// A compiled `match` pattern.
public struct RoutePattern: Sendable, Equatable, CustomStringConvertible {
    public enum Segment: Sendable, Equatable {
        /// Exactly these bytes. Empty only as the last segment of a pattern ending in "/".
        case literal([UInt8])
        /// `{name}`: one non-empty segment.
        case capture(String)
        /// `*`: one non-empty segment.
        case wildcard
    }

    /// The pattern as written.
    public let source: String
    /// The fixed segments, without a trailing `**`.
    public let segments: [Segment]
    /// Whether the pattern ends in `**` (zero or more further segments).
    public let matchesRemainder: Bool

    /// Compiles a pattern, or says why it can never match anything sensible.
    public init(_ source: String) throws(RoutePatternError) {
        guard source.hasPrefix("/") else { throw RoutePatternError("a pattern must start with \"/\"") }
        if source.contains("?") || source.contains("#") {
            throw RoutePatternError("a pattern matches the path only; list query parameters under \"query\"")
        }
        let parts = source.utf8.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        var segments: [Segment] = []
        var names: Set<String> = []
        var remainder = false
        for (index, part) in parts.enumerated() {
            let isLast = index == parts.count - 1
            let text = String(decoding: part, as: UTF8.self)
            if text == "**" {
                guard isLast else { throw RoutePatternError("\"**\" is only allowed as the last segment") }
                remainder = true
            } else if text == "*" {
                segments.append(.wildcard)
            } else if text.contains("*") {
                throw RoutePatternError("\"*\" and \"**\" must be a whole segment, not part of \"\(text)\"")
            } else if text.contains("{") || text.contains("}") {
                guard text.hasPrefix("{"), text.hasSuffix("}"), text.count >= 2,
                      text.dropFirst().dropLast().allSatisfy({ $0 != "{" && $0 != "}" })
                else {
                    throw RoutePatternError("a capture must be a whole segment, like /users/{id}, not \"\(text)\"")
                }
                let name = String(text.dropFirst().dropLast())
                guard !name.isEmpty else { throw RoutePatternError("empty capture name \"{}\"") }
                guard RoutePattern.isValidCaptureName(name) else {
                    throw RoutePatternError(
                        "invalid capture name \"\(name)\" (use letters, digits and \"_\", not starting with a digit)")
                }
                guard names.insert(name).inserted else {
                    throw RoutePatternError("duplicate capture name \"\(name)\"")
                }
                segments.append(.capture(name))
            } else {
                if part.isEmpty && !isLast { throw RoutePatternError("empty segment (\"//\")") }
                if let bad = part.first(where: { !isPathByte($0) }) {
                    throw RoutePatternError("\(describeByte(bad)) is not allowed in a path")
                }
                segments.append(.literal(Array(part)))
            }
        }
        self.source = source
        self.segments = segments
        self.matchesRemainder = remainder
    }

    public var description: String { source }

    /// The capture names in order.
    public var captureNames: [String] {
        segments.compactMap { if case .capture(let name) = $0 { name } else { nil } }
    }

    /// Whether the path (already without its query) matches. Does not allocate.
    public func matches(_ path: UnsafeBufferPointer<UInt8>) -> Bool {
        guard path.count > 0, path[0] == UInt8(ascii: "/") else { return false }
        var start = 1 // start of the current path segment; count + 1 once the path is used up
        for segment in segments {
            guard start <= path.count else { return false }
            var end = start
            while end < path.count && path[end] != UInt8(ascii: "/") { end += 1 }
            switch segment {
            case .literal(let bytes):
                guard bytes.count == end - start else { return false }
                var i = 0
                while i < bytes.count {
                    if bytes[i] != path[start + i] { return false }
                    i += 1
                }
            case .capture, .wildcard:
                guard end > start else { return false }
            }
            start = end + 1
        }
        return matchesRemainder || start == path.count + 1
    }

    /// Whether the path (already without its query) matches.
    public func matches(_ path: String) -> Bool {
        withUTF8Buffer(path) { matches($0) }
    }

    /// The captured segments by name, or nil when the path does not match. Allocates: for
    /// diagnostics and tests, not the request path.
    public func captures(in path: String) -> [String: String]? {
        guard matches(path) else { return nil }
        let parts = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        var result: [String: String] = [:]
        for (segment, part) in zip(segments, parts) {
            if case .capture(let name) = segment { result[name] = String(part) }
        }
        return result
    }

    /// Whether every path that `other` matches is also matched by this pattern (exact for this
    /// syntax: literals, one-segment wildcards and a trailing `**`).
    public func covers(_ other: RoutePattern) -> Bool {
        var index = 0
        while true {
            if index == segments.count {
                // This pattern's fixed part is used up: either `**` takes whatever follows, or
                // `other` must end here too and take nothing more.
                return matchesRemainder || (index == other.segments.count && !other.matchesRemainder)
            }
            // This pattern needs one more segment; `other` matches paths that end here.
            guard index < other.segments.count else { return false }
            switch (segments[index], other.segments[index]) {
            case let (.literal(mine), .literal(theirs)):
                guard mine == theirs else { return false }
            case (.literal, _):
                return false // `other` takes any non-empty segment, this one a single literal
            case let (_, .literal(theirs)):
                guard !theirs.isEmpty else { return false } // `*`/`{x}` never match the empty segment
            default:
                break
            }
            index += 1
        }
    }

    static func isValidCaptureName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: "_")
        }
    }
}

/// Why a pattern is invalid.
public struct RoutePatternError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// The route table: built once from the validated configuration, then read concurrently by every
/// event loop. The first route whose methods include the request's method and whose pattern
/// matches the path wins. No match is not an error here: the gateway decides (404 or pass).
public struct Router: Sendable {
    /// The routes in configuration order; ``match(method:path:)`` returns indices into this.
    public let routes: [Route]
    private let patterns: [RoutePattern]
    private let methods: [MethodSet]

    public init(routes: [Route]) {
        self.routes = routes
        self.patterns = routes.map(\.pattern)
        self.methods = routes.map(\.methods)
    }

    public init(config: GatewayConfig) {
        self.init(routes: config.routes)
    }

    /// The index of the first matching route, or nil. Does not allocate.
    /// - Parameters:
    ///   - method: the request method, case-sensitive (`GET`).
    ///   - path: the path without the query.
    public func match(method: String, path: String) -> Int? {
        let bit = MethodSet(requestMethod: method)
        return withUTF8Buffer(path) { match(method: bit, path: $0) }
    }

    /// The index of the first matching route, or nil, for a path held as bytes (e.g. in a
    /// connection's read buffer). Does not allocate.
    public func match(method: MethodSet, path: UnsafeBufferPointer<UInt8>) -> Int? {
        for index in patterns.indices where methods[index].contains(method) {
            if patterns[index].matches(path) { return index }
        }
        return nil
    }

    /// The first matching route, or nil.
    public func route(method: String, path: String) -> Route? {
        match(method: method, path: path).map { routes[$0] }
    }

    /// A later route that can never be chosen, and the earlier one that takes all its requests.
    public struct Shadowing: Sendable, Equatable {
        public var shadowed: Int
        public var by: Int
        public init(shadowed: Int, by: Int) {
            self.shadowed = shadowed
            self.by = by
        }
    }

    /// Routes that can never match because an earlier route takes every request they would:
    /// A shadows B when A's pattern covers B's (``RoutePattern/covers(_:)``) and A's methods
    /// include B's. Conservative: a route covered only by several earlier routes together is not
    /// reported. For each shadowed route, the first route shadowing it.
    /// - Parameter entries: pattern and methods of each route, in order.
    public static func shadowedRoutes(_ entries: [(pattern: RoutePattern, methods: MethodSet)]) -> [Shadowing] {
        var result: [Shadowing] = []
        for later in entries.indices {
            for earlier in 0..<later
            where entries[earlier].methods.isSuperset(of: entries[later].methods)
                && entries[earlier].pattern.covers(entries[later].pattern) {
                result.append(Shadowing(shadowed: later, by: earlier))
                break
            }
        }
        return result
    }
}

/// Runs `body` on the string's UTF-8 bytes; copies only for non-native (bridged) strings.
@inline(__always)
func withUTF8Buffer<R>(_ string: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let result = string.utf8.withContiguousStorageIfAvailable(body) { return result }
    var copy = string
    return copy.withUTF8(body)
}
