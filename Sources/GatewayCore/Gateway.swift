import Dispatch
import GatewayHTTP
import GatewayRedis
import GatewayUpstream
import Logging

/// The read-through cache: routes each request, answers it from Redis when it can, and fetches a
/// miss from the upstream once however many clients ask for it at the same time.
///
/// Each event loop has its own Redis connection and upstream client (created in `attach`), so a
/// request is looked up, fetched and answered without leaving its loop. What loops share is the
/// `SingleFlight` table, behind its own short lock.
public final class Gateway: HTTPHandler, @unchecked Sendable {
    public let config: GatewayConfig
    let router: Router
    let logger: Logger
    let flights = SingleFlight<FlightOutcome>()
    public let stats = GatewayStats()
    /// One per event loop, indexed by `EventLoop.index`; written once in `attach`, before serving.
    private var resources: [LoopResources] = []

    /// The longest TTL any route may store with: how long a purge index must live.
    let longestTTLMilliseconds: Int64

    public init(config: GatewayConfig, logger: Logger) {
        self.config = config
        self.router = Router(config: config)
        self.logger = logger
        longestTTLMilliseconds = config.routes.compactMap(\.cache).flatMap { [$0.ttl] + Array($0.ttlByStatus.values) }
            .map(\.wholeMilliseconds).max() ?? 1000
    }

    /// Creates each loop's Redis connection and upstream client. Call before `HTTPServer.start`.
    public func attach(to loops: [EventLoop]) {
        let loopCount = max(1, loops.count)
        // One pool for all loops: `upstream.max_connections` and `max_queue` are per gateway.
        let permits = UpstreamPermits(limit: config.upstream.maxConnections, maxQueued: config.upstream.maxQueue)
        resources = loops.map { loop in
            LoopResources(loop: loop, config: config, loopCount: loopCount, upstreamPermits: permits, logger: logger)
        }
        for resource in resources { resource.loop.queue.sync { resource.start() } }
    }

    /// Closes Redis connections and upstream clients (after the server drained). Must not be
    /// called on an event loop: it waits for each of them.
    public func shutdown() {
        for resource in resources { dispatchPrecondition(condition: .notOnQueue(resource.loop.queue)) }
        for resource in resources { resource.loop.queue.sync { resource.stop() } }
    }

    /// Whether every event loop has a Redis connection up (each loop has its own).
    public var redisConnected: Bool {
        !resources.isEmpty && resources.allSatisfy { r in r.loop.queue.sync { r.redisConnected } }
    }

    // MARK: Routing

    public func handle(_ request: HTTPRequest, context: HTTPRequestContext, responder: HTTPResponder) {
        let head = request.head
        if head.path == "/healthz" && (head.method == "GET" || head.method == "HEAD") {
            responder.respond(.text(200, "ok"))
            return
        }
        if head.path == "/__gateway/stats" && head.method == "GET" {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Cache-Control", value: "no-store")
            // This loop's own Redis state: reading the others' would mean waiting on their queues.
            let connected = resources[context.loop.index].redisConnected
            let body = "{\"stats\": \(stats.json), \"redis_connected\": \(connected), \"in_flight_keys\": \(flights.count)}\n"
            responder.respond(HTTPResponse(status: 200, headers: headers, body: Array(body.utf8)))
            return
        }
        if let reason = RequestTarget.unsafePathReason(head.path) {
            responder.respond(Self.error(400, reason))
            return
        }
        guard let index = router.match(method: head.method, path: head.path) else {
            responder.respond(Self.error(404, "no route matches \(head.method) \(head.path)"))
            return
        }
        let route = router.routes[index]
        // Origin-form for the upstream, also when the client sent absolute-form (`GET http://h/p`).
        let originTarget = head.query.map { head.path + "?" + $0 } ?? head.path
        let exchange = Exchange(request: request, context: context, responder: responder, route: route,
                                resources: resources[context.loop.index])
        guard let settings = route.cache else {
            forward(exchange, target: originTarget, status: "fwd=bypass; detail=pass")
            return
        }
        if head.method != "GET" && head.method != "HEAD" {
            forward(exchange, target: originTarget, status: "fwd=method")
            return
        }
        var identityDigest: [UInt8]?
        switch route.routeClass {
        case .public:
            if !settings.allowAuthorized && (head.headers.contains("Authorization") || head.headers.contains("Cookie")) {
                forward(exchange, target: originTarget, status: "fwd=bypass; detail=authorized")
                return
            }
        case .perUser:
            let credential: String?
            switch settings.identity {
            case .header(let name)?: credential = head.headers[name]
            case .cookie(let name)?: credential = RequestTarget.cookie(name, in: head.headers)
            case nil: credential = nil
            }
            guard let credential, !credential.isEmpty else {
                forward(exchange, target: originTarget, status: "fwd=bypass; detail=no-identity")
                return
            }
            identityDigest = CacheKey.identityDigest(credential)
        case .pass:
            forward(exchange, target: originTarget, status: "fwd=bypass; detail=pass")
            return
        }

        // Only allow-listed parameters reach the key; the others are stripped or make it a bypass.
        let parameters = RequestTarget.parameters(head.query)
        let allowed = parameters.filter { settings.query.contains($0.name) }
        var target = originTarget
        if allowed.count != parameters.count {
            if settings.unlistedQuery == .bypass {
                forward(exchange, target: originTarget, status: "fwd=bypass; detail=unlisted-query")
                return
            }
            target = head.path + (RequestTarget.query(allowed).map { "?" + $0 } ?? "")
        } else if head.query != nil && allowed.isEmpty {
            target = head.path
        }
        // Stable sort by name: order of repeated parameters is kept, as the upstream may care.
        let keyed = allowed.enumerated().sorted { ($0.element.name, $0.offset) < ($1.element.name, $1.offset) }.map(\.element)
        let key = CacheKey(
            prefix: config.redis.keyPrefix, route: route.name,
            host: settings.keyHost ? (head.headers["Host"] ?? "") : nil,
            path: head.path, query: keyed, identityDigest: identityDigest
        )
        lookup(exchange, key: key.redisKey, target: target, settings: settings)
    }

    // MARK: Read-through

    private func lookup(_ exchange: Exchange, key: String, target: String, settings: RouteCacheSettings) {
        let resources = exchange.resources
        if resources.local.isEnabled, let entry = resources.local.get(key, now: Self.nowMilliseconds()) {
            stats.hit()
            exchange.respond(Self.fromCache(entry, for: exchange.request.head, status: "hit; detail=local"))
            return
        }
        let keyBytes = Array(key.utf8)
        resources.redisGet(keyBytes) { [self] result in
            switch result {
            case .success(let value?):
                if let entry = CachedResponse.decode(value) {
                    stats.hit()
                    resources.local.put(key, entry, now: Self.nowMilliseconds())
                    exchange.respond(Self.fromCache(entry, for: exchange.request.head, status: "hit"))
                    return
                }
                logger.warning("undecodable cache entry, treating as a miss", metadata: ["cache.key": "\(key)"])
                join(exchange, key: key, target: target, settings: settings, redisDetail: nil)
            case .success(nil):
                join(exchange, key: key, target: target, settings: settings, redisDetail: nil)
            case .failure(let error):
                stats.redisError()
                join(exchange, key: key, target: target, settings: settings, redisDetail: error.shortDescription)
            }
        }
    }

    private func join(_ exchange: Exchange, key: String, target: String, settings: RouteCacheSettings, redisDetail: String?) {
        let loop = exchange.context.loop
        let join = flights.join(key) { [self] outcome in
            loop.execute { self.deliver(outcome, to: exchange, target: target) }
        }
        switch join {
        case .leader(let token):
            stats.miss()
            fetch(exchange, token: token, target: target, settings: settings, redisDetail: redisDetail)
        case .waiter(let id):
            stats.collapsed()
            loop.queue.asyncAfter(deadline: .now() + .milliseconds(Int(settings.maxWait.wholeMilliseconds))) { [self] in
                // Still waiting? Then the leader is slower than the route allows.
                if flights.leave(key, waiter: id) {
                    exchange.respond(Self.error(504, "timed out waiting for the upstream response", status: "fwd=miss; collapsed; detail=max-wait"))
                }
            }
        case .finished(let outcome):
            stats.collapsed()
            deliver(outcome, to: exchange, target: target)
        }
    }

    /// The leader: fetch once, decide, wake the waiters, answer, then store.
    private func fetch(_ exchange: Exchange, token: SingleFlight<FlightOutcome>.Token, target: String,
                       settings: RouteCacheSettings, redisDetail: String?) {
        let head = exchange.request.head
        // A cache fill asks for the whole representation: conditionals and ranges are the client's.
        let request = UpstreamRequest(
            method: "GET", pathAndQuery: target,
            headers: forwardHeaders(head, peer: exchange.context.peer, dropping: Self.conditionalHeaders),
            body: []
        )
        exchange.resources.upstream.execute(request) { [self] result in
            switch result {
            case .failure(let error):
                stats.upstreamError()
                let outcome = FlightOutcome.failed(status: error.suggestedStatus, message: error.description)
                flights.complete(token, with: outcome, hold: false)
                exchange.respond(Self.error(error.suggestedStatus, error.description, status: "fwd=miss; detail=\(error.shortDescription)"))
            case .success(let response):
                let headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
                let decision = CachePolicy.decide(
                    status: response.status, headers: headers, bodyCount: response.body.count,
                    completeByFraming: response.isCompleteByFraming, routeClass: exchange.route.routeClass,
                    settings: settings)
                let stored = HeaderRules.endToEnd(headers, alsoDropping: ["set-cookie", "age", "cache-status"])
                let now = Self.nowMilliseconds()
                var entry = CachedResponse(status: response.status, headers: stored, body: response.body[...], storedAt: now)
                switch decision {
                case .store(let ttl):
                    let ttlMs = Int(ttl.wholeMilliseconds)
                    entry.expiresAt = now + UInt64(ttlMs)
                    exchange.resources.local.put(token.key, entry, now: now)
                    // Waiters are woken now; the Redis write happens behind them. Until it is
                    // acknowledged, late arrivals get the held result instead of a second fetch.
                    flights.complete(token, with: .shared(entry), hold: true)
                    // With Redis failing, the write will most likely fail too: do not claim "stored".
                    let label = redisDetail.map { "fwd=miss; detail=redis-\($0)" } ?? "fwd=miss; stored"
                    exchange.respond(Self.fromCache(entry, for: exchange.request.head, status: label, age: false))
                    exchange.resources.redisSet(Array(token.key.utf8), entry.encode(), ttlMilliseconds: ttlMs) { [self] result in
                        if case .failure = result { stats.redisError() }
                        flights.release(token)
                    }
                    if config.invalidation != nil {
                        // Remember which keys hold this path, so that `purge <path>` finds every
                        // user's and every query variant's entry.
                        let index = Array(indexKey(path: exchange.request.head.path).utf8)
                        let resources = exchange.resources
                        resources.redisSend([Array("SADD".utf8), index, Array(token.key.utf8)]) { _ in }
                        resources.redisSend([Array("PEXPIRE".utf8), index, Array(String(longestTTLMilliseconds).utf8)]) { _ in }
                    }
                case .shareOnly(let reason):
                    flights.complete(token, with: .shared(entry), hold: false)
                    exchange.respond(Self.fromCache(entry, for: exchange.request.head, status: "fwd=miss; detail=not-stored-\(reason)", age: false))
                case .doNotShare(let reason):
                    flights.complete(token, with: .refetch, hold: false)
                    // The leader's own answer, Set-Cookie and all.
                    var own = HeaderRules.endToEnd(headers)
                    own.add(name: "Cache-Status", value: "CacheGateway; fwd=miss; detail=not-stored-\(reason)")
                    exchange.respond(HTTPResponse(status: response.status, headers: own, body: response.body))
                }
            }
        }
    }

    private func deliver(_ outcome: FlightOutcome, to exchange: Exchange, target: String) {
        switch outcome {
        case .shared(let entry):
            exchange.respond(Self.fromCache(entry, for: exchange.request.head, status: "fwd=miss; collapsed", age: false))
        case .failed(let status, let message):
            exchange.respond(Self.error(status, message, status: "fwd=miss; collapsed"))
        case .refetch:
            forward(exchange, target: target, status: "fwd=miss; detail=not-shareable")
        }
    }

    // MARK: Pass-through

    /// Sends the request upstream as it is (method, body, end-to-end headers) and relays the answer.
    private func forward(_ exchange: Exchange, target: String, status: String) {
        stats.bypass()
        let head = exchange.request.head
        let request = UpstreamRequest(
            method: head.method, pathAndQuery: target,
            headers: forwardHeaders(head, peer: exchange.context.peer, dropping: []),
            body: exchange.request.body
        )
        exchange.resources.upstream.execute(request) { [self] result in
            switch result {
            case .success(let response):
                var headers = HeaderRules.endToEnd(HTTPHeaders(response.headers.map { ($0.name, $0.value) }))
                headers.add(name: "Cache-Status", value: "CacheGateway; \(status)")
                exchange.respond(HTTPResponse(status: response.status, headers: headers, body: response.body))
            case .failure(let error):
                stats.upstreamError()
                exchange.respond(Self.error(error.suggestedStatus, error.description, status: "\(status); detail=\(error.shortDescription)"))
            }
        }
    }

    static let conditionalHeaders: Set<String> = [
        "if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range", "range",
    ]

    private func forwardHeaders(_ head: HTTPRequestHead, peer: SocketAddress, dropping: Set<String>) -> [(name: String, value: String)] {
        // Framing is the upstream client's to set; Expect was answered by the server already.
        var dropped = dropping
        dropped.formUnion(["content-length", "expect", "x-forwarded-for", "x-forwarded-proto"])
        var out = HeaderRules.endToEnd(head.headers, alsoDropping: dropped).map { (name: $0.name, value: $0.value) }
        let prior = head.headers.values("X-Forwarded-For").joined(separator: ", ")
        out.append((name: "X-Forwarded-For", value: prior.isEmpty ? peer.host : prior + ", " + peer.host))
        out.append((name: "X-Forwarded-Proto", value: "http"))
        return out
    }

    // MARK: Invalidation

    /// The Redis set that lists the cache keys stored for one request path.
    func indexKey(path: String) -> String {
        config.redis.keyPrefix + "idx:" + SHA256.hex(SHA256.hash(path.utf8))
    }

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

    private func purgePath(_ path: String) {
        let resources = self.resources[0]
        let index = Array(indexKey(path: path).utf8)
        resources.redisSend([Array("SMEMBERS".utf8), index]) { [self] result in
            guard case .success(.array(let members)) = result else {
                logger.warning("purge failed: Redis did not answer", metadata: ["path": "\(path)"])
                return
            }
            let keys: [[UInt8]] = members.compactMap { if case .string(let key) = $0 { key } else { nil } }
            resources.redisSend([Array("UNLINK".utf8)] + keys + [index]) { _ in }
            clearLocalTiers()
            stats.purged(keys.count)
            logger.info("purged", metadata: ["path": "\(path)", "entries": "\(keys.count)"])
        }
    }

    /// Walks the route's keys with SCAN (never KEYS: it would block Redis) and unlinks them.
    private func purgeRoute(_ name: String, cursor: String, removed: Int) {
        let resources = self.resources[0]
        let pattern = config.redis.keyPrefix + name + ":*"
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
                clearLocalTiers()
                stats.purged(removed + keys.count)
                logger.info("purged route", metadata: ["route": "\(name)", "entries": "\(removed + keys.count)"])
            } else {
                purgeRoute(name, cursor: nextCursor, removed: removed + keys.count)
            }
        }
    }

    /// The in-process tiers hold seconds' worth of entries: after a purge, drop them all.
    private func clearLocalTiers() {
        for resources in resources {
            resources.loop.execute { resources.local.removeAll() }
        }
    }

    // MARK: Responses

    static func fromCache(_ entry: CachedResponse, for request: HTTPRequestHead, status: String, age: Bool = true) -> HTTPResponse {
        var headers = entry.headers
        let seconds = age ? max(0, (Int64(nowMilliseconds()) - Int64(entry.storedAt)) / 1000) : 0
        headers.add(name: "Age", value: String(seconds))
        headers.add(name: "Cache-Status", value: "CacheGateway; \(status)")
        // A client that already holds this representation gets a 304 instead of the body again.
        if let condition = request.headers["If-None-Match"], entry.status == 200, let etag = entry.headers["ETag"],
            Self.matches(ifNoneMatch: condition, etag: etag)
        {
            return HTTPResponse(status: 304, headers: headers)
        }
        return HTTPResponse(status: entry.status, headers: headers, bodySlice: entry.body)
    }

    /// If-None-Match uses the weak comparison (RFC 9110 §13.1.2): `W/` is ignored on both sides.
    static func matches(ifNoneMatch condition: String, etag: String) -> Bool {
        func opaque<S: StringProtocol>(_ tag: S) -> Substring {
            let t = tag.trimmingSpaces()
            return t.hasPrefix("W/") ? Substring(t.dropFirst(2)) : Substring(t)
        }
        let stored = opaque(etag)
        return condition.split(separator: ",").contains { candidate in
            let c = candidate.trimmingSpaces()
            return c == "*" || opaque(c) == stored
        }
    }

    static func error(_ code: Int, _ message: String, status: String? = nil) -> HTTPResponse {
        var response = HTTPResponse.text(code, message)
        if let status { response.headers.add(name: "Cache-Status", value: "CacheGateway; \(status)") }
        return response
    }

    static func nowMilliseconds() -> UInt64 { WallClock.nowMilliseconds() }
}

/// What a flight's leader hands its waiters.
enum FlightOutcome: Sendable {
    /// A response everyone who asked may get (stored or not).
    case shared(CachedResponse)
    /// The upstream failed; every waiter gets this error.
    case failed(status: Int, message: String)
    /// The response was personal: each waiter fetches its own.
    case refetch
}

/// One request on its way through the gateway.
struct Exchange: @unchecked Sendable {
    let request: HTTPRequest
    let context: HTTPRequestContext
    let responder: HTTPResponder
    let route: Route
    let resources: LoopResources

    func respond(_ response: HTTPResponse) { responder.respond(response) }
}
