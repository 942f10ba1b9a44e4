// The three addresses of the configuration: where to listen, the upstream URL, the Redis URL.
// Each parses its own text and says what is wrong in words meant for the person editing the file.

/// Why a single configuration value is invalid (the loader adds file, position and field path).
public struct ConfigValueError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension GatewayConfig {
    /// `listen:` — `host:port` or `[ipv6]:port`. Port 0 asks the system for a free port (tests).
    public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
        /// Host name or address without brackets: `127.0.0.1`, `::1`, `0.0.0.0`, `localhost`.
        public var host: String
        /// 0–65535.
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `host:port` or `[ipv6]:port`.
        public init(parsing text: String) throws(ConfigValueError) {
            let usage = "expected host:port or [ipv6]:port, e.g. 127.0.0.1:8080"
            guard let (host, portText) = splitHostPort(text) else {
                throw ConfigValueError("invalid listen address \"\(text)\" (\(usage))")
            }
            if let problem = hostProblem(host) {
                throw ConfigValueError("invalid listen address \"\(text)\": \(problem)")
            }
            guard let portText else {
                throw ConfigValueError("invalid listen address \"\(text)\": missing port (\(usage))")
            }
            guard let port = parsePort(portText), port <= 65535 else {
                throw ConfigValueError("invalid listen address \"\(text)\": port must be a number between 0 and 65535")
            }
            self.init(host: host, port: port)
        }

        /// `host:port`, with brackets around IPv6 addresses.
        public var description: String { "\(bracketed(host)):\(port)" }
    }

    /// `upstream.url:` — `http://host[:port][/base]`.
    public struct UpstreamURL: Sendable, Equatable, CustomStringConvertible {
        /// Host name or address, without brackets.
        public var host: String
        /// 1–65535, default 80.
        public var port: Int
        /// Prepended to every forwarded path: empty, or `/api` style (no trailing slash).
        public var basePath: String

        public init(host: String, port: Int = 80, basePath: String = "") {
            self.host = host
            self.port = port
            self.basePath = basePath
        }

        /// `host[:port]` as a `Host` field carries it: IPv6 in brackets, port 80 left out.
        public var authority: String {
            let name = host.contains(":") ? "[\(host)]" : host
            return port == 80 ? name : "\(name):\(port)"
        }

        public init(parsing text: String) throws(ConfigValueError) {
            let usage = "expected http://host[:port][/base], e.g. http://127.0.0.1:9000"
            let lower = text.lowercased()
            if lower.hasPrefix("https://") {
                throw ConfigValueError("invalid upstream URL \"\(text)\": https is not supported; the upstream must be http://")
            }
            guard lower.hasPrefix("http://") else {
                throw ConfigValueError("invalid upstream URL \"\(text)\" (\(usage))")
            }
            let rest = text.dropFirst("http://".count)
            if rest.contains("?") || rest.contains("#") {
                throw ConfigValueError("invalid upstream URL \"\(text)\": a query or fragment is not allowed")
            }
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            let authority = String(rest[..<slash])
            var base = String(rest[slash...])
            if authority.contains("@") {
                throw ConfigValueError("invalid upstream URL \"\(text)\": user information is not allowed")
            }
            guard let (host, portText) = splitHostPort(authority) else {
                throw ConfigValueError("invalid upstream URL \"\(text)\" (\(usage))")
            }
            if let problem = hostProblem(host) {
                throw ConfigValueError("invalid upstream URL \"\(text)\": \(problem)")
            }
            var port = 80
            if let portText {
                guard let value = parsePort(portText), (1...65535).contains(value) else {
                    throw ConfigValueError("invalid upstream URL \"\(text)\": port must be a number between 1 and 65535")
                }
                port = value
            }
            if let bad = base.utf8.first(where: { !isPathByte($0) }) {
                throw ConfigValueError("invalid upstream URL \"\(text)\": \(describeByte(bad)) is not allowed in a path")
            }
            while base.hasSuffix("/") { base.removeLast() }
            self.init(host: host, port: port, basePath: base)
        }

        /// `http://host:port/base`, the form curl is given (the request path is appended).
        public var description: String { "http://\(bracketed(host)):\(port)\(basePath)" }
    }

    /// `redis.url:` — `redis://[[user]:password@]host[:port][/db]`, a unix socket:
    /// `unix://[[user]:password@]/path/to/redis.sock[?db=N]`, or the master of a Sentinel set:
    /// `redis+sentinel://[[user]:password@]h1[:26379],h2[:26379]/<master-name>[/db]`.
    public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
        /// Host name or address; empty for a unix socket. With ``sentinel``: the master the
        /// Sentinels named last, empty until one has (the runtime fills it in and moves it).
        public var host: String
        /// 1–65535, default 6379; 0 for a unix socket.
        public var port: Int
        /// The socket's absolute path (`unix://…`); nil for TCP.
        public var unixSocketPath: String?
        /// For `AUTH user password` (Redis 6 ACL); nil for plain `AUTH password`.
        public var username: String?
        /// Percent-decoded; nil when the URL has none.
        public var password: String?
        /// Database index for `SELECT`, default 0.
        public var database: Int
        /// `redis+sentinel://`: where to ask for the master. The password, user and database
        /// are the master's; the Sentinels get `AUTH` only with `redis.sentinel_password`.
        public var sentinel: Sentinel?

        /// The Sentinels and the master's name from a `redis+sentinel://` URL.
        public struct Sentinel: Sendable, Equatable {
            public struct Node: Sendable, Equatable, CustomStringConvertible {
                public var host: String
                /// Default 26379.
                public var port: Int
                public init(host: String, port: Int = 26379) {
                    self.host = host
                    self.port = port
                }
                public var description: String { "\(bracketed(host)):\(port)" }
            }
            /// Asked in this order; at least one.
            public var nodes: [Node]
            /// The name the Sentinels monitor it under (`sentinel monitor <name> …`).
            public var masterName: String
            /// `redis.sentinel_password`: sent as `AUTH <password>` to each Sentinel (their own
            /// `requirepass`, not the master's); nil asks them without `AUTH`. Never shown.
            public var password: String?
            public init(nodes: [Node], masterName: String, password: String? = nil) {
                self.nodes = nodes
                self.masterName = masterName
                self.password = password
            }
        }

        /// The same URL pointing at another master (a Sentinel named a new one).
        public func withMaster(host: String, port: Int) -> RedisURL {
            var moved = self
            moved.host = host
            moved.port = port
            return moved
        }

        /// True when `other` names the same Sentinels, master, credentials and database: the two
        /// differ at most in which master was last resolved.
        public func sameSentinelTarget(as other: RedisURL) -> Bool {
            sentinel != nil && withMaster(host: "", port: 0) == other.withMaster(host: "", port: 0)
        }

        /// `redis+cluster://h1:p1,h2:p2`: the seed nodes the slot map is first asked of (``host``
        /// and ``port`` are the first one's); empty for a standalone Redis.
        public var clusterSeeds: [ClusterSeed] = []

        /// A Redis Cluster node named in the URL.
        public struct ClusterSeed: Sendable, Equatable, CustomStringConvertible {
            public var host: String
            public var port: Int
            public init(host: String, port: Int) {
                self.host = host
                self.port = port
            }
            public var description: String { "\(bracketed(host)):\(port)" }
        }

        /// Whether this names a Redis Cluster (``clusterSeeds``) rather than one server.
        public var isCluster: Bool { !clusterSeeds.isEmpty }

        public init(host: String, port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
        }

        public init(unixSocketPath: String, username: String? = nil, password: String? = nil, database: Int = 0) {
            self.init(host: "", port: 0, username: username, password: password, database: database)
            self.unixSocketPath = unixSocketPath
        }

        public init(parsing text: String) throws(ConfigValueError) {
            let usage = "expected redis://[:password@]host[:port][/db], unix:///path/to/redis.sock[?db=N] or redis+sentinel://host:26379,host:26379/master-name[/db], e.g. redis://127.0.0.1:6379/0"
            let lower = text.lowercased()
            if lower.hasPrefix("redis+cluster://") {
                self = try Self.cluster(text, usage: "expected redis+cluster://[:password@]host:port,host:port[/0], e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
                return
            }
            if lower.hasPrefix("rediss://") {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": TLS (rediss://) is not supported")
            }
            let isUnix = lower.hasPrefix("unix://")
            let isSentinel = lower.hasPrefix("redis+sentinel://")
            guard isUnix || isSentinel || lower.hasPrefix("redis://") else {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\" (\(usage))")
            }
            let scheme = isUnix ? "unix://" : isSentinel ? "redis+sentinel://" : "redis://"
            var rest = Substring(text.dropFirst(scheme.count))
            var username: String?
            var password: String?
            // A unix path may contain "@" itself: only userinfo before the path's first "/" counts.
            let userinfoEnd = isUnix ? rest.firstIndex(of: "/").flatMap { slash in rest[..<slash].lastIndex(of: "@") } : rest.lastIndex(of: "@")
            if let at = userinfoEnd {
                let userinfo = rest[..<at]
                rest = rest[rest.index(after: at)...]
                guard let colon = userinfo.firstIndex(of: ":") else {
                    throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": write the password as :password@ before the \(isUnix ? "path" : "host")")
                }
                let user = String(userinfo[..<colon])
                guard let secret = percentDecode(userinfo[userinfo.index(after: colon)...]), !secret.isEmpty,
                      let decodedUser = percentDecode(Substring(user))
                else {
                    throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": invalid or empty password")
                }
                username = decodedUser.isEmpty ? nil : decodedUser
                password = secret
            }
            if isUnix {
                self = try Self.unix(rest, text: text, username: username, password: password)
                return
            }
            if isSentinel {
                self = try Self.sentinel(rest, text: text, username: username, password: password)
                return
            }
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            guard let (host, portText) = splitHostPort(String(rest[..<slash])) else {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\" (\(usage))")
            }
            if let problem = hostProblem(host) {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": \(problem)")
            }
            var port = 6379
            if let portText {
                guard let value = parsePort(portText), (1...65535).contains(value) else {
                    throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": port must be a number between 1 and 65535")
                }
                port = value
            }
            var database = 0
            if slash != rest.endIndex {
                let dbText = rest[rest.index(after: slash)...]
                if !dbText.isEmpty {
                    guard let db = parseDatabase(dbText) else {
                        throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": the database must be a number, e.g. redis://127.0.0.1:6379/0")
                    }
                    database = db
                }
            }
            self.init(host: host, port: port, username: username, password: password, database: database)
        }

        /// `redis+cluster://[user:password@]h1:p1,h2:p2[/0]`: each seed is parsed as a
        /// `redis://` authority; a cluster has only database 0.
        private static func cluster(_ text: String, usage: String) throws(ConfigValueError) -> RedisURL {
            var rest = Substring(text.dropFirst("redis+cluster://".count))
            var userinfo = ""
            if let at = rest.lastIndex(of: "@") {
                userinfo = String(rest[...at])
                rest = rest[rest.index(after: at)...]
            }
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            let path = String(rest[slash...])
            var seeds: [RedisURL] = []
            for authority in rest[..<slash].split(separator: ",", omittingEmptySubsequences: false) {
                guard !authority.isEmpty else {
                    throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": an empty node in the seed list (\(usage))")
                }
                guard let seed = try? RedisURL(parsing: "redis://" + userinfo + authority + path) else {
                    throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": seed \"\(authority)\" is not a host:port with a port between 1 and 65535 (\(usage))")
                }
                seeds.append(seed)
            }
            guard var url = seeds.first else {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\" (\(usage))")
            }
            guard url.database == 0 else {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": a Redis Cluster has only database 0, got /\(url.database)")
            }
            url.clusterSeeds = seeds.map { ClusterSeed(host: $0.host, port: $0.port) }
            return url
        }

        /// `/path[?db=N]`, what follows `unix://` and any userinfo.
        private static func unix(_ rest: Substring, text: String, username: String?, password: String?) throws(ConfigValueError) -> RedisURL {
            let query = rest.firstIndex(of: "?")
            let path = String(rest[..<(query ?? rest.endIndex)])
            guard path.hasPrefix("/"), path.count > 1 else {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": a unix socket needs an absolute path, e.g. unix:///run/redis/redis.sock")
            }
            if let bad = path.utf8.first(where: { $0 < 0x20 || $0 == 0x7F }) {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": \(describeByte(bad)) is not allowed in a socket path")
            }
            // sun_path holds 108 bytes with the terminating NUL.
            guard path.utf8.count <= 107 else {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": a unix socket path is at most 107 bytes long, got \(path.utf8.count)")
            }
            var database = 0
            if let query {
                let parameter = rest[rest.index(after: query)...]
                guard parameter.hasPrefix("db="), let db = parseDatabase(parameter.dropFirst(3)) else {
                    throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": the only parameter is db=N, e.g. unix:///run/redis/redis.sock?db=2")
                }
                database = db
            }
            return RedisURL(unixSocketPath: path, username: username, password: password, database: database)
        }

        /// `h1:26379,h2/name[/db]`, what follows `redis+sentinel://` and any userinfo.
        private static func sentinel(_ rest: Substring, text: String, username: String?, password: String?) throws(ConfigValueError) -> RedisURL {
            let example = "e.g. redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0"
            let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count >= 2, !parts[1].isEmpty else {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": name the master after the Sentinels (\(example))")
            }
            guard parts.count <= 3 else {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": expected the Sentinels, the master's name and at most a database (\(example))")
            }
            var nodes: [Sentinel.Node] = []
            for entry in parts[0].split(separator: ",", omittingEmptySubsequences: false) {
                guard let (host, portText) = splitHostPort(String(entry)) else {
                    throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": invalid Sentinel address \"\(entry)\" (\(example))")
                }
                if let problem = hostProblem(host) {
                    throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": \(problem)")
                }
                var port = 26379
                if let portText {
                    guard let value = parsePort(portText), (1...65535).contains(value) else {
                        throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": Sentinel port must be a number between 1 and 65535")
                    }
                    port = value
                }
                nodes.append(Sentinel.Node(host: host, port: port))
            }
            let name = String(parts[1])
            // Names as people give them to `sentinel monitor`; nothing that needs escaping anywhere.
            let nameOK = name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
            }
            guard name.utf8.count <= 64, nameOK else {
                throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": invalid master name \"\(name)\" (letters, digits, \"-\", \"_\", \".\"; at most 64)")
            }
            var database = 0
            if parts.count == 3, !parts[2].isEmpty {
                guard let db = parseDatabase(parts[2]) else {
                    throw ConfigValueError("invalid Redis URL \"\(redacted(text))\": the database must be a number (\(example))")
                }
                database = db
            }
            var url = RedisURL(host: "", port: 0, username: username, password: password, database: database)
            url.sentinel = Sentinel(nodes: nodes, masterName: name)
            return url
        }

        /// Where it connects, for messages: `host:port` or the socket's path; a Sentinel URL's
        /// master before one is known: `master "mymaster" (not resolved yet)`.
        public var address: String {
            if let sentinel, host.isEmpty { return "master \"\(sentinel.masterName)\" (not resolved yet)" }
            return unixSocketPath ?? "\(bracketed(host)):\(port)"
        }

        /// The URL with the password masked: `redis://:***@host:6379/0`, `unix://:***@/path?db=2`.
        public var description: String {
            let auth = password == nil ? "" : "\(username ?? ""):***@"
            if let unixSocketPath {
                return "unix://\(auth)\(unixSocketPath)" + (database == 0 ? "" : "?db=\(database)")
            }
            if let sentinel {
                return "redis+sentinel://\(auth)\(sentinel.nodes.map(\.description).joined(separator: ","))/\(sentinel.masterName)/\(database)"
            }
            if isCluster {
                return "redis+cluster://\(auth)" + clusterSeeds.map(\.description).joined(separator: ",") + "/0"
            }
            return "redis://\(auth)\(bracketed(host)):\(port)/\(database)"
        }
    }
}

/// A database index: decimal digits only, at most 5.
private func parseDatabase(_ text: Substring) -> Int? {
    guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
    return Int(text)
}

// MARK: - Helpers

/// Splits `host[:port]` or `[v6][:port]`; nil when the shape is wrong (empty host, stray colons).
private func splitHostPort(_ text: String) -> (host: String, port: String?)? {
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]") else { return nil }
        let host = String(text[text.index(after: text.startIndex)..<close])
        let after = text[text.index(after: close)...]
        if after.isEmpty { return host.isEmpty ? nil : (host, nil) }
        guard after.first == ":" else { return nil }
        return host.isEmpty ? nil : (host, String(after.dropFirst()))
    }
    let parts = text.split(separator: ":", omittingEmptySubsequences: false)
    switch parts.count {
    case 1: return parts[0].isEmpty ? nil : (String(parts[0]), nil)
    case 2: return parts[0].isEmpty ? nil : (String(parts[0]), String(parts[1]))
    default: return nil // an IPv6 address without brackets, or garbage
    }
}

/// Why a host is not acceptable, or nil. IPv6 addresses arrive without their brackets.
private func hostProblem(_ host: String) -> String? {
    if host.contains(":") {
        let ok = host.unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit || $0 == ":" || $0 == "." }
        return ok ? nil : "invalid IPv6 address \"\(host)\""
    }
    guard host.count <= 253 else { return "host name too long" }
    let ok = host.utf8.allSatisfy { byte in
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
    }
    return ok && !host.hasPrefix("-") ? nil : "invalid host \"\(host)\""
}

/// Decimal digits only (no sign, no spaces), at most 5 of them.
private func parsePort(_ text: String) -> Int? {
    guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    return Int(text)
}

private func bracketed(_ host: String) -> String {
    host.contains(":") ? "[\(host)]" : host
}

/// The text with any `:password@` masked, for messages: whatever sits between the authority's
/// first `:` and the last `@`, with or without a scheme (a URL missing its `redis://` may still
/// carry a password).
private func redacted(_ url: String) -> String {
    let authorityStart = url.range(of: "://")?.upperBound ?? url.startIndex
    guard let at = url.lastIndex(of: "@"), authorityStart < at,
          let colon = url[authorityStart..<at].firstIndex(of: ":")
    else { return url }
    return String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
}

private func percentDecode(_ text: Substring) -> String? {
    var bytes: [UInt8] = []
    var iterator = text.utf8.makeIterator()
    while let byte = iterator.next() {
        if byte == UInt8(ascii: "%") {
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        } else {
            bytes.append(byte)
        }
    }
    return String(validating: bytes, as: UTF8.self)
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 0x30...0x39: byte - 0x30
    case 0x41...0x46: byte - 0x41 + 10
    case 0x61...0x66: byte - 0x61 + 10
    default: nil
    }
}

/// RFC 3986 `pchar` plus `/`: unreserved, sub-delims, `:`, `@`, and `%` for percent-encoding.
func isPathByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"),
         UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
         UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
         UInt8(ascii: "="), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: "/"):
        return true
    default:
        return false
    }
}

/// `" "` for printable ASCII, `byte 0x0A` otherwise; names the offending character in messages.
func describeByte(_ byte: UInt8) -> String {
    if byte >= 0x20 && byte < 0x7F { return "character \"\(Character(Unicode.Scalar(byte)))\"" }
    if byte >= 0x80 { return "a non-ASCII character (percent-encode it)" }
    return "control character 0x\(String(byte, radix: 16, uppercase: true))"
}
