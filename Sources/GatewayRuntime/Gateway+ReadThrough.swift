import Dispatch
import GatewayCore
import GatewayHTTP
import GatewayRedis
import GatewayUpstream

/// Runs one request's ``ReadThrough`` state machine: performs each action it returns with the
/// loop's Redis connection and upstream client, the shared flight table and the hit-for-miss
/// marks, and feeds what they answer back in. Every callback lands on the request's own event loop
/// (Redis and curl call back on it; a flight's wake-up hops to it), so the machine is only ever
/// touched there. The task lives as long as a callback holds it.
final class ReadThroughTask: @unchecked Sendable {
    private let gateway: Gateway
    private let exchange: Exchange
    /// The request's key; a varying answer's marker lives here.
    private let primaryKey: String
    /// The key being read, fetched and stored: the primary key, or the variant the marker chose.
    private var key: String
    private var machine: ReadThrough
    /// This request's leadership of the key's flight, once it has one.
    private var token: SingleFlight<FlightOutcome>.Token?
    private var waiterID: UInt64?
    /// Tags of the entry being stored.
    private var tags: [String] = []
    private var deadline: DispatchWorkItem?
    /// When this request began waiting for another's fill (a `RequestTrace.now()` reading).
    private var waitStarted: UInt64?
    /// The lease's value while this request holds it (`<instance>:<nonce>`), for its release.
    private var leaseValue: [UInt8]?
    /// This request's registration for another instance's announcement, and the timer of that wait.
    private var remoteWatch: UInt64?
    private var leaseTimer: DispatchWorkItem?
    private var remoteWaitStarted: UInt64?

    init(gateway: Gateway, exchange: Exchange, key: String, machine: ReadThrough) {
        self.gateway = gateway
        self.exchange = exchange
        self.primaryKey = key
        self.key = key
        self.machine = machine
    }

    private var resources: LoopResources { exchange.resources }
    private var clients: LoopClients { exchange.liveClients }
    private var now: UInt64 { WallClock.nowMilliseconds() }

    func start() {
        let local = resources.local.isEnabled ? resources.local.get(key, now: now) : nil
        perform(machine.start(local: local, now: now))
    }

    private func perform(_ actions: [ReadThrough.Action]) {
        for action in actions { perform(action) }
    }

    private func perform(_ action: ReadThrough.Action) {
        switch action {
        case .lookup:
            lookup()

        case .lookupVariant(let selector):
            key = Variants.variantKey(primaryKey, selector: selector)
            lookup()

        case .reply(let reply):
            respond(reply)

        case .join(let maxWaiters):
            let loop = exchange.context.loop
            let join = gateway.flights.join(key, maxWaiters: maxWaiters, tag: exchange.request.head.path) { [self] outcome in
                loop.execute { self.woken(outcome) }
            }
            switch join {
            case .leader(let token):
                self.token = token
                gateway.stats.miss()
                perform(machine.joined(.leader, now: now))
            case .waiter(let id):
                waiterID = id
                waitStarted = RequestTrace.now()
                gateway.stats.collapsed()
                perform(machine.joined(.waiter, now: now))
            case .finished(let outcome):
                gateway.stats.collapsed()
                perform(machine.joined(.finished(outcome), now: now))
            case .overflow:
                perform(machine.joined(.overflow, now: now))
            }

        case .joinRefresh:
            token = gateway.flights.tryLead(key, tag: exchange.request.head.path)
            if token != nil { gateway.stats.refreshed() }
            perform(machine.refreshJoined(leader: token != nil))

        case .fetch(let origin):
            let request = UpstreamRequest(origin)
            let started = RequestTrace.now()
            clients.upstream.execute(request) { [self] result in
                exchange.trace.addUpstream(since: started)
                switch result {
                case .success(let response):
                    if response.status == 304 { gateway.stats.revalidated() }
                    perform(machine.fetched(.success(OriginResponse(response)), now: now))
                case .failure(let error):
                    gateway.upstreamFailed(error, request: request, requestID: exchange.trace.requestID)
                    perform(machine.fetched(.failure(OriginFailure(error)), now: now))
                }
            }

        case .forward(let origin, let status):
            gateway.forward(exchange, origin, status: status)

        case .complete(let outcome, let hold):
            guard let token else { preconditionFailure("completing a flight this request does not lead") }
            gateway.flights.complete(token, with: outcome, hold: hold)
            if !hold { self.token = nil }

        case .store(let entry, let ttl, let variant):
            store(entry, ttlMilliseconds: ttl, variant: variant)

        case .markUncacheable(let milliseconds):
            gateway.uncacheable.mark(key, milliseconds: milliseconds, now: now)

        case .release(let after):
            guard let token else { return }
            self.token = nil
            let flights = gateway.flights
            if after <= 0 {
                flights.release(token)
            } else {
                resources.loop.queue.asyncAfter(deadline: .now() + .milliseconds(after)) { flights.release(token) }
            }

        case .tag(let tags):
            self.tags = tags

        case .leaveFlight:
            if let waiterID { _ = gateway.flights.leave(key, waiter: waiterID) }
            waiterID = nil
            endWait()

        case .armDeadline(let milliseconds):
            let item = DispatchWorkItem { [self] in
                // Still waiting? Then the leader is slower than the route allows.
                guard let waiterID, gateway.flights.leave(key, waiter: waiterID) else { return }
                endWait()
                perform(machine.deadlinePassed(now: now))
            }
            deadline = item
            resources.loop.queue.asyncAfter(deadline: .now() + .milliseconds(milliseconds), execute: item)

        case .acquireLease(let ttl):
            acquireLease(ttlMilliseconds: ttl)

        case .awaitRemoteFill:
            let loop = exchange.context.loop
            remoteWatch = gateway.remoteFills.watch(key) { [self] fill in
                loop.execute { self.perform(self.machine.remoteFillAnnounced(fill, now: self.now)) }
            }

        case .recheck:
            let started = RequestTrace.now()
            let key = self.key
            clients.redisGet(Array(key.utf8)) { [self] result in
                exchange.trace.addRedis(since: started)
                perform(machine.rechecked(decode(result, key: key), now: now))
            }

        case .armLeaseRetry(let milliseconds):
            leaseTimer?.cancel()
            let item = DispatchWorkItem { [self] in perform(machine.leaseRetryDue(now: now)) }
            leaseTimer = item
            resources.loop.queue.asyncAfter(deadline: .now() + .milliseconds(milliseconds), execute: item)

        case .stopAwaitingRemote:
            leaseTimer?.cancel()
            leaseTimer = nil
            if let remoteWatch { gateway.remoteFills.stop(key, id: remoteWatch) }
            remoteWatch = nil
            if let remoteWaitStarted {
                exchange.trace.addWait(since: remoteWaitStarted)
                gateway.metrics.remoteFillWait.record(GatewayMetrics.seconds(RequestTrace.now() &- remoteWaitStarted))
            }
            remoteWaitStarted = nil

        case .announce(let fill):
            announce(fill)
        }
    }

    /// Takes the key's lease with one single-key script (so that a taken lease answers with its
    /// remaining time in the same round trip), or skips it when Redis or the announcement
    /// subscription is not there: then the local flight alone coalesces, as without the lease.
    private func acquireLease(ttlMilliseconds: Int) {
        let metrics = gateway.metrics
        guard gateway.fillsListening() else {
            metrics.leases(.unavailable)
            perform(machine.leaseResult(.unavailable, now: now))
            return
        }
        let value = Array(gateway.leaseValue().utf8)
        let leaseKey = Array(gateway.keySpace.lease(entryKey: key).utf8)
        let wasWaiting = remoteWaitStarted != nil
        let started = RequestTrace.now()
        clients.redisSend([Array("EVAL".utf8), Array(Self.acquireScript.utf8), Array("1".utf8), leaseKey, value,
                           Array(String(ttlMilliseconds).utf8)]) { [self] result in
            exchange.trace.addRedis(since: started)
            let lease: ReadThrough.LeaseResult
            switch result {
            case .success(.integer(Self.acquired)):
                leaseValue = value
                metrics.leases(wasWaiting ? .takenOver : .acquired)
                lease = .acquired
            case .success(.integer(let remaining)):
                metrics.leases(.heldElsewhere)
                if remoteWaitStarted == nil { remoteWaitStarted = RequestTrace.now() }
                lease = .heldElsewhere(remainingMilliseconds: Int(clamping: remaining))
            default:
                metrics.leases(.unavailable)
                lease = .unavailable
            }
            perform(machine.leaseResult(lease, now: now))
        }
    }

    /// Gives the lease back (only if it is still this request's: an expired one may be another
    /// instance's by now), then tells the others how the fill ended. Both on the loop's
    /// connection after the store, so an instance woken by `stored` reads the entry.
    private func announce(_ fill: RemoteFill) {
        if let value = leaseValue {
            let leaseKey = Array(gateway.keySpace.lease(entryKey: key).utf8)
            clients.redisSend([Array("EVAL".utf8), Array(Self.releaseScript.utf8), Array("1".utf8), leaseKey, value]) { _ in }
            leaseValue = nil
        }
        let channel = Array(gateway.keySpace.fillsChannel.utf8)
        clients.redisSend([Array("PUBLISH".utf8), channel, Array(fill.message(key: key).utf8)]) { _ in }
    }

    /// What the acquire script answers when it took the lease (`PTTL` never answers below -2).
    private static let acquired: Int64 = -3
    private static let acquireScript = """
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -3 end
        return redis.call('PTTL', KEYS[1])
        """
    private static let releaseScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """

    private func decode(_ result: Result<[UInt8]?, RedisError>, key: String) -> ReadThrough.LookupResult {
        switch result {
        case .success(let value?):
            if let entry = CachedResponse.decode(value) { return .entry(entry) }
            if let marker = VaryMarker.decode(value) { return .marker(marker) }
            gateway.logger.warning("undecodable cache entry, treating as a miss", metadata: ["cache.key": "\(key)"])
            return .missing
        case .success(nil):
            return .missing
        case .failure(let error):
            gateway.stats.redisError()
            return .failed(reason: error.shortDescription)
        }
    }

    private func lookup() {
        let key = self.key
        let started = RequestTrace.now()
        // Taken before the GET goes out: an invalidation that arrives before its answer wins.
        let ticket = key == primaryKey && resources.local.isEnabled ? resources.local.beginRead(key) : nil
        clients.redisGet(Array(key.utf8)) { [self] result in
            exchange.trace.addRedis(since: started)
            let found = decode(result, key: key)
            let at = now
            if let ticket {
                var fill: CachedResponse?
                if case .entry(let entry) = found, entry.freshness(at: at) == .fresh { fill = entry }
                resources.local.finishRead(ticket, filling: fill, now: at)
            }
            // Hit-for-miss marks matter only to a miss: a hit does not take their lock.
            let uncacheable = if case .missing = found { gateway.uncacheable.contains(key, now: at) } else { false }
            perform(machine.lookedUp(found, uncacheable: uncacheable, now: at))
        }
    }

    /// The flight this request waited for finished (on this loop).
    private func woken(_ outcome: FlightOutcome) {
        deadline?.cancel()
        deadline = nil
        endWait()
        perform(machine.flightCompleted(outcome, now: now))
    }

    private func endWait() {
        if let waitStarted { exchange.trace.addWait(since: waitStarted) }
        waitStarted = nil
    }

    private func store(_ entry: CachedResponse, ttlMilliseconds: Int, variant: ReadThrough.VariantStore?) {
        guard let token else { preconditionFailure("storing without leading the flight") }
        let flights = gateway.flights
        // A purge of this path or route came while the fill was in flight: what it fetched may
        // predate the change, so it is served to those who asked but never stored.
        if flights.isInvalidated(token) {
            perform(machine.storeCompleted(ok: false, purged: true, now: now))
            return
        }
        gateway.uncacheable.remove(key)
        let storeKey = variant.map { Variants.variantKey(primaryKey, selector: $0.selector) } ?? primaryKey
        var indexed = [primaryKey]
        if variant != nil { indexed += [storeKey, Variants.variantSetKey(primaryKey)] }
        // The path's index first, so that a purge that reads it after this point finds the key,
        // whenever the write lands (a purge before it is caught by the flight's mark below).
        let index = Array(gateway.keySpace.pathIndex(path: exchange.request.head.path).utf8)
        clients.redisSend([Array("SADD".utf8), index] + indexed.map { Array($0.utf8) }) { _ in }
        clients.redisSend([Array("PEXPIRE".utf8), index, Array(String(gateway.longestTTLMilliseconds).utf8)]) { _ in }
        // Each tag's index is a sorted set scored by when its entries leave Redis: expired members
        // are pruned on every add, and the set itself lives as long as its longest entry, so a
        // tag that keeps being used does not grow past its live entries.
        let leaves = Array(String(WallClock.nowMilliseconds() + UInt64(ttlMilliseconds)).utf8)
        let ttl = Array(String(ttlMilliseconds).utf8)
        for tag in tags {
            let tagKey = Array(gateway.keySpace.tagIndex(tag: tag).utf8)
            clients.redisSend([Array("ZADD".utf8), tagKey, leaves, Array(storeKey.utf8)]) { _ in }
            clients.redisSend([Array("ZREMRANGEBYSCORE".utf8), tagKey, Array("-inf".utf8), Array(String(WallClock.nowMilliseconds()).utf8)]) { _ in }
            clients.redisSend([Array("PEXPIRE".utf8), tagKey, ttl, Array("NX".utf8)]) { _ in }
            clients.redisSend([Array("PEXPIRE".utf8), tagKey, ttl, Array("GT".utf8)]) { _ in }
        }
        if let variant {
            // The marker under the request's key says which headers choose; the entry goes under
            // the variant's own key. The set of variants caps how many a key may have.
            let variants = Variants.variantSetKey(primaryKey)
            let ttl = Array(String(ttlMilliseconds).utf8)
            let member = Array(storeKey.utf8)
            let cap = exchange.route.cache?.maxVariants ?? 8
            clients.redisSet(Array(primaryKey.utf8), VaryMarker(names: variant.names).encode(), ttlMilliseconds: ttlMilliseconds) { _ in }
            clients.redisSend([Array("SADD".utf8), Array(variants.utf8), member]) { _ in }
            clients.redisSend([Array("PEXPIRE".utf8), Array(variants.utf8), ttl]) { _ in }
            clients.redisSend([Array("SCARD".utf8), Array(variants.utf8)]) { [clients] result in
                // Over the cap: this variant is served (it was) but not kept.
                if case .success(.integer(let count)) = result, count > cap {
                    clients.redisSend([Array("UNLINK".utf8), member]) { _ in }
                    clients.redisSend([Array("SREM".utf8), Array(variants.utf8), member]) { _ in }
                }
            }
        }
        let started = RequestTrace.now()
        clients.redisSet(Array(storeKey.utf8), entry.encode(), ttlMilliseconds: ttlMilliseconds) { [self] result in
            exchange.trace.addRedis(since: started)
            if case .failure(let error) = result {
                gateway.storeFailed(error, route: exchange.route.name)
            }
            let ok: Bool = if case .success = result { true } else { false }
            // A purge that came while the write was on its way ran before it landed: take it back.
            if ok && flights.isInvalidated(token) {
                clients.redisSend([Array("UNLINK".utf8), Array(storeKey.utf8)]) { _ in }
                perform(machine.storeCompleted(ok: false, purged: true, now: now))
                return
            }
            // Tracked, this write's own invalidation is on its way and would evict the copy;
            // the next read from Redis fills the tier instead.
            if ok && variant == nil && resources.local.coherence != .tracked { resources.local.put(primaryKey, entry, now: now) }
            perform(machine.storeCompleted(ok: ok, now: now))
        }
    }

    private func respond(_ reply: ReadThrough.Reply) {
        let head = exchange.request.head
        switch reply {
        case .entry(let entry, let status, let age):
            if status.isHit { gateway.stats.hit() } else if status.forward == .stale && status.forwardStatus != 304 { gateway.stats.staleServed() }
            exchange.respond(Gateway.fromCache(entry, for: head, status: status, age: age), status: status)
        case .error(let code, let message, let status):
            exchange.respond(Gateway.error(code, message, status: status), status: status, gatewayError: true)
        case .origin(let response, let status):
            var headers = response.headers
            headers.add(name: "Cache-Status", value: status.description)
            exchange.respond(HTTPResponse(status: response.status, headers: headers, body: response.body), status: status)
        }
    }
}

extension UpstreamRequest {
    init(_ origin: OriginRequest) {
        self.init(method: origin.method, pathAndQuery: origin.pathAndQuery, headers: origin.headers, body: origin.body)
    }
}

extension OriginResponse {
    init(_ response: UpstreamResponse) {
        self.init(
            status: response.status, headers: HTTPHeaders(response.headers.map { ($0.name, $0.value) }),
            body: response.body, isCompleteByFraming: response.isCompleteByFraming)
    }
}

extension OriginFailure {
    init(_ error: UpstreamError) {
        self.init(status: error.suggestedStatus, reason: error.shortDescription)
    }
}
