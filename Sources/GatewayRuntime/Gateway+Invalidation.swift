import Dispatch
import GatewayCore
import GatewayHTTP
import GatewayRedis
import Logging

/// Purges announced by the backend on the invalidation channel.
extension Gateway {
    /// Handles one message from the pub/sub channel (any thread): a JSON event or a text command
    /// (``InvalidationEvent``). A purge Redis could not carry out is tried again with backoff
    /// (pub/sub does not redeliver), up to ``purgeAttempts`` times.
    public func invalidate(_ message: [UInt8]) {
        switch InvalidationEvent.parse(message) {
        case .success(let event):
            apply(event, attempt: 1)
        case .failure(let malformed):
            stats.poisonEvent()
            logger.warning("ignored invalidation message", metadata: [
                "reason": "\(malformed)", "message": "\(String(decoding: message.prefix(200), as: UTF8.self))",
            ])
        }
    }

    static let purgeAttempts = 8

    /// One stream entry: its `event` field (or, without one, its first field) is an event as on
    /// the channel. Applied → acknowledged; Redis failing → left pending and retried by the
    /// consumer; not an event → acknowledged as poison, so it never blocks the stream.
    func applyStreamEntry(id: String, fields: [(String, [UInt8])],
                          completion: @escaping @Sendable (RedisStreamConsumer.Outcome) -> Void) {
        guard let body = fields.first(where: { $0.0 == "event" })?.1 ?? fields.first?.1 else {
            stats.poisonEvent()
            return completion(.poison)
        }
        switch InvalidationEvent.parse(body) {
        case .success(let event):
            apply(event) { applied in completion(applied ? .applied : .retry) }
        case .failure(let malformed):
            stats.poisonEvent()
            logger.warning("ignored stream entry", metadata: ["redis.stream.entry_id": "\(id)", "reason": "\(malformed)"])
            completion(.poison)
        }
    }

    /// Empties every loop's in-process tier (after a gap in the purges it heard).
    func clearLocalTiers() {
        // `local` is read on its loop only: a reload may be replacing it.
        for resources in resources {
            resources.loop.execute { if resources.local.isEnabled { resources.local.removeAll() } }
        }
    }

    private func apply(_ event: InvalidationEvent, attempt: Int) {
        // Each attempt on the next loop: another loop's connection may be up while one reconnects.
        apply(event, loop: attempt - 1) { [self] applied in
            guard !applied else { return }
            guard attempt < Self.purgeAttempts else {
                logger.error("purge given up: Redis did not carry it out", metadata: [
                    "paths": "\(event.paths)", "routes": "\(event.routes)", "attempts": "\(attempt)",
                ])
                return
            }
            // 100 ms, 200 ms, … up to 3.2 s: a reconnect takes at most about a second.
            let delay = min(3200, 100 << (attempt - 1))
            resources[0].loop.queue.asyncAfter(deadline: .now() + .milliseconds(delay)) { [self] in
                apply(event, attempt: attempt + 1)
            }
        }
    }

    /// Carries out one event (any thread) on event loop `loop` (modulo their count);
    /// `completion(true)` once every part of it was applied, `false` if Redis failed for any
    /// (applying again is harmless).
    public func apply(_ event: InvalidationEvent, loop: Int = 0, completion: @escaping @Sendable (Bool) -> Void) {
        let routes = event.routes.filter { name in
            let known = policy.config.routes.contains { $0.name == name && $0.cache != nil }
            if !known { logger.warning("ignored purge of an unknown or uncached route", metadata: ["route": "\(name)"]) }
            return known
        }
        let parts = event.paths.count + routes.count + event.tags.count + event.prefixes.count
        guard parts > 0, !resources.isEmpty else { return completion(true) }
        let resources = self.resources[loop % self.resources.count]
        let outcome = PurgeOutcome(parts: parts, completion: completion)
        resources.loop.execute { [self] in
            for path in event.paths {
                purgePath(path, soft: event.soft, on: resources) { removed in outcome.part(ok: removed != nil) }
            }
            for route in routes {
                purgeRoute(route, soft: event.soft, on: resources) { ok in outcome.part(ok: ok) }
            }
            for tag in event.tags {
                purgeTag(tag, soft: event.soft, on: resources) { removed in outcome.part(ok: removed != nil) }
            }
            for prefix in event.prefixes {
                // Fills under the prefix in flight now must not store what predates the change.
                flights.invalidate { _, path in path?.hasPrefix(prefix) == true }
                purgePrefix(prefix, soft: event.soft, on: resources) { ok in outcome.part(ok: ok) }
            }
        }
    }

    /// Removes every entry stored for `path` (all users, all query variants), found through the
    /// path's index set. Runs on `resources`' loop (the first loop's by default); `completion`
    /// gets the number of entries removed, or nil when Redis did not answer.
    /// With `soft`, the entries are marked stale instead (``softPurge(_:on:completion:)``).
    func purgePath(_ path: String, soft: Bool = false, on resources: LoopResources? = nil, completion: (@Sendable (Int?) -> Void)? = nil) {
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
            if soft {
                softPurge(keys, on: resources) { ok in completion?(ok ? keys.count : nil) }
            } else {
                unlinkEach(keys + [index], on: resources) { ok in completion?(ok ? keys.count : nil) }
            }
            logger.debug("purged", metadata: ["path": "\(path)", "entries": "\(keys.count)"])
        }
    }

    /// Removes (or with `soft`, marks stale) every entry carrying `tag`, found through the tag's
    /// sorted set. Fills in flight cannot be matched (their tags come with their answer).
    func purgeTag(_ tag: String, soft: Bool, on resources: LoopResources, completion: @escaping @Sendable (Int?) -> Void) {
        let index = Array(keySpace.tagIndex(tag: tag).utf8)
        resources.redisSend([Array("ZRANGE".utf8), index, Array("0".utf8), Array("-1".utf8)]) { [self] result in
            guard case .success(.array(let members)) = result else {
                logger.warning("purge failed: Redis did not answer", metadata: ["tag": "\(tag)"])
                return completion(nil)
            }
            let keys: [[UInt8]] = members.compactMap { if case .string(let key) = $0 { key } else { nil } }
            let purged = Set(keys.map { String(decoding: $0, as: UTF8.self) })
            flights.invalidate { key, _ in purged.contains(key) }
            uncacheable.remove { purged.contains($0) }
            removeFromLocalTiers(purged)
            stats.purged(keys.count)
            if soft {
                softPurge(keys, on: resources) { ok in completion(ok ? keys.count : nil) }
            } else {
                unlinkEach(keys + [index], on: resources) { ok in completion(ok ? keys.count : nil) }
            }
        }
    }

    /// Every path under `prefix`: its path indexes are found with SCAN (`<prefix>i:<path…>*`), so
    /// this walks the whole keyspace, COUNT 1000 at a time (about a thousand round trips for a
    /// million keys, none of them blocking Redis); each path found is purged as by `purge <path>`.
    /// On a Redis Cluster every master is walked (SCAN sees one node's keys).
    func purgePrefix(_ prefix: String, soft: Bool, on resources: LoopResources, completion: @escaping @Sendable (Bool) -> Void) {
        let nodes = resources.clients.redis.scanTargets
        let outcome = PurgeOutcome(parts: nodes.count, completion: completion)
        for node in nodes {
            purgePrefix(prefix, cursor: "0", node: node, soft: soft, on: resources, allOK: true) { ok in outcome.part(ok: ok) }
        }
    }

    private func purgePrefix(_ prefix: String, cursor: String, node: RedisConnection, soft: Bool, on resources: LoopResources,
                             allOK: Bool, completion: @escaping @Sendable (Bool) -> Void) {
        let pattern = keySpace.pathIndexPattern(under: prefix)
        let scan = ["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"].map { Array($0.utf8) }
        node.send(scan) { [self] result in
            guard let (nextCursor, found) = Self.scanPage(result) else {
                logger.warning("purge failed: Redis did not answer", metadata: ["prefix": "\(prefix)"])
                return completion(false)
            }
            let paths = found.compactMap { key in keySpace.path(ofIndex: String(decoding: key, as: UTF8.self)) }
            let continueWalk: @Sendable (Bool) -> Void = { [self] ok in
                if nextCursor == "0" {
                    completion(allOK && ok)
                } else {
                    purgePrefix(prefix, cursor: nextCursor, node: node, soft: soft, on: resources, allOK: allOK && ok, completion: completion)
                }
            }
            guard !paths.isEmpty else { return continueWalk(true) }
            let batch = PurgeOutcome(parts: paths.count, completion: continueWalk)
            for path in paths {
                purgePath(path, soft: soft, on: resources) { removed in batch.part(ok: removed != nil) }
            }
        }
    }

    /// One SCAN reply: the next cursor and the keys found; nil when Redis did not answer one.
    private static func scanPage(_ result: Result<RedisReply, RedisError>) -> (String, [[UInt8]])? {
        guard case .success(.array(let reply)) = result, reply.count == 2,
            case .string(let next) = reply[0], case .array(let found) = reply[1]
        else { return nil }
        return (String(decoding: next, as: UTF8.self), found.compactMap { if case .string(let key) = $0 { key } else { nil } })
    }

    /// `UNLINK` of each key on its own (pipelined): the gateway sends no multi-key command, so
    /// that a Redis Cluster can take every one of them (keys of one purge sit in many slots).
    func unlinkEach(_ keys: [[UInt8]], on resources: LoopResources, completion: @escaping @Sendable (Bool) -> Void) {
        guard !keys.isEmpty else { return completion(true) }
        let outcome = PurgeOutcome(parts: keys.count, completion: completion)
        for key in keys {
            resources.redisSend([Array("UNLINK".utf8), key]) { result in
                if case .failure = result { outcome.part(ok: false) } else { outcome.part(ok: true) }
            }
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
        let absolute = "http://" + policy.config.upstream.host
        if rest.lowercased().hasPrefix(absolute.lowercased()) {
            rest = rest.dropFirst(absolute.count)
            guard rest.first == "/" else { return rest.isEmpty ? "/" : nil }
        }
        guard rest.hasPrefix("/") && !rest.hasPrefix("//") else { return nil }
        return String(rest.prefix { $0 != "?" && $0 != "#" })
    }

    /// Walks the route's keys with SCAN (never KEYS: it would block Redis) and unlinks them; on a
    /// Redis Cluster, on every master.
    func purgeRoute(_ name: String, soft: Bool = false, on resources: LoopResources? = nil,
                    completion: (@Sendable (Bool) -> Void)? = nil) {
        let resources = resources ?? self.resources[0]
        let routePrefix = keySpace.entryPrefix(route: name)
        // Fills of the route in flight now must not store what predates the change.
        flights.invalidate { key, _ in key.hasPrefix(routePrefix) }
        let nodes = resources.clients.redis.scanTargets
        let tally = RouteTally(nodes: nodes.count) { [self] ok, removed in
            flights.invalidate { key, _ in key.hasPrefix(routePrefix) }
            uncacheable.remove { $0.hasPrefix(routePrefix) }
            removeFromLocalTiers(where: { $0.hasPrefix(routePrefix) })
            stats.purged(removed)
            if ok { logger.info("purged route", metadata: ["route": "\(name)", "entries": "\(removed)"]) }
            completion?(ok)
        }
        for node in nodes {
            purgeRoute(name, cursor: "0", node: node, removed: 0, soft: soft, on: resources) { ok, removed in tally.node(ok: ok, removed: removed) }
        }
    }

    private func purgeRoute(_ name: String, cursor: String, node: RedisConnection, removed: Int, soft: Bool, on resources: LoopResources,
                            completion: @escaping @Sendable (Bool, Int) -> Void) {
        let pattern = keySpace.entryPattern(route: name)
        let scan = ["SCAN", cursor, "MATCH", pattern, "COUNT", "500"].map { Array($0.utf8) }
        node.send(scan) { [self] result in
            guard let (nextCursor, keys) = Self.scanPage(result) else {
                logger.warning("purge failed: Redis did not answer", metadata: ["route": "\(name)"])
                return completion(false, removed)
            }
            if !keys.isEmpty {
                if soft { softPurge(keys, on: resources) { _ in } } else { unlinkEach(keys, on: resources) { _ in } }
            }
            if nextCursor == "0" {
                completion(true, removed + keys.count)
            } else {
                purgeRoute(name, cursor: nextCursor, node: node, removed: removed + keys.count, soft: soft, on: resources, completion: completion)
            }
        }
    }

    /// A soft purge: each entry is rewritten as stale from now, keeping the lengths of its stale
    /// windows, so it is served under `stale_while_revalidate`/`stale_if_error` while one
    /// refresh fetches the new version, instead of every request going upstream at once. Entries
    /// without a stale window are removed (there is nothing to serve them under).
    func softPurge(_ keys: [[UInt8]], on resources: LoopResources, completion: @escaping @Sendable (Bool) -> Void) {
        guard !keys.isEmpty else { return completion(true) }
        let outcome = PurgeOutcome(parts: keys.count, completion: completion)
        for key in keys {
            resources.redisGet(key) { result in
                guard case .success(let value) = result else { return outcome.part(ok: false) }
                guard let value, let entry = CachedResponse.decode(value) else { return outcome.part(ok: true) }  // gone, or a marker
                let now = WallClock.nowMilliseconds()
                let stale = entry.softPurged(at: now)
                let remaining = Int(max(stale.staleWhileRevalidateUntil, stale.staleIfErrorUntil)) - Int(now)
                guard remaining > 0 else {
                    return resources.redisSend([Array("UNLINK".utf8), key]) { r in
                        if case .failure = r { outcome.part(ok: false) } else { outcome.part(ok: true) }
                    }
                }
                // Only if the entry is still the one read: another instance's refresh may have
                // stored the new version in between, and marking that stale would cost a refetch
                // (and serve the old one meanwhile). Redis runs the script atomically.
                let script = Array(Self.replaceIfUnchanged.utf8)
                resources.redisSend([Array("EVAL".utf8), script, Array("1".utf8), key, value, stale.encode(),
                                     Array(String(remaining).utf8)]) { r in
                    if case .failure = r { outcome.part(ok: false) } else { outcome.part(ok: true) }
                }
            }
        }
    }

    /// `SET KEYS[1] ARGV[2] PX ARGV[3]` if `KEYS[1]` still holds `ARGV[1]`.
    static let replaceIfUnchanged = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
        end
        return false
        """

    /// Drops purged keys from every loop's in-process tier (each on its own loop).
    func removeFromLocalTiers(_ keys: Set<String>) {
        guard !keys.isEmpty else { return }
        removeFromLocalTiers(where: { keys.contains($0) })
    }

    func removeFromLocalTiers(where matches: @escaping @Sendable (String) -> Bool) {
        for resources in resources {
            resources.loop.execute { if resources.local.isEnabled { resources.local.remove(where: matches) } }
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

/// Collects the parts of one event: `completion` once, after the last, with whether all worked.
private final class PurgeOutcome: @unchecked Sendable {
    private var left: Int
    private var allOK = true
    private let completion: @Sendable (Bool) -> Void
    init(parts: Int, completion: @escaping @Sendable (Bool) -> Void) {
        left = parts
        self.completion = completion
    }
    /// Called on one loop only (the one the event runs on).
    func part(ok: Bool) {
        allOK = allOK && ok
        left -= 1
        if left == 0 { completion(allOK) }
    }
}

/// Collects a route purge's walks, one per node: `completion` once, after the last, with whether
/// all worked and how many entries they removed. Called on one loop only.
private final class RouteTally: @unchecked Sendable {
    private var left: Int
    private var allOK = true
    private var removed = 0
    private let completion: @Sendable (Bool, Int) -> Void
    init(nodes: Int, completion: @escaping @Sendable (Bool, Int) -> Void) {
        left = nodes
        self.completion = completion
    }
    func node(ok: Bool, removed count: Int) {
        allOK = allOK && ok
        removed += count
        left -= 1
        if left == 0 { completion(allOK, removed) }
    }
}
