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

    func purgePath(_ path: String) {
        let resources = self.resources[0]
        let index = Array(keySpace.pathIndex(path: path).utf8)
        resources.redisSend([Array("SMEMBERS".utf8), index]) { [self] result in
            guard case .success(.array(let members)) = result else {
                logger.warning("purge failed: Redis did not answer", metadata: ["path": "\(path)"])
                return
            }
            let keys: [[UInt8]] = members.compactMap { if case .string(let key) = $0 { key } else { nil } }
            resources.redisSend([Array("UNLINK".utf8)] + keys + [index]) { _ in }
            let purged = Set(keys.map { String(decoding: $0, as: UTF8.self) })
            flights.forgetHeld { purged.contains($0) }
            uncacheable.remove { purged.contains($0) }
            clearLocalTiers()
            stats.purged(keys.count)
            logger.info("purged", metadata: ["path": "\(path)", "entries": "\(keys.count)"])
        }
    }

    /// Walks the route's keys with SCAN (never KEYS: it would block Redis) and unlinks them.
    func purgeRoute(_ name: String, cursor: String, removed: Int) {
        let resources = self.resources[0]
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
                flights.forgetHeld { $0.hasPrefix(routePrefix) }
                uncacheable.remove { $0.hasPrefix(routePrefix) }
                clearLocalTiers()
                stats.purged(removed + keys.count)
                logger.info("purged route", metadata: ["route": "\(name)", "entries": "\(removed + keys.count)"])
            } else {
                purgeRoute(name, cursor: nextCursor, removed: removed + keys.count)
            }
        }
    }

    /// The in-process tiers hold seconds' worth of entries: after a purge, drop them all.
    func clearLocalTiers() {
        for resources in resources {
            resources.loop.execute { resources.local.removeAll() }
        }
    }

}
