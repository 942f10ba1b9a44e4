import Dispatch
import Foundation
import GatewayCore
import GatewayHTTP
import GatewayRedis
import GatewayUpstream
import Logging

/// The read-through cache as an `HTTPHandler`: classifies each request (``RequestPlanner``), runs a
/// cached route's ``ReadThrough`` state machine on the request's event loop (`Gateway+ReadThrough`),
/// passes the rest through (`Gateway+PassThrough`), and applies purges (`Gateway+Invalidation`).
///
/// Each event loop has its own Redis connection and upstream client (created in `attach`), so a
/// request is looked up, fetched and answered without leaving its loop. What loops share is the
/// `SingleFlight` table and the hit-for-miss marks, each behind its own short lock.
public final class Gateway: HTTPHandler, @unchecked Sendable {
    /// The configuration the gateway started with: what its loops and key space were built from.
    /// What is in effect (routes, cache policies, Redis and upstream settings) is
    /// ``runningConfig``, which a reload replaces; nothing reads this one at request time.
    public let config: GatewayConfig
    let keySpace: KeySpace
    let logger: Logger
    let storeFailureLog = LogThrottle()
    let upstreamFailureLog = LogThrottle()
    let flights = SingleFlight<FlightOutcome>()
    /// Keys whose answer was not storable a moment ago (hit-for-miss).
    let uncacheable = UncacheableKeys()
    /// Requests waiting for another instance's fill (`cache.cross_instance`).
    let remoteFills = RemoteFills()
    /// Whether the announcements of other instances' fills are being heard: without that a lease
    /// held elsewhere could only be waited out, so none is taken. Set once by the service.
    nonisolated(unsafe) var fillsListening: @Sendable () -> Bool = { false }
    public let stats = GatewayStats()
    /// The bearer token of `invalidation.purge_api`, resolved once at start.
    let purgeToken: String?
    /// The stream consumer's counters, for the stats endpoint (set once by the service, before serving).
    nonisolated(unsafe) var streamSnapshot: @Sendable () -> RedisStreamConsumer.Snapshot? = { nil }
    /// Told of every answered request (the access log); set once, before serving.
    nonisolated(unsafe) public var requestObservers: [any RequestObserver] = [] {
        didSet { observers = [metrics] + requestObservers }
    }
    /// The metrics, then `requestObservers`: what each request's answer is reported to.
    nonisolated(unsafe) private var observers: [any RequestObserver]
    /// This gateway's Prometheus registry and series (`Gateway+Metrics` renders them).
    public let metrics: GatewayMetrics
    /// Whether the upstream in effect accepts connections, for `/readyz`; probing from `attach` to `shutdown`.
    let upstreamProbe: UpstreamProbe
    /// One per event loop, indexed by `EventLoop.index`; written once in `attach`, before serving.
    private(set) var resources: [LoopResources] = []
    /// Request ID sources, one per event loop (indexed like `resources`); written once in `attach`.
    private var requestIDs: [RequestIDGenerator] = []

    /// What requests are served by: routes, cache policies and each loop's Redis and upstream
    /// clients, replaced whole by ``reload(_:)``. Each request reads it once, so a request never
    /// sees half of one config and half of another.
    final class Policy: Sendable {
        let config: GatewayConfig
        let planner: RequestPlanner
        /// One per event loop, indexed by `EventLoop.index` (empty before `attach`).
        let clients: [LoopClients]
        /// The upstream admission shared by every loop's client.
        let permits: UpstreamPermits
        /// The longest any route keeps an entry in Redis (TTL plus its stale windows and `keep`):
        /// how long a purge index must live.
        let longestTTLMilliseconds: Int64

        init(config: GatewayConfig, clients: [LoopClients] = [], permits: UpstreamPermits) {
            self.config = config
            self.clients = clients
            self.permits = permits
            planner = RequestPlanner(router: Router(config: config), config: config)
            longestTTLMilliseconds = config.routes.compactMap(\.cache).map { settings in
                let ttl = ([settings.ttl] + Array(settings.ttlByStatus.values)).map(\.wholeMilliseconds).max() ?? 0
                let f = settings.freshness
                return ttl + max(f.staleWhileRevalidate, f.staleIfError, f.keep).wholeMilliseconds
            }.max() ?? 1000
        }
    }

    private let policyBox: PolicyBox
    /// Where reloads run, one at a time.
    let reloadQueue = DispatchQueue(label: "gateway.reload-apply")
    var policy: Policy { policyBox.current }
    func replacePolicy(_ policy: Policy) { policyBox.replace(policy) }
    var longestTTLMilliseconds: Int64 { policy.longestTTLMilliseconds }
    /// The configuration in effect: the one started with, as changed by reloads (settings that
    /// take a restart keep their starting values).
    public var runningConfig: GatewayConfig { policy.config }
    /// This instance's name (`instance_id`): what the Redis leases it takes hold as their value, so
    /// that `GET <lease key>` says who is fetching. Fixed for the process (a reload keeps it).
    public var instanceID: String { config.instanceID.value }

    public init(config: GatewayConfig, logger: Logger) {
        self.config = config
        // One pool for all loops: `upstream.max_connections` and `max_queue` are per gateway.
        let permits = UpstreamPermits(limit: config.upstream.maxConnections, maxQueued: config.upstream.maxQueue)
        self.policyBox = PolicyBox(Policy(config: config, permits: permits))
        self.keySpace = KeySpace(prefix: config.redis.keyPrefix)
        self.purgeToken = Self.purgeToken(config.invalidation?.purgeAPI, environment: ProcessInfo.processInfo.environment)
        self.logger = logger
        metrics = GatewayMetrics(routeNames: config.routes.map(\.name), instanceID: config.instanceID.value)
        observers = [metrics]
        let box = policyBox
        // The upstream in effect: a reload may point the gateway at another.
        upstreamProbe = UpstreamProbe {
            let upstream = box.current.config.upstream
            return (upstream.url.host, upstream.url.port, min(upstream.connectTimeout, .seconds(1)))
        }
    }

    /// Creates each loop's Redis connection and upstream client. Call before `HTTPServer.start`.
    public func attach(to loops: [EventLoop]) {
        let policy = self.policy
        let clients = loops.map { loop in
            LoopClients.make(config: policy.config, loop: loop, permits: policy.permits, reusing: nil, redisObserver: metrics, logger: logger)
        }
        replacePolicy(Policy(config: policy.config, clients: clients, permits: policy.permits))
        resources = loops.map { loop in
            LoopResources(loop: loop, policyBox: policyBox, cache: policy.config.cache, loopCount: max(1, loops.count),
                          coherence: config.cache.tracksLocalTier ? .awaitingTracking : .untracked, logger: logger)
        }
        for (loop, clients) in zip(loops, clients) { loop.queue.sync { clients.redis.start() } }
        requestIDs = loops.map { _ in RequestIDGenerator() }
        upstreamProbe.start()
    }

    /// Closes Redis connections and upstream clients (after the server drained). Must not be
    /// called on an event loop: it waits for each of them.
    public func shutdown() {
        for resource in resources { dispatchPrecondition(condition: .notOnQueue(resource.loop.queue)) }
        upstreamProbe.stop()
        for resource in resources { resource.loop.queue.sync { resource.stop() } }
    }

    /// Whether every event loop has a Redis connection up (each loop has its own).
    public var redisConnected: Bool {
        !resources.isEmpty && resources.allSatisfy { r in r.loop.queue.sync { r.redisConnected } }
    }

    /// Keys being fetched, or whose stored result is still held for late arrivals.
    public var inFlightKeyCount: Int { flights.count }

    /// Requests waiting for another instance's fill of their key (`cache.cross_instance`).
    public var remoteFillWaitCount: Int { remoteFills.count }

    // MARK: Routing

    /// Malformed requests the connection answered itself count and are logged like any other answer.
    public func rejected(status: Int, reason: String, context: HTTPRequestContext) {
        let record = RequestRecord.rejected(status: status, reason: reason, peer: context.peer)
        for observer in observers { observer.requestFinished(record) }
    }

    public func handle(_ request: HTTPRequest, context: HTTPRequestContext, responder httpResponder: HTTPResponder) {
        let head = request.head
        let trace = RequestTrace()
        let requestID = RequestID.incoming(head.headers.values(RequestID.header)) ?? requestIDs[context.loop.index].next()
        trace.requestID = requestID
        let responder = TracedResponder(observers: observers, head: head, peer: context.peer,
                                        responder: httpResponder, trace: trace)
        // With an admin listener the public port keeps only what `admin.public_health` and
        // `purge_api.public` leave it; every other path belongs to the routes.
        let admin = config.admin
        if admin?.publicHealth ?? true, head.method == "GET" || head.method == "HEAD" {
            if head.path == "/healthz" { return responder.respond(.text(200, "ok")) }
            if head.path == "/readyz" { return readiness(responder: responder, on: context.loop) }
        }
        let policy = self.policy
        if head.method == "PURGE", let api = policy.config.invalidation?.purgeAPI, admin == nil || api.onPublicPort {
            return purgeRequest(head, path: head.path, peerHost: context.peer.host, responder: responder,
                                on: resources[context.loop.index])
        }
        let clients = policy.clients[context.loop.index]
        switch policy.planner.plan(head, peerHost: context.peer.host) {
        case .respond(let status, let message):
            responder.respond(Self.error(status, message), gatewayError: true)
        case .forward(let route, var origin, let cacheStatus):
            origin.body = request.body
            origin.setRequestID(requestID)
            let exchange = Exchange(request: request, context: context, responder: responder, route: route,
                                    resources: resources[context.loop.index], clients: clients)
            forward(exchange, origin, status: cacheStatus)
        case .lookup(let route, let settings, let key, var fill, let tags):
            // A fill shared by waiters carries its leader's ID: it is one upstream request.
            fill.setRequestID(requestID)
            let exchange = Exchange(request: request, context: context, responder: responder, route: route,
                                    resources: resources[context.loop.index], clients: clients)
            let machine = ReadThrough(settings: settings, routeClass: route.routeClass, fill: fill,
                                      requestHeaders: request.head.headers, routeTags: tags,
                                      lease: policy.config.cache.crossInstance ? policy.config.lease : nil)
            ReadThroughTask(gateway: self, exchange: exchange, key: key, machine: machine).start()
        }
    }
}

extension Gateway {
    /// A fresh lease value: this instance's name (``instanceID``) and a nonce, so that a holder only ever
    /// releases its own lease (and an operator reading the key sees who holds it).
    func leaseValue() -> String {
        instanceID + ":" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    }

    /// A message on `<prefix>fills`: wakes this instance's requests that wait for that key.
    func fillAnnounced(_ message: [UInt8]) {
        guard let (key, fill) = RemoteFill.parse(message) else { return }
        remoteFills.announced(key, fill)
    }
}

extension GatewayConfig {
    /// The lease a local leader takes: the upstream's whole-exchange limit and a second's margin
    /// (a holder still fetching keeps it; a dead one frees the key soon after the fetch would
    /// have timed out).
    var lease: ReadThrough.Lease {
        ReadThrough.Lease(ttlMilliseconds: Int(clamping: upstream.timeout.wholeMilliseconds) + 1000)
    }
}

extension OriginRequest {
    /// The gateway's ID for the request, in place of any the client sent (an invalid one among them).
    mutating func setRequestID(_ id: String) {
        headers.removeAll { HTTPHeaders.equalsIgnoringCase($0.name, RequestID.header) }
        headers.append((name: RequestID.header, value: id))
    }
}

/// One request on its way through the gateway.
struct Exchange: @unchecked Sendable {
    let request: HTTPRequest
    let context: HTTPRequestContext
    let responder: TracedResponder
    let route: Route
    let resources: LoopResources
    /// The loop's clients in the policy the request was planned with.
    let clients: LoopClients

    var trace: RequestTrace { responder.trace }

    /// - Parameter status: The `Cache-Status` the answer carries (already in its headers).
    func respond(_ response: consuming HTTPResponse, status: CacheStatus, gatewayError: Bool = false) {
        responder.respond(response, route: route.name, status: status, gatewayError: gatewayError)
    }
}

