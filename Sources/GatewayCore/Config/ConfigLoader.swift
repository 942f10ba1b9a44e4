import Foundation
import Yams

// Loading walks the YAML node tree by hand (not Decodable) so that every problem can name the
// file, line, column and field path, and so that every problem is found in one pass: a bad value
// is reported and replaced by its default, and checking goes on.

extension GatewayConfig {
    /// Reads, parses and validates a configuration file.
    /// - Parameters:
    ///   - path: the file; messages name it as given.
    ///   - environment: what `${NAME}` in secret-holding values expands to (default: the process's).
    /// - Throws: ``ConfigErrors`` with every problem found, in file order.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigErrors) -> GatewayConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "no such file"
            throw ConfigErrors([ConfigError(file: path, line: nil, column: nil, path: "", message: reason)])
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ConfigErrors([ConfigError(file: path, line: nil, column: nil, path: "", message: "the file is not valid UTF-8")])
        }
        return try parse(yaml: text, fileName: path, environment: environment)
    }

    /// Parses and validates configuration text.
    /// - Parameters:
    ///   - yaml: the YAML text.
    ///   - fileName: the name used in messages.
    ///   - environment: what `${NAME}` in secret-holding values expands to (default: the process's).
    /// - Throws: ``ConfigErrors`` with every problem found, in file order.
    public static func parse(
        yaml: String, fileName: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigErrors) -> GatewayConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigErrors([ConfigError(yamlError: error, file: fileName, source: yaml)])
        } catch {
            throw ConfigErrors([ConfigError(file: fileName, line: nil, column: nil, path: "", message: "invalid YAML: \(error)")])
        }
        guard let root else {
            throw ConfigErrors([ConfigError(file: fileName, line: nil, column: nil, path: "",
                                            message: "the file is empty; expected listen, upstream, redis and routes")])
        }
        let reader = ConfigReader(file: fileName, environment: environment)
        let config = reader.readConfig(root)
        if let config, reader.errors.isEmpty { return config }
        throw ConfigErrors(reader.sortedErrors)
    }
}

// MARK: - Schema

private enum Keys {
    static let root = ["listen", "pid_file", "server", "upstream", "redis", "cache", "invalidation", "admin", "routes", "access_log", "log", "instance_id"]
    static let invalidation = ["channel", "stream", "instance", "purge_api"]
    static let purgeAPI = ["token", "token_env", "allow", "public"]
    static let server = [
        "event_loops", "max_connections", "max_requests_per_connection", "header_timeout", "idle_timeout",
        "body_timeout", "drain_timeout", "max_header_bytes", "max_headers", "max_body_bytes",
    ]
    static let upstream = ["url", "connect_timeout", "timeout", "max_connections", "max_queue", "host"]
    static let redis = ["url", "password_file", "sentinel_password", "timeout", "key_prefix", "connections"]
    static let cache = ["max_body_size", "max_wait", "key_host", "local_ttl", "local_tracking", "local_max_bytes", "local_max_entries", "forward_headers",
        "stale_while_revalidate", "stale_if_error", "stale_if_error_statuses", "keep", "uncacheable_ttl", "max_waiters", "on_store_error", "vary_headers", "max_variants", "cross_instance"]
    static let route = [
        "name", "match", "methods", "class", "ttl", "ttl_by_status", "max_ttl", "heuristic", "query", "unlisted_query",
        "allow_authorized", "identity", "max_body_size", "max_wait", "key_host", "forward_headers",
        "stale_while_revalidate", "stale_if_error", "stale_if_error_statuses", "keep", "uncacheable_ttl", "max_waiters", "on_store_error", "vary_headers", "max_variants", "tags", "tags_header", "expose_tags_header",
    ]
    /// Route keys that only make sense on cached routes, in the order they are checked.
    static let cachedOnly = [
        "ttl", "ttl_by_status", "max_ttl", "heuristic", "query", "unlisted_query", "allow_authorized", "identity",
        "max_body_size", "max_wait", "key_host", "forward_headers",
        "stale_while_revalidate", "stale_if_error", "stale_if_error_statuses", "keep", "uncacheable_ttl", "max_waiters", "on_store_error", "vary_headers", "max_variants", "tags", "tags_header", "expose_tags_header",
    ]
    static let identity = ["header", "cookie"]
}

private let maxStoredBody = 512 << 20 // Redis' largest string

// MARK: - Reader

extension GatewayConfig.SourcePosition {
    init(_ mark: Mark) { self.init(line: mark.line, column: mark.column) }
}

/// The fields of one YAML mapping whose keys were checked against the schema.
struct Fields {
    let path: String
    let mark: Mark?
    var entries: [String: (key: Node, value: Node)] = [:]

    subscript(key: String) -> Node? { entries[key]?.value }
    func keyNode(_ key: String) -> Node? { entries[key]?.key }
    func path(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}

/// Walks the node tree, collecting every problem.
final class ConfigReader {
    let file: String
    let environment: [String: String]
    private(set) var errors: [ConfigError] = []
    /// Where the addresses that the CLI checks after loading were written.
    private var upstreamURLMark: Mark?
    private var redisURLMark: Mark?

    init(file: String, environment: [String: String] = [:]) {
        self.file = file
        self.environment = environment
    }

    /// Errors by position (stable for errors at the same place).
    var sortedErrors: [ConfigError] {
        errors.enumerated().sorted { a, b in
            let ka = (a.element.line ?? 0, a.element.column ?? 0, a.offset)
            let kb = (b.element.line ?? 0, b.element.column ?? 0, b.offset)
            return ka < kb
        }.map(\.element)
    }

    func report(_ mark: Mark?, _ path: String, _ message: String) {
        errors.append(ConfigError(file: file, line: mark?.line, column: mark?.column, path: path, message: message))
    }

    func report(_ node: Node?, _ path: String, _ message: String) {
        report(node?.mark, path, message)
    }

    // MARK: Shapes

    func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node else { return false }
        return (scalar.style == .plain || scalar.style == .any) && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        case .scalar(let scalar): isNull(node) ? "nothing" : "\"\(scalar.string)\""
        }
    }

    /// The mapping's fields; unknown keys are reported (with the closest known key).
    /// - Parameter nullIsEmpty: accept an empty value (`server:` with every option commented out).
    func fields(_ node: Node, _ path: String, known: [String], nullIsEmpty: Bool, expected: String = "a mapping") -> Fields? {
        if nullIsEmpty && isNull(node) { return Fields(path: path, mark: node.mark) }
        guard case .mapping(let mapping) = node else {
            report(node, path, "expected \(expected), found \(describe(node))")
            return nil
        }
        var fields = Fields(path: path, mark: mapping.mark)
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key, !isNull(key) else {
                report(key, path, "expected a key name, found \(describe(key))")
                continue
            }
            let name = scalar.string
            if name == "<<" {
                report(key, path, "merge keys (<<) are not supported; write the settings out")
            } else if known.contains(name) {
                fields.entries[name] = (key, value)
            } else if let suggestion = closestMatch(to: name, in: known) {
                report(key, path, "unknown key \"\(name)\" (did you mean \"\(suggestion)\"?)")
            } else {
                report(key, path, "unknown key \"\(name)\" (expected one of: \(known.joined(separator: ", ")))")
            }
        }
        return fields
    }

    /// The value of a required field, or nil after reporting that it is missing.
    func required(_ fields: Fields, _ key: String, hint: String = "") -> Node? {
        if let node = fields[key] { return node }
        report(fields.mark, fields.path, "missing required field \"\(key)\"\(hint)")
        return nil
    }

    func list(_ node: Node, _ path: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            report(node, path, "expected a list, found \(describe(node))")
            return nil
        }
        return Array(sequence)
    }

    // MARK: Scalars

    func string(_ node: Node, _ path: String, expected: String = "a string") -> String? {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            report(node, path, "expected \(expected), found \(describe(node))")
            return nil
        }
        return scalar.string
    }

    func int(_ node: Node, _ path: String, _ range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, path, expected: "an integer") else { return nil }
        guard let value = Int(text) else {
            report(node, path, "expected an integer, found \"\(text)\"")
            return nil
        }
        guard range.contains(value) else {
            report(node, path, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
            return nil
        }
        return value
    }

    func bool(_ node: Node, _ path: String) -> Bool? {
        guard let text = string(node, path, expected: "true or false") else { return nil }
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default:
            report(node, path, "expected true or false, found \"\(text)\"")
            return nil
        }
    }

    func duration(_ node: Node, _ path: String, allowZero: Bool = false) -> Duration? {
        guard let text = string(node, path, expected: "a duration") else { return nil }
        guard let value = Duration(configString: text) else {
            report(node, path, "invalid duration \"\(text)\" (expected a number followed by ms, s, m or h, e.g. 250ms, 30s, 5m)")
            return nil
        }
        if allowZero && value < .zero {
            report(node, path, "must not be negative, got \"\(text)\"")
            return nil
        }
        if !allowZero && value <= .zero {
            report(node, path, "must be greater than 0, got \"\(text)\"")
            return nil
        }
        return value
    }

    func size(_ node: Node, _ path: String, _ range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, path, expected: "a size") else { return nil }
        guard let value = ByteSize.parse(text) else {
            report(node, path, "invalid size \"\(text)\" (expected a number of bytes, or a number followed by KiB, MiB or GiB, e.g. 4096, 16KiB, 1MiB)")
            return nil
        }
        guard range.contains(value) else {
            report(node, path, "must be between \(ByteSize.format(range.lowerBound)) and \(ByteSize.format(range.upperBound)), got \"\(text)\"")
            return nil
        }
        return value
    }

    /// A string that may hold a secret, with `${NAME}` expanded (see ``EnvironmentSubstitution``).
    func secret(_ node: Node, _ path: String, expected: String = "a string") -> String? {
        guard let text = string(node, path, expected: expected) else { return nil }
        switch EnvironmentSubstitution.expand(text, environment: environment) {
        case .success(let expanded): return expanded
        case .failure(let failure):
            report(node, path, "\(failure)")
            return nil
        }
    }

    /// A value parsed by one of the address types; their message is reported as is.
    /// - Parameter expandingEnvironment: expand `${NAME}` first (values that may hold a secret).
    func parsed<T>(_ node: Node, _ path: String, expandingEnvironment: Bool = false, _ parse: (String) throws -> T) -> T? {
        guard let text = expandingEnvironment ? secret(node, path) : string(node, path) else { return nil }
        do {
            return try parse(text)
        } catch {
            report(node, path, "\(error)")
            return nil
        }
    }

    // Optional fields with defaults: a bad value is reported and the default stands in.

    func int(_ fields: Fields, _ key: String, default value: Int, _ range: ClosedRange<Int>) -> Int {
        fields[key].flatMap { int($0, fields.path(key), range) } ?? value
    }

    func bool(_ fields: Fields, _ key: String, default value: Bool) -> Bool {
        fields[key].flatMap { bool($0, fields.path(key)) } ?? value
    }

    func duration(_ fields: Fields, _ key: String, default value: Duration, allowZero: Bool = false) -> Duration {
        fields[key].flatMap { duration($0, fields.path(key), allowZero: allowZero) } ?? value
    }

    func size(_ fields: Fields, _ key: String, default value: Int, _ range: ClosedRange<Int>) -> Int {
        fields[key].flatMap { size($0, fields.path(key), range) } ?? value
    }

    // MARK: - Document

    func readConfig(_ root: Node) -> GatewayConfig? {
        guard let fields = fields(root, "", known: Keys.root, nullIsEmpty: false,
                                  expected: "a mapping with listen, upstream, redis and routes")
        else { return nil }
        let listenNode = required(fields, "listen")
        let listen = listenNode.flatMap { node in
            parsed(node, "listen") { try GatewayConfig.ListenAddress(parsing: $0) }
        }
        var pidFile: String?
        if let node = fields["pid_file"], let path = string(node, "pid_file", expected: "a file path") {
            if path.isEmpty { report(node, "pid_file", "must not be empty (leave it out for no pid file)") } else { pidFile = path }
        }
        let server = readServer(fields)
        let upstream = readUpstream(fields)
        let redis = readRedis(fields)
        let cache = readCache(fields)
        let invalidation = readInvalidation(fields)
        let routes = readRoutes(fields, cache: cache)
        let accessLog = readAccessLog(fields)
        let log = readLog(fields)
        guard let listen, let upstream, let redis, let routes else { return nil }
        var config = GatewayConfig(listen: listen, server: server, upstream: upstream, redis: redis, cache: cache,
                                   routes: routes, fileName: file)
        config.invalidation = invalidation
        config.admin = readAdmin(fields)
        config.pidFile = pidFile
        config.instanceID = readInstanceID(fields)
        config.sourcePositions["listen"] = listenNode?.mark.map(GatewayConfig.SourcePosition.init)
        config.sourcePositions["upstream.url"] = upstreamURLMark.map(GatewayConfig.SourcePosition.init)
        config.sourcePositions["redis.url"] = redisURLMark.map(GatewayConfig.SourcePosition.init)
        config.accessLog = accessLog
        config.log = log
        return config
    }

    func readInvalidation(_ root: Fields) -> GatewayConfig.Invalidation? {
        guard let node = root["invalidation"],
              let f = fields(node, "invalidation", known: Keys.invalidation, nullIsEmpty: false)
        else { return nil }
        func name(_ key: String) -> String? {
            guard let node = f[key], let text = string(node, f.path(key)) else { return nil }
            if text.isEmpty { report(node, f.path(key), "must not be empty") }
            return text.isEmpty ? nil : text
        }
        let channel = name("channel")
        let stream = name("stream")
        let instance = name("instance")
        if f["channel"] == nil && f["stream"] == nil {
            report(f.mark, f.path, "set \"stream\" (a Redis stream, no event lost) or \"channel\" (Redis pub/sub) for the backend's purges")
            return nil
        }
        guard channel != nil || stream != nil else { return nil }
        var purgeAPI: GatewayConfig.PurgeAPI?
        if let node = f["purge_api"], let p = fields(node, f.path("purge_api"), known: Keys.purgeAPI, nullIsEmpty: false) {
            var api = GatewayConfig.PurgeAPI()
            if let node = p["token"], let token = secret(node, p.path("token")) {
                if token.utf8.count < 16 {
                    report(node, p.path("token"), "must be at least 16 characters (a guessable token opens purging to anyone)")
                } else {
                    api.token = token
                }
            }
            if let node = p["token_env"], let name = string(node, p.path("token_env")) {
                if name.isEmpty { report(node, p.path("token_env"), "must name an environment variable") } else { api.tokenEnvironmentVariable = name }
            }
            if let node = p["allow"], let items = list(node, p.path("allow")) {
                for (index, item) in items.enumerated() {
                    if let address = string(item, "\(p.path("allow"))[\(index)]", expected: "a client address") { api.allow.append(address) }
                }
            }
            api.onPublicPort = bool(p, "public", default: false)
            if p["token"] == nil && p["token_env"] == nil && (p["allow"] == nil || api.allow.isEmpty) {
                report(p.mark, p.path, "set token, token_env or allow: PURGE is never open to everyone")
            } else if api.token != nil || api.tokenEnvironmentVariable != nil || !api.allow.isEmpty {
                purgeAPI = api
            }
        }
        return GatewayConfig.Invalidation(channel: channel, stream: stream, instance: instance, purgeAPI: purgeAPI)
    }

    func readServer(_ root: Fields) -> GatewayConfig.Server {
        var server = GatewayConfig.Server()
        guard let node = root["server"],
              let f = fields(node, "server", known: Keys.server, nullIsEmpty: true)
        else { return server }
        server.eventLoops = int(f, "event_loops", default: server.eventLoops, 1...64)
        server.maxConnections = int(f, "max_connections", default: server.maxConnections, 1...1_000_000)
        server.maxRequestsPerConnection = int(
            f, "max_requests_per_connection", default: server.maxRequestsPerConnection, 1...10_000_000)
        server.headerTimeout = duration(f, "header_timeout", default: server.headerTimeout)
        server.idleTimeout = duration(f, "idle_timeout", default: server.idleTimeout)
        server.bodyTimeout = duration(f, "body_timeout", default: server.bodyTimeout)
        server.drainTimeout = duration(f, "drain_timeout", default: server.drainTimeout, allowZero: true)
        server.maxHeaderBytes = size(f, "max_header_bytes", default: server.maxHeaderBytes, (1 << 10)...(1 << 20))
        server.maxHeaders = int(f, "max_headers", default: server.maxHeaders, 1...1000)
        server.maxBodyBytes = size(f, "max_body_bytes", default: server.maxBodyBytes, 0...(1 << 30))
        return server
    }

    func readUpstream(_ root: Fields) -> GatewayConfig.Upstream? {
        guard let node = required(root, "upstream"),
              let f = fields(node, "upstream", known: Keys.upstream, nullIsEmpty: true)
        else { return nil }
        let urlNode = required(f, "url")
        upstreamURLMark = urlNode?.mark
        let url = urlNode.flatMap { node in
            parsed(node, f.path("url")) { try GatewayConfig.UpstreamURL(parsing: $0) }
        }
        let defaults = GatewayConfig.Upstream(url: GatewayConfig.UpstreamURL(host: "localhost"))
        let connectTimeout = duration(f, "connect_timeout", default: defaults.connectTimeout)
        let timeout = duration(f, "timeout", default: defaults.timeout)
        let maxConnections = int(f, "max_connections", default: defaults.maxConnections, 1...10_000)
        let maxQueue = int(f, "max_queue", default: defaults.maxQueue, 0...1_000_000)
        var host: String?
        if let node = f["host"], let text = string(node, f.path("host"), expected: "a host name, e.g. api.example.com") {
            if text.isEmpty || !text.utf8.allSatisfy(isHostByte) {
                report(node, f.path("host"), "invalid host \"\(text)\" (expected host[:port], e.g. api.example.com)")
            } else {
                host = text
            }
        }
        guard let url else { return nil }
        return GatewayConfig.Upstream(url: url, connectTimeout: connectTimeout, timeout: timeout,
                                      maxConnections: maxConnections, maxQueue: maxQueue, host: host)
    }

    func readRedis(_ root: Fields) -> GatewayConfig.Redis? {
        guard let node = required(root, "redis"),
              let f = fields(node, "redis", known: Keys.redis, nullIsEmpty: true)
        else { return nil }
        let urlNode = required(f, "url")
        redisURLMark = urlNode?.mark
        var url = urlNode.flatMap { node in
            parsed(node, f.path("url"), expandingEnvironment: true) { try GatewayConfig.RedisURL(parsing: $0) }
        }
        var passwordFile: String?
        if let node = f["password_file"], let path = secret(node, f.path("password_file"), expected: "a file path") {
            switch readPasswordFile(path) {
            case .failure(let why):
                report(node, f.path("password_file"), why.message)
            case .success(let password):
                passwordFile = path
                if url?.password != nil {
                    report(node, f.path("password_file"), "redis.url has a password too: give it in one place (remove it from the URL, or drop password_file)")
                } else {
                    url?.password = password
                }
            }
        }
        if let node = f["sentinel_password"], let password = secret(node, f.path("sentinel_password")) {
            if password.isEmpty {
                report(node, f.path("sentinel_password"), "is empty (remove it to ask the Sentinels without AUTH)")
            } else if url != nil, url?.sentinel == nil {
                report(node, f.path("sentinel_password"), "only a redis+sentinel:// URL asks Sentinels (redis.url is not one)")
            } else {
                url?.sentinel?.password = password
            }
        }
        let defaults = GatewayConfig.Redis(url: GatewayConfig.RedisURL(host: "localhost"))
        let timeout = duration(f, "timeout", default: defaults.timeout)
        var keyPrefix = defaults.keyPrefix
        if let node = f["key_prefix"], let text = string(node, f.path("key_prefix")) {
            if text.utf8.count > 128 {
                report(node, f.path("key_prefix"), "must be at most 128 bytes long, got \(text.utf8.count)")
            } else {
                keyPrefix = text
            }
        }
        let connections = int(f, "connections", default: defaults.connections, 1...64)
        guard let url else { return nil }
        var redis = GatewayConfig.Redis(url: url, timeout: timeout, keyPrefix: keyPrefix, connections: connections)
        redis.passwordFile = passwordFile
        return redis
    }

    /// The password in `path`, trailing line breaks removed; the reason (naming the path, never
    /// the contents) when it cannot be used.
    func readPasswordFile(_ path: String) -> Result<String, ConfigValueError> {
        guard !path.isEmpty else { return .failure(ConfigValueError("must name a file")) }
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot read it (permission denied, or not a file)" : "no such file"
            return .failure(ConfigValueError("cannot read the password from \"\(path)\": \(reason)"))
        }
        guard var text = String(validating: data, as: UTF8.self) else {
            return .failure(ConfigValueError("the password in \"\(path)\" is not valid UTF-8"))
        }
        // "\r\n" is one Character in Swift, hence the three suffixes.
        while text.hasSuffix("\n") || text.hasSuffix("\r") || text.hasSuffix("\r\n") { text.removeLast() }
        guard !text.isEmpty else { return .failure(ConfigValueError("\"\(path)\" is empty (expected the Redis password)")) }
        guard !text.contains(where: \.isNewline) else {
            return .failure(ConfigValueError("\"\(path)\" holds more than one line (expected only the Redis password)"))
        }
        return .success(text)
    }

    func readCache(_ root: Fields) -> GatewayConfig.Cache {
        var cache = GatewayConfig.Cache()
        guard let node = root["cache"],
              let f = fields(node, "cache", known: Keys.cache, nullIsEmpty: true)
        else { return cache }
        cache.maxBodySize = size(f, "max_body_size", default: cache.maxBodySize, 0...maxStoredBody)
        cache.maxWait = duration(f, "max_wait", default: cache.maxWait)
        cache.keyHost = bool(f, "key_host", default: cache.keyHost)
        cache.localTracking = bool(f, "local_tracking", default: cache.localTracking)
        if f["local_ttl"] != nil {
            cache.localTTL = duration(f, "local_ttl", default: cache.localTTL, allowZero: true)
            cache.localTTLWithoutTracking = cache.localTTL
        } else if !cache.localTracking {
            cache.localTTL = .zero
        }
        cache.localMaxBytes = size(f, "local_max_bytes", default: cache.localMaxBytes, 0...(4 << 30))
        cache.localMaxEntries = int(f, "local_max_entries", default: cache.localMaxEntries, 0...10_000_000)
        if let node = f["forward_headers"] {
            cache.forwardHeaders = readHeaderNames(node, f.path("forward_headers")) ?? cache.forwardHeaders
        }
        cache.freshness = readFreshness(f, defaults: cache.freshness)
        if let node = f["vary_headers"], let names = readHeaderNames(node, f.path("vary_headers"), owned: [:]) {
            cache.varyHeaders = names
        }
        cache.maxVariants = int(f, "max_variants", default: cache.maxVariants, 1...1000)
        cache.crossInstance = bool(f, "cross_instance", default: cache.crossInstance)
        return cache
    }

    // MARK: - Routes

    /// What is known of one route even when parts of it are invalid, for the checks across routes.
    struct RouteDraft {
        var name: String?
        var nameNode: Node?
        var pattern: RoutePattern?
        var matchNode: Node?
        var methods: MethodSet?
        var line = 0
        var route: Route?
    }

    func readRoutes(_ root: Fields, cache: GatewayConfig.Cache) -> [Route]? {
        guard let node = required(root, "routes"), let items = list(node, "routes") else { return nil }
        if items.isEmpty {
            report(node, "routes", "expected at least one route")
            return nil
        }
        let drafts = items.enumerated().map { readRoute($1, "routes[\($0)]", cache: cache) }

        func label(_ index: Int) -> String {
            let name = drafts[index].name.map { "route \"\($0)\"" } ?? "route"
            return "\(name) (routes[\(index)], line \(drafts[index].line))"
        }

        var firstByName: [String: Int] = [:]
        for (index, draft) in drafts.enumerated() {
            guard let name = draft.name else { continue }
            if let first = firstByName[name] {
                report(draft.nameNode, "routes[\(index)].name",
                       "duplicate route name \"\(name)\" (already used by routes[\(first)], line \(drafts[first].line))")
            } else {
                firstByName[name] = index
            }
        }

        let comparable = drafts.indices.filter { drafts[$0].pattern != nil && drafts[$0].methods != nil }
        let entries = comparable.map { (pattern: drafts[$0].pattern!, methods: drafts[$0].methods!) }
        for shadowing in Router.shadowedRoutes(entries) {
            let shadowed = comparable[shadowing.shadowed]
            let by = comparable[shadowing.by]
            report(drafts[shadowed].matchNode, "routes[\(shadowed)].match",
                   "this route can never match: every request it would take goes to the earlier \(label(by))")
        }

        let routes = drafts.compactMap(\.route)
        return routes.count == drafts.count ? routes : nil
    }

    func readRoute(_ node: Node, _ path: String, cache: GatewayConfig.Cache) -> RouteDraft {
        var draft = RouteDraft()
        draft.line = node.mark?.line ?? 0
        guard let f = fields(node, path, known: Keys.route, nullIsEmpty: false) else { return draft }

        if let node = required(f, "name"), let name = string(node, f.path("name")) {
            if isValidRouteName(name) {
                draft.name = name
                draft.nameNode = node
            } else {
                report(node, f.path("name"), "invalid route name \"\(name)\" (use letters, digits, \"_\" and \"-\", at most 64)")
            }
        }

        if let node = required(f, "match"), let text = string(node, f.path("match")) {
            do {
                draft.pattern = try RoutePattern(text)
                draft.matchNode = node
            } catch {
                report(node, f.path("match"), "invalid pattern \"\(text)\": \(error.reason)")
            }
        }

        var routeClass: RouteClass?
        if let node = required(f, "class", hint: " (public, per_user or pass)"),
           let text = string(node, f.path("class")) {
            routeClass = RouteClass(rawValue: text)
            if routeClass == nil {
                var message = "invalid class \"\(text)\" (expected public, per_user or pass)"
                if let suggestion = closestMatch(to: text, in: RouteClass.allCases.map(\.rawValue)) {
                    message = "invalid class \"\(text)\" (did you mean \"\(suggestion)\"? expected public, per_user or pass)"
                }
                report(node, f.path("class"), message)
            }
        }

        var methodsValid = true
        var methods: MethodSet?
        if let node = f["methods"] {
            methods = readMethods(node, f.path("methods"), routeClass: routeClass)
            methodsValid = methods != nil
        }
        if methods == nil, methodsValid, let routeClass {
            methods = routeClass == .pass ? .passDefault : .cacheable
        }
        draft.methods = methods

        var settings: RouteCacheSettings?
        if routeClass == .pass {
            for key in Keys.cachedOnly where f[key] != nil {
                report(f.keyNode(key), f.path(key), "\"\(key)\" is not allowed on a pass route (pass routes are never cached)")
            }
        } else {
            settings = readCacheSettings(f, routeClass: routeClass, defaults: cache)
        }

        if let pattern = draft.pattern, let settings, let tagsNode = f["tags"] {
            // A tag's {name} must be one of the pattern's captures, or it could never be filled.
            for tag in settings.tags {
                for name in Self.placeholders(in: tag) where !pattern.captureNames.contains(name) {
                    report(tagsNode, f.path("tags"), "tag \"\(tag)\" uses {\(name)}, which \"\(pattern.source)\" does not capture")
                }
            }
        }
        if let name = draft.name, let pattern = draft.pattern, let methods, let routeClass,
           routeClass == .pass || settings != nil {
            draft.route = Route(name: name, pattern: pattern, methods: methods, routeClass: routeClass,
                                cache: settings, line: draft.line)
        }
        return draft
    }

    /// The cache settings of a public or per_user route (or of a route whose class is invalid,
    /// so that its other fields are checked too; then the result is discarded).
    func readCacheSettings(_ f: Fields, routeClass: RouteClass?, defaults: GatewayConfig.Cache) -> RouteCacheSettings? {
        var valid = true
        let className = routeClass?.rawValue ?? "cached"

        var ttl: Duration?
        var originMode = false
        if let node = f["ttl"] {
            if node.scalar?.string == "origin" {
                originMode = true
            } else {
                ttl = duration(node, f.path("ttl"))
            }
        } else if routeClass != nil {
            report(f.mark, f.path, "missing required field \"ttl\" (how long a \(className) route's responses are cached, e.g. ttl: 30s)")
        }

        var ttlByStatus: [Int: Duration] = [:]
        var originStatuses: Set<Int> = [200]
        if let node = f["ttl_by_status"] {
            if originMode {
                originStatuses = readOriginStatuses(node, f.path("ttl_by_status")) ?? { valid = false; return [] }()
            } else {
                ttlByStatus = readTTLByStatus(node, f.path("ttl_by_status")) ?? { valid = false; return [:] }()
            }
        }
        // Origin mode only: the longest freshness the origin may give, and heuristic freshness.
        for key in ["max_ttl", "heuristic"] where !originMode && f[key] != nil {
            report(f.keyNode(key), f.path(key), "\"\(key)\" is only allowed with \"ttl: origin\" (a forced ttl is the lifetime itself)")
            valid = false
        }
        if originMode {
            ttl = duration(f, "max_ttl", default: .seconds(86_400))
        }
        let heuristic = originMode ? bool(f, "heuristic", default: false) : false

        var query: [String] = []
        if let node = f["query"] {
            query = readQuery(node, f.path("query")) ?? { valid = false; return [] }()
        }

        var unlistedQuery = UnlistedQueryPolicy.strip
        if let node = f["unlisted_query"], let text = string(node, f.path("unlisted_query")) {
            if let policy = UnlistedQueryPolicy(rawValue: text) {
                unlistedQuery = policy
            } else {
                report(node, f.path("unlisted_query"), "invalid value \"\(text)\" (expected strip or bypass)")
            }
        }

        var allowAuthorized = false
        if let node = f["allow_authorized"] {
            if routeClass == .perUser {
                report(f.keyNode("allow_authorized"), f.path("allow_authorized"),
                       "\"allow_authorized\" is only allowed on public routes")
                valid = false
            } else {
                allowAuthorized = bool(node, f.path("allow_authorized")) ?? false
            }
        }

        var identity: IdentitySource?
        if let node = f["identity"] {
            if routeClass == .public {
                report(f.keyNode("identity"), f.path("identity"),
                       "\"identity\" is only allowed on per_user routes (a public route has one answer for everyone)")
                valid = false
            } else {
                identity = readIdentity(node, f.path("identity"))
            }
        } else if routeClass == .perUser {
            report(f.mark, f.path, "missing required field \"identity\" (a per_user route is keyed by the user's identity: { header: NAME } or { cookie: NAME })")
        }

        let maxBodySize = size(f, "max_body_size", default: defaults.maxBodySize, 0...maxStoredBody)
        let maxWait = duration(f, "max_wait", default: defaults.maxWait)
        let keyHost = bool(f, "key_host", default: defaults.keyHost)
        var forwardHeaders = defaults.forwardHeaders
        if let node = f["forward_headers"] {
            forwardHeaders = readHeaderNames(node, f.path("forward_headers")) ?? { valid = false; return [] }()
        }
        let freshness = readFreshness(f, defaults: defaults.freshness)
        var varyHeaders = defaults.varyHeaders
        if let node = f["vary_headers"] {
            varyHeaders = readHeaderNames(node, f.path("vary_headers"), owned: [:]) ?? { valid = false; return [] }()
        }
        let maxVariants = int(f, "max_variants", default: defaults.maxVariants, 1...1000)
        var tags: [String] = []
        if let node = f["tags"], let items = list(node, f.path("tags")) {
            for (index, item) in items.enumerated() {
                let path = "\(f.path("tags"))[\(index)]"
                guard let tag = string(item, path, expected: "a tag") else { valid = false; continue }
                if tag.isEmpty || tag.contains(where: { $0 == " " || $0 == "," || $0 == "\t" }) {
                    report(item, path, "invalid tag \"\(tag)\" (no spaces or commas: tags are listed with them)")
                    valid = false
                } else {
                    tags.append(tag)
                }
            }
        }
        var tagsHeader: String?
        if let node = f["tags_header"], let name = string(node, f.path("tags_header"), expected: "a header name") {
            if name.isEmpty || !name.utf8.allSatisfy(isTokenByte) {
                report(node, f.path("tags_header"), "invalid header name \"\(name)\"")
                valid = false
            } else {
                tagsHeader = name.lowercased()
            }
        }
        let exposeTagsHeader = bool(f, "expose_tags_header", default: false)

        guard valid, let ttl, routeClass == .public || identity != nil else { return nil }
        return RouteCacheSettings(
            mode: originMode ? .origin(OriginModeSettings(statuses: originStatuses, heuristic: heuristic)) : .forcedTTL,
            ttl: ttl, ttlByStatus: ttlByStatus, query: query, unlistedQuery: unlistedQuery,
            allowAuthorized: allowAuthorized, identity: identity, maxBodySize: maxBodySize, maxWait: maxWait,
            keyHost: keyHost, forwardHeaders: Set(forwardHeaders), freshness: freshness,
            varyHeaders: Set(varyHeaders), maxVariants: maxVariants, tags: tags, tagsHeader: tagsHeader,
            exposeTagsHeader: exposeTagsHeader)
    }

    /// The `{name}` placeholders of a tag template.
    static func placeholders(in tag: String) -> [String] {
        var names: [String] = []
        var rest = Substring(tag)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            names.append(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return names
    }

    /// The freshness keys of `cache:` or of a route; what is absent comes from `defaults`.
    func readFreshness(_ f: Fields, defaults: FreshnessSettings) -> FreshnessSettings {
        var result = defaults
        result.staleWhileRevalidate = duration(f, "stale_while_revalidate", default: defaults.staleWhileRevalidate, allowZero: true)
        result.staleIfError = duration(f, "stale_if_error", default: defaults.staleIfError, allowZero: true)
        result.keep = duration(f, "keep", default: defaults.keep, allowZero: true)
        result.uncacheableTTL = duration(f, "uncacheable_ttl", default: defaults.uncacheableTTL, allowZero: true)
        result.maxWaiters = int(f, "max_waiters", default: defaults.maxWaiters, 1...1_000_000)
        if let node = f["stale_if_error_statuses"], let items = list(node, f.path("stale_if_error_statuses")) {
            var statuses = Set<Int>()
            var valid = true
            for (index, item) in items.enumerated() {
                let path = "\(f.path("stale_if_error_statuses"))[\(index)]"
                if let status = int(item, path, 400...599) { statuses.insert(status) } else { valid = false }
            }
            if valid { result.staleIfErrorStatuses = statuses }
        }
        if let node = f["on_store_error"], let text = string(node, f.path("on_store_error")) {
            if let policy = StoreErrorPolicy(rawValue: text) {
                result.onStoreError = policy
            } else {
                report(node, f.path("on_store_error"), "invalid value \"\(text)\" (expected origin or fail)")
            }
        }
        return result
    }

    /// Header names (tokens), lowercased. Names the gateway owns are refused with the reason.
    func readHeaderNames(_ node: Node, _ path: String, owned: [String: String] = ownedHeaders) -> [String]? {
        guard let items = list(node, path) else { return nil }
        var names: [String] = []
        var valid = true
        for (index, item) in items.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let name = string(item, itemPath, expected: "a header name") else {
                valid = false
                continue
            }
            let lower = name.lowercased()
            if name.isEmpty || !name.utf8.allSatisfy(isTokenByte) {
                report(item, itemPath, "invalid header name \"\(name)\"")
                valid = false
            } else if let reason = owned[lower] {
                report(item, itemPath, "\"\(name)\" cannot be forwarded from the client: \(reason)")
                valid = false
            } else if !names.contains(lower) {
                names.append(lower)
            }
        }
        return valid ? names : nil
    }

    func readMethods(_ node: Node, _ path: String, routeClass: RouteClass?) -> MethodSet? {
        guard let items = list(node, path) else { return nil }
        if items.isEmpty {
            report(node, path, "expected at least one method")
            return nil
        }
        var methods: MethodSet = []
        var valid = true
        let known = MethodSet.names.map(\.name)
        for (index, item) in items.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let name = string(item, itemPath, expected: "a method name") else {
                valid = false
                continue
            }
            guard let method = MethodSet(name: name) else {
                if MethodSet(name: name.uppercased()) != nil {
                    report(item, itemPath, "methods are case-sensitive: write \"\(name.uppercased())\", not \"\(name)\"")
                } else if let suggestion = closestMatch(to: name, in: known) {
                    report(item, itemPath, "unknown method \"\(name)\" (did you mean \"\(suggestion)\"?)")
                } else {
                    report(item, itemPath, "unknown method \"\(name)\" (expected one of: \(known.joined(separator: ", ")))")
                }
                valid = false
                continue
            }
            if methods.contains(method) {
                report(item, itemPath, "duplicate method \"\(name)\"")
                valid = false
            } else if let routeClass, routeClass != .pass, !MethodSet.cacheable.contains(method) {
                report(item, itemPath,
                       "\(name) cannot be cached: a \(routeClass.rawValue) route takes only GET and HEAD (use a pass route for \(name))")
                valid = false
            }
            methods.insert(method)
        }
        return valid ? methods : nil
    }

    func readTTLByStatus(_ node: Node, _ path: String) -> [Int: Duration]? {
        if isNull(node) { return [:] }
        guard case .mapping(let mapping) = node else {
            report(node, path, "expected a mapping of status to duration, e.g. { 404: 30s }, found \(describe(node))")
            return nil
        }
        var result: [Int: Duration] = [:]
        var valid = true
        for (key, value) in mapping {
            guard let status = statusKey(key, path, on200: "status 200 is cached for the route's \"ttl\"; do not list it here") else {
                valid = false
                continue
            }
            if let ttl = duration(value, "\(path).\(status)") {
                result[status] = ttl
            } else {
                valid = false
            }
        }
        return valid ? result : nil
    }

    /// A status code as a `ttl_by_status` key: 100–599 and not 200 (which the route's own rule
    /// covers, as `on200` says).
    func statusKey(_ key: Node, _ path: String, on200: String) -> Int? {
        guard let status = Int(key.scalar?.string ?? ""), (100...599).contains(status) else {
            report(key, path, "invalid status \(describe(key)) (expected an HTTP status code between 100 and 599)")
            return nil
        }
        if status == 200 {
            report(key, path, on200)
            return nil
        }
        return status
    }

    /// `ttl_by_status` on a route with `ttl: origin`: the statuses that may be stored (besides
    /// 200), each with the value `origin`; their freshness is the origin's.
    func readOriginStatuses(_ node: Node, _ path: String) -> Set<Int>? {
        if isNull(node) { return [200] }
        guard case .mapping(let mapping) = node else {
            report(node, path, "expected a mapping of status to origin, e.g. { 404: origin }, found \(describe(node))")
            return nil
        }
        var result: Set<Int> = [200]
        var valid = true
        for (key, value) in mapping {
            guard let status = statusKey(key, path, on200: "status 200 is always stored on a route with \"ttl: origin\"; do not list it here") else {
                valid = false
                continue
            }
            guard value.scalar?.string == "origin" else {
                report(value, "\(path).\(status)", "expected origin (the route has \"ttl: origin\": the origin's Cache-Control gives each status its freshness), found \(describe(value))")
                valid = false
                continue
            }
            result.insert(status)
        }
        return valid ? result : nil
    }

    func readQuery(_ node: Node, _ path: String) -> [String]? {
        guard let items = list(node, path) else { return nil }
        var names: [String] = []
        var valid = true
        for (index, item) in items.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let name = string(item, itemPath, expected: "a query parameter name") else {
                valid = false
                continue
            }
            if name.isEmpty {
                report(item, itemPath, "empty query parameter name")
                valid = false
            } else if let bad = name.utf8.first(where: { !isPathByte($0) || $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "=") }) {
                report(item, itemPath, "\(describeByte(bad)) is not allowed in a query parameter name")
                valid = false
            } else if names.contains(name) {
                report(item, itemPath, "duplicate query parameter \"\(name)\"")
                valid = false
            } else {
                names.append(name)
            }
        }
        return valid ? names.sorted() : nil
    }

    func readIdentity(_ node: Node, _ path: String) -> IdentitySource? {
        let usage = "{ header: NAME } or { cookie: NAME }"
        guard let f = fields(node, path, known: Keys.identity, nullIsEmpty: false, expected: usage) else { return nil }
        let header = f["header"]
        let cookie = f["cookie"]
        guard (header == nil) != (cookie == nil) else {
            // Both given, or an empty mapping; a lone misspelt key was already reported.
            if header != nil || node.mapping?.isEmpty == true {
                report(f.mark, path, "use exactly one of \"header\" or \"cookie\", e.g. { header: Authorization } or { cookie: session_id }")
            }
            return nil
        }
        let key = header != nil ? "header" : "cookie"
        guard let value = header ?? cookie, let name = string(value, f.path(key), expected: "a \(key) name") else {
            return nil
        }
        guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else {
            report(value, f.path(key), "invalid \(key) name \"\(name)\"")
            return nil
        }
        return header != nil ? .header(name) : .cookie(name)
    }
}

/// Request headers a route cannot list in `forward_headers`, and why.
private let ownedHeaders: [String: String] = [
    "host": "the gateway sends upstream.host, or the client's Host when key_host is true",
    "content-length": "the gateway frames the request itself",
    "transfer-encoding": "the gateway frames the request itself",
    "connection": "hop-by-hop headers are never forwarded",
    "x-forwarded-for": "the gateway sets it to the client's address",
    "x-forwarded-proto": "the gateway sets it",
    "authorization": "it is forwarded on per_user routes keyed by it and on allow_authorized routes",
    "cookie": "it is forwarded on per_user routes keyed by a cookie and on allow_authorized routes",
]

/// Bytes of `host[:port]`, with brackets for IPv6.
private func isHostByte(_ byte: UInt8) -> Bool {
    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
        || "-._:[]".utf8.contains(byte)
}

/// `[A-Za-z0-9_-]{1,64}`: route names are metric labels.
private func isValidRouteName(_ name: String) -> Bool {
    !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy { byte in
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }
}

/// RFC 9110 `tchar`: header and cookie names.
private func isTokenByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}
