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
    let planner: RequestPlanner
    let keySpace: KeySpace
    let logger: Logger
    private let storeFailureLog = LogThrottle()
    private let upstreamFailureLog = LogThrottle()
    let flights = SingleFlight<FlightOutcome>()
    public let stats = GatewayStats()
    /// One per event loop, indexed by `EventLoop.index`; written once in `attach`, before serving.
    private var resources: [LoopResources] = []

    /// The longest TTL any route may store with: how long a purge index must live.
    let longestTTLMilliseconds: Int64

    public init(config: GatewayConfig, logger: Logger) {
        self.config = config
        self.router = Router(config: config)
        self.planner = RequestPlanner(router: router, config: config)
        self.keySpace = KeySpace(prefix: config.redis.keyPrefix)
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

    /// Keys being fetched, or whose stored result is still held for late arrivals.
    public var inFlightKeyCount: Int { flights.count }

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
        switch planner.plan(head, peerHost: context.peer.host) {
        case .respond(let status, let message):
            responder.respond(Self.error(status, message))
        case .forward(let route, var upstreamRequest, let cacheStatus):
            upstreamRequest.body = request.body
            let exchange = Exchange(request: request, context: context, responder: responder, route: route,
                                    resources: resources[context.loop.index])
            forward(exchange, upstreamRequest, status: cacheStatus)
        case .lookup(let route, let settings, let key, let fill):
            let exchange = Exchange(request: request, context: context, responder: responder, route: route,
                                    resources: resources[context.loop.index])
            lookup(exchange, key: key, fill: fill, settings: settings)
        }
    }

    // MARK: Read-through

    private func lookup(_ exchange: Exchange, key: String, fill: UpstreamRequest, settings: RouteCacheSettings) {
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
                join(exchange, key: key, fill: fill, settings: settings, redisDetail: nil)
            case .success(nil):
                join(exchange, key: key, fill: fill, settings: settings, redisDetail: nil)
            case .failure(let error):
                stats.redisError()
                join(exchange, key: key, fill: fill, settings: settings, redisDetail: error.shortDescription)
            }
        }
    }

    private func join(_ exchange: Exchange, key: String, fill: UpstreamRequest, settings: RouteCacheSettings, redisDetail: String?) {
        let loop = exchange.context.loop
        let join = flights.join(key) { [self] outcome in
            loop.execute { self.deliver(outcome, to: exchange, fill: fill) }
        }
        switch join {
        case .leader(let token):
            stats.miss()
            fetch(exchange, token: token, fill: fill, settings: settings, redisDetail: redisDetail)
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
            deliver(outcome, to: exchange, fill: fill)
        }
    }

    /// The leader: fetch once, decide, wake the waiters, store, then answer.
    private func fetch(_ exchange: Exchange, token: SingleFlight<FlightOutcome>.Token, fill: UpstreamRequest,
                       settings: RouteCacheSettings, redisDetail: String?) {
        exchange.resources.upstream.execute(fill) { [self] result in
            switch result {
            case .failure(let error):
                upstreamFailed(error, request: fill)
                let status = error.suggestedStatus
                flights.complete(token, with: .failed(status: status, message: Self.upstreamMessage(status)), hold: false)
                exchange.respond(Self.error(status, Self.upstreamMessage(status), status: "fwd=miss; detail=\(error.shortDescription)"))
            case .success(let response):
                let headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
                let decision = CachePolicy.decide(
                    status: response.status, headers: headers, bodyCount: response.body.count,
                    completeByFraming: response.isCompleteByFraming, routeClass: exchange.route.routeClass,
                    settings: settings)
                // Framing is the gateway's: an upstream Content-Length next to Transfer-Encoding
                // (or any stale one) must not be replayed by a later HEAD from the entry.
                let stored = HeaderRules.endToEnd(headers, alsoDropping: ["set-cookie", "age", "cache-status", "content-length"])
                let now = Self.nowMilliseconds()
                var entry = CachedResponse(status: response.status, headers: stored, body: response.body[...], storedAt: now)
                switch decision {
                case .store(let ttl):
                    let ttlMs = Int(ttl.wholeMilliseconds)
                    entry.expiresAt = now + UInt64(ttlMs)
                    exchange.resources.local.put(token.key, entry, now: now)
                    // Waiters are woken now; the Redis write happens behind them. Until it is
                    // acknowledged (and a moment after), late arrivals get the held result
                    // instead of a second fetch.
                    flights.complete(token, with: .shared(entry, vary: nil), hold: true)
                    store(entry, exchange: exchange, token: token, ttlMilliseconds: ttlMs, redisDetail: redisDetail)
                case .shareOnly(let reason):
                    // A response that varies is shared only with waiters whose request matches the
                    // leader's on every field it varies on; the others fetch their own.
                    let varied = HeaderRules.vary(headers)
                    let outcome: FlightOutcome = varied.isEmpty
                        ? .shared(entry, vary: nil)
                        : varied.contains("*") ? .refetch : .shared(entry, vary: VaryMatch(varied, in: exchange.request.head.headers))
                    flights.complete(token, with: outcome, hold: false)
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

    /// Writes the entry to Redis and answers the leader once Redis said whether it took it:
    /// `stored` in `Cache-Status` is a fact, not a hope (RFC 9211 §2.6).
    private func store(_ entry: CachedResponse, exchange: Exchange, token: SingleFlight<FlightOutcome>.Token,
                       ttlMilliseconds: Int, redisDetail: String?) {
        let resources = exchange.resources
        // With Redis already failing this request, do not hold the client for a write that will
        // most likely fail too: answer now and write behind.
        if let redisDetail {
            exchange.respond(Self.fromCache(entry, for: exchange.request.head, status: "fwd=miss; detail=redis-\(redisDetail)", age: false))
        }
        resources.redisSet(Array(token.key.utf8), entry.encode(), ttlMilliseconds: ttlMilliseconds) { [self] result in
            let storedOK: Bool
            switch result {
            case .success:
                storedOK = true
            case .failure(let error):
                storedOK = false
                stats.storeError()
                let (log, suppressed) = storeFailureLog.admit(now: Self.nowMilliseconds())
                if log {
                    logger.warning("cache store failed", metadata: [
                        "error": "\(error)", "route": "\(exchange.route.name)", "suppressed": "\(suppressed)",
                    ])
                }
            }
            if redisDetail == nil {
                let label = storedOK ? "fwd=miss; stored" : "fwd=miss; detail=store-failed"
                exchange.respond(Self.fromCache(entry, for: exchange.request.head, status: label, age: false))
            }
            // A request whose GET was answered just before the write landed may join a moment
            // later: keep the result for it a little longer, never past the entry's freshness.
            // A failed write leaves nothing to bridge.
            let grace = storedOK ? min(Self.holdGraceMilliseconds, ttlMilliseconds) : 0
            resources.loop.queue.asyncAfter(deadline: .now() + .milliseconds(grace)) { [self] in
                flights.release(token)
            }
        }
        if config.invalidation != nil {
            // Remember which keys hold this path, so that `purge <path>` finds every user's and
            // every query variant's entry.
            let index = Array(keySpace.pathIndex(path: exchange.request.head.path).utf8)
            resources.redisSend([Array("SADD".utf8), index, Array(token.key.utf8)]) { _ in }
            resources.redisSend([Array("PEXPIRE".utf8), index, Array(String(longestTTLMilliseconds).utf8)]) { _ in }
        }
    }

    /// How long a stored flight's result is kept after Redis acknowledged the write.
    static let holdGraceMilliseconds = 1000

    private func deliver(_ outcome: FlightOutcome, to exchange: Exchange, fill: UpstreamRequest) {
        switch outcome {
        case .shared(let entry, let vary):
            if let vary, !vary.matches(exchange.request.head.headers) {
                forward(exchange, fill, status: "fwd=miss; detail=not-shareable-vary")
                return
            }
            exchange.respond(Self.fromCache(entry, for: exchange.request.head, status: "fwd=miss; collapsed", age: false))
        case .failed(let status, let message):
            exchange.respond(Self.error(status, message, status: "fwd=miss; collapsed"))
        case .refetch:
            forward(exchange, fill, status: "fwd=miss; detail=not-shareable")
        }
    }

    // MARK: Pass-through

    /// Sends the request upstream and relays the answer; nothing is stored or shared.
    private func forward(_ exchange: Exchange, _ request: UpstreamRequest, status: String) {
        stats.bypass()
        exchange.resources.upstream.execute(request) { [self] result in
            switch result {
            case .success(let response):
                var headers = HeaderRules.endToEnd(HTTPHeaders(response.headers.map { ($0.name, $0.value) }))
                headers.add(name: "Cache-Status", value: "CacheGateway; \(status)")
                exchange.respond(HTTPResponse(status: response.status, headers: headers, body: response.body))
            case .failure(let error):
                upstreamFailed(error, request: request)
                let code = error.suggestedStatus
                exchange.respond(Self.error(code, Self.upstreamMessage(code), status: "\(status); detail=\(error.shortDescription)"))
            }
        }
    }

    /// Counts and logs (at most every few seconds) an upstream failure. Its detail names
    /// addresses and libcurl's words: for the operator's log, never for the client.
    private func upstreamFailed(_ error: UpstreamError, request: UpstreamRequest) {
        stats.upstreamError()
        let (log, suppressed) = upstreamFailureLog.admit(now: Self.nowMilliseconds())
        if log {
            logger.warning("upstream request failed", metadata: [
                "error": "\(error)", "method": "\(request.method)", "suppressed": "\(suppressed)",
            ])
        }
    }

    /// What a client is told when the upstream failed: short, the same for everyone, with no
    /// address or library message in it (the detail goes to `Cache-Status` and the log).
    static func upstreamMessage(_ status: Int) -> String {
        switch status {
        case 504: "the upstream did not answer in time"
        case 503: "the upstream is busy, try again"
        case 400: "the request cannot be forwarded"
        default: "the upstream did not answer correctly"
        }
    }

    // MARK: Invalidation

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
            clearLocalTiers()
            stats.purged(keys.count)
            logger.info("purged", metadata: ["path": "\(path)", "entries": "\(keys.count)"])
        }
    }

    /// Walks the route's keys with SCAN (never KEYS: it would block Redis) and unlinks them.
    private func purgeRoute(_ name: String, cursor: String, removed: Int) {
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
    /// A response the waiters may get (stored or not): all of them, or with `vary`, only those
    /// whose request matches the leader's on the fields the response varies on.
    case shared(CachedResponse, vary: VaryMatch?)
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
