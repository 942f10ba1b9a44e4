import GatewayCore
import GatewayHTTP
import Logging

/// Purges announced by the backend on the invalidation channel.
extension Gateway {
    /// Handles one message from the invalidation channel (any thread): `purge <path>` or
    /// `purge-route <route name>`. Work happens on the first event loop.
    public func invalidate(_ message: [UInt8]) {
        let text = String(decoding: message, as: UTF8.self).trimmingSpaces()
        let parts = text.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2, let loop = resources.first?.loop else {
            logger.warning("ignored invalidation message", metadata: ["message": "\(text.prefix(200))"])
            return
        }
        let argument = parts[1].trimmingSpaces()
        switch parts[0] {
        case "purge":
            loop.execute { self.purgePath(argument) }
        case "purge-route":
            guard let route = config.routes.first(where: { $0.name == argument }), route.cache != nil else {
                logger.warning("ignored purge of an unknown or uncached route", metadata: ["route": "\(argument)"])
                return
            }
            loop.execute { self.purgeRoute(argument, cursor: "0", removed: 0) }
        default:
            logger.warning("ignored invalidation message", metadata: ["message": "\(text.prefix(200))"])
        }
    }

    /// Removes every entry stored for `path` (all users, all query variants), found through the
    /// path's index set. Runs on `resources`' loop (the first loop's by default); `completion`
    /// gets the number of entries removed, or nil when Redis did not answer.
    func purgePath(_ path: String, on resources: LoopResources? = nil, completion: (@Sendable (Int?) -> Void)? = nil) {
        let resources = resources ?? self.resources[0]
        let index = Array(keySpace.pathIndex(path: path).utf8)
        resources.redisSend([Array("SMEMBERS".utf8), index]) { [self] result in
            guard case .success(.array(let members)) = result else {
                logger.warning("purge failed: Redis did not answer", metadata: ["path": "\(path)"])
                completion?(nil)
                return
            }
            let keys: [[UInt8]] = members.compactMap { if case .string(let key) = $0 { key } else { nil } }
            let purged = Set(keys.map { String(decoding: $0, as: UTF8.self) })
            // Fills of this path still in flight must not store what they fetched before the change.
            flights.invalidate { key, tag in tag == path || purged.contains(key) }
            uncacheable.remove { purged.contains($0) }
            removeFromLocalTiers(purged)
            stats.purged(keys.count)
            resources.redisSend([Array("UNLINK".utf8)] + keys + [index]) { _ in
                completion?(keys.count)
            }
            logger.debug("purged", metadata: ["path": "\(path)", "entries": "\(keys.count)"])
        }
    }

    /// RFC 9111 §4.4: a successful unsafe request (POST, PUT, PATCH, DELETE) changes what the
    /// cache holds for its path, and for the `Location`/`Content-Location` it names on this
    /// origin. Their entries are purged before the client is answered, so that the client's next
    /// GET reads its own write.
    func invalidateAfterUnsafe(_ method: String, path: String, response: HTTPHeaders, status: Int,
                               on resources: LoopResources, then answer: @escaping @Sendable () -> Void) {
        guard Self.unsafeMethods.contains(method), (200..<400).contains(status) else { return answer() }
        var paths = [path]
        for name in ["Location", "Content-Location"] {
            if let value = response[name], let other = sameOriginPath(value), !paths.contains(other) { paths.append(other) }
        }
        let remaining = Countdown(paths.count, then: answer)
        for target in paths {
            purgePath(target, on: resources) { _ in remaining.tick() }
        }
    }

    static let unsafeMethods: Set<String> = ["POST", "PUT", "PATCH", "DELETE"]

    /// The path of a `Location`-style reference if it points at this gateway's origin: a
    /// path-absolute reference (`/users/42`), or one whose authority is `upstream.host`.
    func sameOriginPath(_ reference: String) -> String? {
        var rest = Substring(reference)
        let absolute = "http://" + config.upstream.host
        if rest.lowercased().hasPrefix(absolute.lowercased()) {
            rest = rest.dropFirst(absolute.count)
            guard rest.first == "/" else { return rest.isEmpty ? "/" : nil }
        }
        guard rest.hasPrefix("/") && !rest.hasPrefix("//") else { return nil }
        return String(rest.prefix { $0 != "?" && $0 != "#" })
    }

    /// Walks the route's keys with SCAN (never KEYS: it would block Redis) and unlinks them.
    func purgeRoute(_ name: String, cursor: String, removed: Int) {
        let resources = self.resources[0]
        if cursor == "0" {
            // Fills of the route in flight now must not store what predates the change.
            let routePrefix = keySpace.entryPrefix(route: name)
            flights.invalidate { key, _ in key.hasPrefix(routePrefix) }
        }
        let pattern = keySpace.entryPattern(route: name)
        let scan = ["SCAN", cursor, "MATCH", pattern, "COUNT", "500"].map { Array($0.utf8) }
        resources.redisSend(scan) { [self] result in
            guard case .success(.array(let reply)) = result, reply.count == 2,
                case .string(let next) = reply[0], case .array(let found) = reply[1]
            else {
                logger.warning("purge failed: Redis did not answer", metadata: ["route": "\(name)"])
                return
            }
            let keys: [[UInt8]] = found.compactMap { if case .string(let key) = $0 { key } else { nil } }
            if !keys.isEmpty { resources.redisSend([Array("UNLINK".utf8)] + keys) { _ in } }
            let nextCursor = String(decoding: next, as: UTF8.self)
            if nextCursor == "0" {
                let routePrefix = keySpace.entryPrefix(route: name)
                flights.invalidate { key, _ in key.hasPrefix(routePrefix) }
                uncacheable.remove { $0.hasPrefix(routePrefix) }
                removeFromLocalTiers(where: { $0.hasPrefix(routePrefix) })
                stats.purged(removed + keys.count)
                logger.info("purged route", metadata: ["route": "\(name)", "entries": "\(removed + keys.count)"])
            } else {
                purgeRoute(name, cursor: nextCursor, removed: removed + keys.count)
            }
        }
    }

    /// Drops purged keys from every loop's in-process tier (each on its own loop).
    func removeFromLocalTiers(_ keys: Set<String>) {
        guard !keys.isEmpty else { return }
        removeFromLocalTiers(where: { keys.contains($0) })
    }

    func removeFromLocalTiers(where matches: @escaping @Sendable (String) -> Bool) {
        for resources in resources where resources.local.isEnabled {
            resources.loop.execute { resources.local.remove(where: matches) }
        }
    }
}

/// Calls `then` once `tick` has been called `count` times (on any one loop).
private final class Countdown: @unchecked Sendable {
    private var left: Int
    private let then: @Sendable () -> Void
    init(_ count: Int, then: @escaping @Sendable () -> Void) {
        left = count
        self.then = then
    }
    func tick() {
        left -= 1
        if left == 0 { then() }
    }
}
