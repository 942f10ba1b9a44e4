import GatewayHTTP

/// A response from the upstream, as plain values.
public struct OriginResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The body's end was proven by its framing (`Content-Length` or chunked), not by a close.
    public var isCompleteByFraming: Bool

    public init(status: Int, headers: HTTPHeaders, body: [UInt8], isCompleteByFraming: Bool) {
        self.status = status
        self.headers = headers
        self.body = body
        self.isCompleteByFraming = isCompleteByFraming
    }
}

/// The upstream produced no usable response.
public struct OriginFailure: Error, Sendable, Equatable {
    /// What the client gets when nothing can stand in: 502, 503 or 504.
    public var status: Int
    /// A short constant reason for `Cache-Status` (`connect_failed`, `timeout`, …).
    public var reason: String

    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }
}

/// What a flight's leader hands its waiters.
package enum FlightOutcome: Sendable {
    /// A response the waiters may get (stored or not): all of them, or with `vary`, only those
    /// whose request matches the leader's on the fields the response varies on.
    case shared(CachedResponse, vary: VaryMatch?)
    /// The upstream failed; every waiter gets this error, or its own stale entry.
    case failed(status: Int, message: String)
    /// The response was personal: each waiter fetches its own.
    case refetch
}

/// How a lease holder's fill ended, as it announces it to the other instances (`<prefix>fills`).
package enum RemoteFill: Sendable, Equatable {
    /// The entry is in Redis: read it there.
    case stored
    /// Nothing was stored (personal, uncacheable, a purge, a failed write): each instance fetches
    /// its own, so no answer crosses instances except through Redis.
    case notStored
    /// The upstream failed with this status.
    case failed(status: Int)
    /// Announcements may have been missed (the subscription was lost): look again.
    case unknown

    /// The announcement's text: `stored <key>`, `not-stored <key>`, `failed <status> <key>`.
    package func message(key: String) -> String {
        switch self {
        case .stored: "stored " + key
        case .notStored: "not-stored " + key
        case .failed(let status): "failed \(status) " + key
        case .unknown: "unknown " + key
        }
    }

    /// Reads ``message(key:)``; nil for anything else (a bad message is ignored, never trusted).
    package static func parse(_ message: [UInt8]) -> (key: String, fill: RemoteFill)? {
        guard let text = String(validating: message, as: UTF8.self) else { return nil }
        let parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[1].isEmpty else { return nil }
        switch parts[0] {
        case "stored": return (String(parts[1]), .stored)
        case "not-stored": return (String(parts[1]), .notStored)
        case "unknown": return (String(parts[1]), .unknown)
        case "failed":
            let rest = parts[1].split(separator: " ", maxSplits: 1)
            guard rest.count == 2, let status = Int(rest[0]), (100...599).contains(status) else { return nil }
            return (String(rest[1]), .failed(status: status))
        default: return nil
        }
    }
}

/// One request on a cached route, from lookup to answer, as a state machine: the driver feeds it
/// events (what Redis, the flight table, the upstream and the clock said) and performs the actions
/// it returns. It never touches a socket, a queue or a client, so every path is tested in
/// isolation (`ReadThroughTests`).
///
/// A request may be answered before it is finished: a stale entry served while it refreshes the
/// key in the background (`stale_while_revalidate`) goes on to lead that refresh.
///
/// With ``lease`` (`cache.cross_instance`) the local leader coalesces across instances too: it
/// takes the key's lease in Redis before fetching (``Action/acquireLease(ttlMilliseconds:)``); the
/// holder announces how its fill ended (``Action/announce(_:)``, after the store); a leader that
/// finds the lease taken registers for that announcement, reads the key once more, and waits for
/// the announcement, the lease's expiry (then it looks again and may take over) or `max_wait`
/// (then a 504, as for a local waiter). Only the holder announces, and only `stored` lets another
/// instance answer, from what it reads in Redis: an answer that was not stored is fetched again
/// by each instance, so nothing personal crosses instances.
package struct ReadThrough: Sendable {
    package enum State: Sendable, Equatable {
        case idle
        /// Reading Redis.
        case lookingUp
        /// Asked the flight table to lead or wait.
        case joining
        /// Asked the flight table to lead a background refresh (already answered).
        case joiningRefresh
        /// Fetching for everyone (with `background`, the client was answered with a stale entry).
        case leading(background: Bool)
        /// Writing the fetched entry to Redis; the client is answered once Redis replied.
        case storing(background: Bool, revalidated: Bool)
        /// Waiting for another request's fetch.
        case waiting
        /// Fetching for this request alone; the answer is relayed as it is.
        case forwarding
        /// The local leader asked Redis for the key's lease (`cache.cross_instance`).
        case leasing
        /// Another instance holds the lease: waiting for its announcement, the lease's expiry or
        /// `max_wait`, whichever comes first; `rechecking` while a read of the key is out.
        case awaitingRemote(rechecking: Bool)
        case done
    }

    /// Cross-instance coalescing for this request's fill.
    package struct Lease: Sendable, Equatable {
        /// How long a lease lives unless released: the upstream timeout and a margin, so that a
        /// holder that died or was cut off frees the key on its own.
        package var ttlMilliseconds: Int
        package init(ttlMilliseconds: Int) { self.ttlMilliseconds = ttlMilliseconds }
    }

    package enum LeaseResult: Sendable, Equatable {
        case acquired
        /// Another instance holds it, for about this much longer (`PTTL`; negative when it just
        /// went away).
        case heldElsewhere(remainingMilliseconds: Int)
        /// Redis did not answer, or the announcement subscription is not up: coalesce locally.
        case unavailable
    }

    /// What a read of the key while awaiting another instance's fill is for.
    private enum RecheckPurpose {
        /// Right after registering for the announcement: a fill that landed between the lookup
        /// and the registration is found here; a miss means wait on.
        case confirm
        /// An announcement or the lease's expiry: a miss means take the lease.
        case beforeLease
    }

    package enum LookupResult: Sendable {
        case entry(CachedResponse)
        /// The answer varies: look up the variant this request selects.
        case marker(VaryMarker)
        case missing
        case failed(reason: String)
    }

    package enum JoinResult: Sendable {
        case leader
        case waiter
        case finished(FlightOutcome)
        /// `max_waiters` are already waiting.
        case overflow
    }

    /// How to answer the client.
    package enum Reply: Sendable {
        /// From a stored (or just fetched) entry; `age` says whether `Age` counts from its store.
        case entry(CachedResponse, CacheStatus, age: Bool)
        /// A short text error.
        case error(status: Int, message: String, CacheStatus)
        /// The upstream's own answer, relayed (never stored or shared).
        case origin(OriginResponse, CacheStatus)
    }

    package enum Action: Sendable {
        /// Read the key from Redis; answer with ``lookedUp(_:uncacheable:now:)``.
        case lookup
        /// Read the variant with this selector (``Variants/variantKey(_:selector:)``) instead; from
        /// now on it is the request's key. Answer with ``lookedUp(_:uncacheable:now:)``.
        case lookupVariant(selector: String)
        /// Answer the client. Comes at most once per request.
        case reply(Reply)
        /// Lead or wait for the key's flight (at most `max_waiters`); answer with ``joined(_:now:)``.
        case join(maxWaiters: Int)
        /// Lead a refresh if nobody fetches the key; answer with ``refreshJoined(leader:)``.
        case joinRefresh
        /// The leader's upstream call; answer with ``fetched(_:now:)``.
        case fetch(OriginRequest)
        /// An upstream call for this request alone, relayed as it is: ends the request.
        case forward(OriginRequest, CacheStatus)
        /// Hand the flight's result to its waiters; with `hold`, late arrivals get it too.
        case complete(FlightOutcome, hold: Bool)
        /// Index the entry about to be stored under these tags (for purge by tag).
        case tag([String])
        /// Write the entry to Redis for this long (as the variant `variant` selects, with the
        /// marker under the request's key); answer with ``storeCompleted(ok:now:)``.
        case store(CachedResponse, ttlMilliseconds: Int, variant: VariantStore?)
        /// Remember that the key's answer is not storable, so that requests for it go upstream
        /// in parallel for this long instead of queuing behind one (hit-for-miss).
        case markUncacheable(milliseconds: Int)
        /// Remove the flight after this long (the held result's grace).
        case release(afterMilliseconds: Int)
        /// Arm the waiter's deadline; when it passes and the waiter is still waiting, send
        /// ``deadlinePassed(now:)``.
        case armDeadline(milliseconds: Int)
        /// Stop waiting for the flight (answered without it).
        case leaveFlight
        /// Take the key's lease in Redis for this long; answer with ``leaseResult(_:now:)``.
        case acquireLease(ttlMilliseconds: Int)
        /// Listen for the key's announcement; pass it on with ``remoteFillAnnounced(_:now:)``.
        case awaitRemoteFill
        /// Read the key again; answer with ``rechecked(_:now:)``.
        case recheck
        /// (Re)arm the one timer of the remote wait; when it passes, send ``leaseRetryDue(now:)``.
        case armLeaseRetry(milliseconds: Int)
        /// Stop listening for the announcement and cancel the timer.
        case stopAwaitingRemote
        /// Tell the other instances how this fill ended, and give the lease back.
        case announce(RemoteFill)
    }

    package let settings: RouteCacheSettings
    package let routeClass: RouteClass
    /// What a fill sends (GET, the canonical target, the allowed headers).
    package let fill: OriginRequest
    /// The client's request headers: for `Vary` comparisons with the leader's.
    package let requestHeaders: HTTPHeaders
    /// The route's tags for this request's path.
    package let routeTags: [String]
    package private(set) var state: State = .idle
    /// An entry past its freshness: served if the upstream fails within its `stale_if_error`
    /// window, and its validators make the fetch conditional.
    private var stale: CachedResponse?
    /// Why Redis could not be read, if it could not.
    private var redisReason: String?
    /// The entry being stored, answered once Redis replied.
    private var pending: CachedResponse?
    /// The variant this request looked up, once a marker sent it there.
    private var selectedVariant: String?
    /// Cross-instance coalescing, when `cache.cross_instance` is on.
    package let lease: Lease?
    /// This request holds the key's lease: it must announce how its fill ended.
    private var holdsLease = false
    /// When waiting for other instances must end (`max_wait` after it began).
    private var remoteDeadline: UInt64?
    /// Registered for the key's announcements (from asking for the lease until the wait ends).
    private var watching = false
    private var recheckPurpose: RecheckPurpose = .confirm
    /// An announcement that came while a recheck was out, handled once it is back.
    private var pendingAnnouncement: RemoteFill?

    /// Where a varying answer goes: the marker's names and the variant's selector.
    package struct VariantStore: Sendable, Equatable {
        package var names: [String]
        package var selector: String
    }

    /// How long a stored flight's result is kept after Redis acknowledged the write.
    package static let holdGraceMilliseconds = 1000

    package init(settings: RouteCacheSettings, routeClass: RouteClass, fill: OriginRequest, requestHeaders: HTTPHeaders,
                 routeTags: [String] = [], lease: Lease? = nil) {
        self.lease = lease
        self.routeTags = routeTags
        self.settings = settings
        self.routeClass = routeClass
        self.fill = fill
        self.requestHeaders = requestHeaders
    }

    // MARK: Events

    /// The request arrives; `local` is the in-process tier's entry for the key, if any.
    package mutating func start(local: CachedResponse?, now: UInt64) -> [Action] {
        precondition(state == .idle)
        if let local, local.freshness(at: now) == .fresh {
            state = .done
            return [.reply(.entry(local, .hit("local"), age: true))]
        }
        state = .lookingUp
        return [.lookup]
    }

    /// Redis answered. `uncacheable`: the key is marked hit-for-miss.
    package mutating func lookedUp(_ result: LookupResult, uncacheable: Bool, now: UInt64) -> [Action] {
        precondition(state == .lookingUp)
        switch result {
        case .entry(let entry):
            switch entry.freshness(at: now) {
            case .fresh:
                state = .done
                return [.reply(.entry(entry, .hit, age: true))]
            case .staleWhileRevalidate:
                // Nobody waits for an expired hot key: the stale entry now, one refresh behind it.
                stale = entry
                state = .joiningRefresh
                return [.reply(.entry(entry, CacheStatus(forward: .stale, detail: "stale-while-revalidate"), age: true)), .joinRefresh]
            case .stale:
                stale = entry
            }
        case .marker(let marker):
            // Resolve a marker once; a marker where a variant was expected reads as a miss.
            if selectedVariant == nil {
                let selector = Variants.selector(marker.names, in: fill.headers)
                selectedVariant = selector
                return [.lookupVariant(selector: selector)]
            }
        case .missing:
            if uncacheable {
                state = .forwarding
                return [.forward(fill, .miss("uncacheable"))]
            }
        case .failed(let reason):
            redisReason = reason
            if settings.freshness.onStoreError == .fail {
                state = .done
                return [.reply(.error(status: 503, message: "the cache is unavailable", .miss("redis-\(reason)")))]
            }
        }
        state = .joining
        return [.join(maxWaiters: settings.freshness.maxWaiters)]
    }

    /// The flight table answered ``Action/join(maxWaiters:)``.
    package mutating func joined(_ result: JoinResult, now: UInt64) -> [Action] {
        precondition(state == .joining)
        switch result {
        case .leader:
            // Only the local leader talks to Redis about the lease: one lease request per key
            // per instance, however many of its clients ask.
            if let lease {
                // Registered before the lease is asked for: a holder's announcement is published
                // after Redis ran our acquire, so it cannot slip between the answer and the
                // registration (a missed `failed` would leave this request waiting for the PTTL).
                state = .leasing
                watching = true
                return [.awaitRemoteFill, .acquireLease(ttlMilliseconds: lease.ttlMilliseconds)]
            }
            state = .leading(background: false)
            return [.fetch(conditionalFill())]
        case .waiter:
            // Someone is already fetching, and this request holds an entry that may stand in for
            // a failure: answer with it now rather than wait on an upstream that may be hung
            // (nginx's `proxy_cache_use_stale updating`). Only the leader waits.
            if let stale, stale.usableOnError(at: now) {
                state = .done
                return [.leaveFlight, .reply(.entry(stale, CacheStatus(forward: .stale, collapsed: true, detail: "updating"), age: true))]
            }
            state = .waiting
            return [.armDeadline(milliseconds: Int(settings.maxWait.wholeMilliseconds))]
        case .finished(let outcome):
            return deliver(outcome, now: now)
        case .overflow:
            state = .done
            if let stale, stale.usableOnError(at: now) {
                return [.reply(.entry(stale, CacheStatus(forward: .stale, detail: "max-waiters"), age: true))]
            }
            return [.reply(.error(status: 503, message: "too many requests are waiting for this resource", .miss("max-waiters")))]
        }
    }

    /// The flight table answered ``Action/joinRefresh``: whether this request leads the refresh.
    package mutating func refreshJoined(leader: Bool) -> [Action] {
        precondition(state == .joiningRefresh)
        guard leader else {
            state = .done
            return []
        }
        state = .leading(background: true)
        return [.fetch(conditionalFill())]
    }

    /// The leader's upstream call finished.
    package mutating func fetched(_ result: Result<OriginResponse, OriginFailure>, now: UInt64) -> [Action] {
        guard case .leading(let background) = state else { preconditionFailure("fetched in \(state)") }
        let response: OriginResponse
        switch result {
        case .failure(let failure):
            return failed(status: failure.status, reason: failure.reason, background: background, now: now)
        case .success(let r):
            response = r
        }
        if let stale, response.status == 304, stale.hasValidators {
            // Revalidated: the stored body is still good; renew it with the 304's headers.
            let renewed = renew(stale, with: response.headers, now: now)
            pending = renewed.entry
            state = .storing(background: background, revalidated: true)
            let variant = variantStore(for: renewed.entry.headers)
            let vary = variant.map { VaryMatch(variantOf: $0.names, fill: fill.headers) }
            return [.complete(.shared(renewed.entry, vary: vary), hold: true),
                    .store(renewed.entry, ttlMilliseconds: renewed.redisTTL, variant: variant)]
        }
        if let stale, stale.usableOnError(at: now), settings.freshness.staleIfErrorStatuses.contains(response.status) {
            return failed(status: response.status, reason: "status-\(response.status)", background: background, now: now)
        }

        // Forced TTL or the origin's freshness, CDN-Cache-Control first (CachePolicy.plan).
        let plan = CachePolicy.plan(
            status: response.status, headers: response.headers, bodyCount: response.body.count,
            completeByFraming: response.isCompleteByFraming, requestHasAuthorization: fillHasAuthorization,
            routeClass: routeClass, settings: settings, now: now)
        let decision = plan.decision
        // Framing is the gateway's: an upstream Content-Length next to Transfer-Encoding (or any
        // stale one) must not be replayed by a later HEAD from the entry.
        var dropped: Set<String> = ["set-cookie", "age", "cache-status", "content-length"]
        if let tagsHeader = settings.tagsHeader, !settings.exposeTagsHeader { dropped.insert(tagsHeader) }
        let kept = HeaderRules.endToEnd(response.headers, alsoDropping: dropped)
        var entry = CachedResponse(status: response.status, headers: kept, body: response.body[...], storedAt: now)
        let uncacheable = Int(settings.freshness.uncacheableTTL.wholeMilliseconds)
        switch decision {
        case .store:
            let windows = plan.windows
            entry.storedAt = windows.storedAt
            entry.expiresAt = windows.expiresAt
            entry.staleWhileRevalidateUntil = windows.staleWhileRevalidateUntil
            entry.staleIfErrorUntil = windows.staleIfErrorUntil
            pending = entry
            state = .storing(background: background, revalidated: false)
            // Waiters are woken now; the Redis write happens behind them. A variant is handed
            // only to waiters that select the same one.
            let variant = variantStore(for: response.headers)
            let vary = variant.map { VaryMatch(variantOf: $0.names, fill: fill.headers) }
            let tags = self.tags(of: response.headers)
            return [.complete(.shared(entry, vary: vary), hold: true)] + (tags.isEmpty ? [] : [.tag(tags)])
                + [.store(entry, ttlMilliseconds: windows.redisTTL, variant: variant)]
        case .shareOnly(let reason):
            // A response that varies is shared only with waiters whose request matches the
            // leader's on every field it varies on; the others fetch their own.
            let varied = HeaderRules.vary(response.headers)
            let outcome: FlightOutcome = varied.isEmpty
                ? .shared(entry, vary: nil)
                : varied.contains("*") ? .refetch : .shared(entry, vary: VaryMatch(varied, in: requestHeaders))
            state = .done
            var actions: [Action] = [.complete(outcome, hold: false)] + announce(.notStored)
            if uncacheable > 0 { actions.append(.markUncacheable(milliseconds: uncacheable)) }
            if !background { actions.append(.reply(.entry(entry, .miss("not-stored-\(reason)"), age: false))) }
            return actions
        case .doNotShare(let reason):
            state = .done
            var actions: [Action] = [.complete(.refetch, hold: false)] + announce(.notStored)
            if uncacheable > 0 { actions.append(.markUncacheable(milliseconds: uncacheable)) }
            if !background {
                // The leader's own answer, Set-Cookie and all.
                var own = response
                own.headers = HeaderRules.endToEnd(response.headers, alsoDropping: dropped.subtracting(["set-cookie", "content-length"]))
                actions.append(.reply(.origin(own, .miss("not-stored-\(reason)"))))
            }
            return actions
        }
    }

    /// Redis answered ``Action/store(_:ttlMilliseconds:variant:)`` (or, with `purged`, the driver
    /// did not keep the write because a purge matched the fetch).
    package mutating func storeCompleted(ok: Bool, purged: Bool = false, now: UInt64) -> [Action] {
        guard case .storing(let background, let revalidated) = state, let entry = pending else {
            preconditionFailure("storeCompleted in \(state)")
        }
        state = .done
        pending = nil
        // A request whose lookup was answered just before the write landed may join a moment
        // later: keep the result for it a little longer, never past the entry's freshness. A
        // failed write leaves nothing to bridge.
        let fresh = entry.expiresAt > now ? Int(entry.expiresAt - now) : 0
        var actions: [Action] = [.release(afterMilliseconds: ok ? min(Self.holdGraceMilliseconds, fresh) : 0)]
        actions += announce(ok ? .stored : .notStored)
        guard !background else { return actions }
        var status = revalidated ? CacheStatus(forward: .stale, forwardStatus: 304) : CacheStatus(forward: .miss)
        if ok {
            status.stored = true
        } else {
            status.detail = "store-failed"
        }
        // With Redis already failing this request, say why rather than claim a store.
        if let redisReason, !ok { status.detail = "redis-\(redisReason)" }
        if purged { status.detail = "purged-while-fetching" }
        actions.append(.reply(.entry(entry, status, age: false)))
        return actions
    }

    /// The flight this request waited for finished.
    package mutating func flightCompleted(_ outcome: FlightOutcome, now: UInt64) -> [Action] {
        guard state == .waiting else { return [] }  // answered already (the deadline won)
        return deliver(outcome, now: now)
    }

    /// The waiter's deadline passed while it was still waiting (the driver took it off the flight).
    package mutating func deadlinePassed(now: UInt64) -> [Action] {
        guard state == .waiting else { return [] }
        state = .done
        // No stale entry can stand in here: one that could would have answered at join.
        return [.reply(.error(status: 504, message: "timed out waiting for the upstream response",
                              CacheStatus(forward: .miss, collapsed: true, detail: "max-wait")))]
    }

    // MARK: Events across instances

    /// Redis answered ``Action/acquireLease(ttlMilliseconds:)``.
    package mutating func leaseResult(_ result: LeaseResult, now: UInt64) -> [Action] {
        precondition(state == .leasing, "leaseResult in \(state)")
        switch result {
        case .acquired:
            holdsLease = true
            state = .leading(background: false)
            // An announcement that came meanwhile is of a fill that ended before ours began.
            pendingAnnouncement = nil
            return stopWatching() + [.fetch(conditionalFill())]
        case .unavailable:
            // Per-instance coalescing, as without the lease: the local flight still stands.
            state = .leading(background: false)
            pendingAnnouncement = nil
            return stopWatching() + [.fetch(conditionalFill())]
        case .heldElsewhere(let remaining):
            if remoteDeadline == nil { remoteDeadline = now + UInt64(max(1, settings.maxWait.wholeMilliseconds)) }
            guard let deadline = remoteDeadline, deadline > now else { return gaveUp(now: now) }
            // Registered before the key is read again, so a fill that lands in between is either
            // seen by that read or announced to the registration (an announcement that came
            // while the lease was asked for is acted on once the read is back).
            state = .awaitingRemote(rechecking: true)
            recheckPurpose = .confirm
            // A holder that dies frees the key when its lease expires: look again then, never
            // past max_wait. A lease that just went (-2) is tried again at once.
            let untilExpiry = remaining < 0 ? 1 : remaining + 1
            let delay = max(1, min(untilExpiry, Int(deadline - now)))
            return [.recheck, .armLeaseRetry(milliseconds: delay)]
        }
    }

    /// The lease holder announced how its fill ended (or the announcements may have been missed).
    package mutating func remoteFillAnnounced(_ fill: RemoteFill, now: UInt64) -> [Action] {
        if state == .leasing, watching {
            // Whose fill it was depends on the lease's answer: kept until then.
            pendingAnnouncement = fill
            return []
        }
        guard case .awaitingRemote(let rechecking) = state else { return [] }
        if rechecking {
            // The read out may predate the fill: act on the announcement once it is back.
            pendingAnnouncement = fill
            return []
        }
        switch fill {
        case .stored, .unknown:
            state = .awaitingRemote(rechecking: true)
            recheckPurpose = .beforeLease
            return [.recheck]
        case .notStored:
            // A personal or uncacheable answer is never handed across instances: fetch our own
            // (the local flight then shares it locally by the usual rules).
            state = .leading(background: false)
            return stopWatching() + [.fetch(conditionalFill())]
        case .failed(let status):
            // At once, not at the lease's expiry; a stale entry of our own may stand in.
            return stopWatching() + failed(status: status, reason: "remote-fill-failed", background: false, now: now)
        }
    }

    /// Redis answered ``Action/recheck``.
    package mutating func rechecked(_ result: LookupResult, now: UInt64) -> [Action] {
        guard state == .awaitingRemote(rechecking: true) else { preconditionFailure("rechecked in \(state)") }
        switch result {
        case .entry(let entry) where entry.freshness(at: now) == .fresh:
            // The other instance's fill, as stored: share it with the local waiters and hold it
            // for late local arrivals, like a fill of our own.
            state = .done
            let fresh = entry.expiresAt > now ? Int(entry.expiresAt - now) : 0
            return stopWatching() + [.complete(.shared(entry, vary: nil), hold: true),
                    .release(afterMilliseconds: min(Self.holdGraceMilliseconds, fresh)),
                    .reply(.entry(entry, CacheStatus(forward: .miss, collapsed: true, detail: "remote-fill"), age: true))]
        case .entry, .missing:
            // Nothing new yet (a stale entry is what sent this request to fetch).
            state = .awaitingRemote(rechecking: false)
            if let pending = pendingAnnouncement {
                pendingAnnouncement = nil
                return remoteFillAnnounced(pending, now: now)
            }
            guard recheckPurpose == .beforeLease, let lease else { return [] }
            state = .leasing
            return [.acquireLease(ttlMilliseconds: lease.ttlMilliseconds)]
        case .marker, .failed:
            // A varying answer (its variant is chosen per request) or Redis failing: fetch here.
            state = .leading(background: false)
            pendingAnnouncement = nil
            return stopWatching() + [.fetch(conditionalFill())]
        }
    }

    /// The remote wait's timer passed: the lease may have expired, or `max_wait` is up.
    package mutating func leaseRetryDue(now: UInt64) -> [Action] {
        guard case .awaitingRemote(let rechecking) = state else { return [] }
        if let deadline = remoteDeadline, now >= deadline { return gaveUp(now: now) }
        if rechecking {
            recheckPurpose = .beforeLease
            return []
        }
        state = .awaitingRemote(rechecking: true)
        recheckPurpose = .beforeLease
        return [.recheck]
    }

    // MARK: Decisions

    /// `max_wait` passed awaiting another instance: the same 504 a local waiter gets, for this
    /// request and its local waiters (which a later request does not inherit). An entry inside
    /// its `stale_if_error` window stands in, as it does for any other upstream failure.
    private mutating func gaveUp(now: UInt64) -> [Action] {
        state = .done
        let message = "timed out waiting for the upstream response"
        let answer: Reply = if let stale, stale.usableOnError(at: now) {
            .entry(stale, CacheStatus(forward: .stale, collapsed: true, detail: "max-wait"), age: true)
        } else {
            .error(status: 504, message: message, CacheStatus(forward: .miss, collapsed: true, detail: "max-wait"))
        }
        return stopWatching() + [.complete(.failed(status: 504, message: message), hold: false), .reply(answer)]
    }

    /// Ends the registration for announcements, if this request has one.
    private mutating func stopWatching() -> [Action] {
        guard watching else { return [] }
        watching = false
        return [.stopAwaitingRemote]
    }

    /// The announcement of this request's fill, once: only the lease's holder announces.
    private mutating func announce(_ fill: RemoteFill) -> [Action] {
        guard holdsLease else { return [] }
        holdsLease = false
        return [.announce(fill)]
    }

    private mutating func deliver(_ outcome: FlightOutcome, now: UInt64) -> [Action] {
        switch outcome {
        case .shared(let entry, let vary):
            if let vary, !vary.matches(requestHeaders, fill: fill.headers) {
                state = .forwarding
                return [.forward(fill, .miss("not-shareable-vary"))]
            }
            state = .done
            return [.reply(.entry(entry, CacheStatus(forward: .miss, collapsed: true), age: false))]
        case .failed(let status, let message):
            // Only waiters get a failure (held results are stored entries), and a waiter holds no
            // stale entry that could stand in: it would have answered at join.
            state = .done
            return [.reply(.error(status: status, message: message, CacheStatus(forward: .miss, collapsed: true)))]
        case .refetch:
            state = .forwarding
            return [.forward(fill, .miss("not-shareable"))]
        }
    }

    private mutating func failed(status: Int, reason: String, background: Bool, now: UInt64) -> [Action] {
        state = .done
        let message = Self.upstreamMessage(status)
        // A failed refresh leaves the stale entry in place; a later request tries again.
        var actions: [Action] = [.complete(.failed(status: status, message: message), hold: false)]
        if holdsLease { actions.append(contentsOf: announce(.failed(status: status))) }
        guard !background else { return actions }
        if let stale, stale.usableOnError(at: now) {
            actions.append(.reply(.entry(stale, CacheStatus(forward: .stale, forwardStatus: status, detail: "stale-if-error"), age: true)))
        } else {
            actions.append(.reply(.error(status: status, message: message, .miss(reason))))
        }
        return actions
    }

    /// The route's tags and those the response lists in `tags_header` (space or comma separated).
    private func tags(of headers: HTTPHeaders) -> [String] {
        var tags = routeTags
        if let name = settings.tagsHeader {
            for value in headers.values(name) {
                for tag in value.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }) where !tags.contains(String(tag)) {
                    tags.append(String(tag))
                }
            }
        }
        return tags
    }

    /// Where an answer with these headers is stored, when it varies on allowed headers.
    private func variantStore(for headers: HTTPHeaders) -> VariantStore? {
        guard case .variants(let names) = Variants.plan(varied: HeaderRules.vary(headers), settings: settings, routeClass: routeClass)
        else { return nil }
        return VariantStore(names: names, selector: Variants.selector(names, in: fill.headers))
    }

    /// The fill, made conditional on the stale entry's validators, so that an unchanged resource
    /// comes back as a bodiless 304.
    private func conditionalFill() -> OriginRequest {
        guard let stale else { return fill }
        var request = fill
        if let etag = stale.headers["ETag"] { request.headers.append(("If-None-Match", etag)) }
        if let modified = stale.headers["Last-Modified"] { request.headers.append(("If-Modified-Since", modified)) }
        return request
    }

    /// The stale entry with the 304's headers (RFC 9111 §4.3.4: they replace the stored ones of
    /// the same name) and a new lifetime from now.
    private func renew(_ entry: CachedResponse, with headers: HTTPHeaders, now: UInt64) -> (entry: CachedResponse, redisTTL: Int) {
        var renewed = entry
        let update = HeaderRules.endToEnd(headers, alsoDropping: ["set-cookie", "age", "cache-status", "content-length", "content-encoding"])
        for name in Set(update.map { $0.name.lowercased() }) {
            renewed.headers.remove(name: name)
            for value in update.values(name) { renewed.headers.add(name: name, value: value) }
        }
        let windows = CachePolicy.renewal(
            status: entry.status, headers: renewed.headers, notModified: headers, requestHasAuthorization: fillHasAuthorization,
            routeClass: routeClass, settings: settings, now: now)
        renewed.storedAt = windows.storedAt
        renewed.expiresAt = windows.expiresAt
        renewed.staleWhileRevalidateUntil = windows.staleWhileRevalidateUntil
        renewed.staleIfErrorUntil = windows.staleIfErrorUntil
        return (renewed, windows.redisTTL)
    }

    /// An entry's deadlines for a TTL, and how long Redis keeps it: fresh, then the longest of the
    /// stale windows and `keep`.
    package static func windows(ttl: Duration, freshness: FreshnessSettings, now: UInt64)
        -> (expiresAt: UInt64, staleWhileRevalidateUntil: UInt64, staleIfErrorUntil: UInt64, redisTTL: Int)
    {
        let fresh = UInt64(max(1, ttl.wholeMilliseconds))
        let swr = UInt64(max(0, freshness.staleWhileRevalidate.wholeMilliseconds))
        let sie = UInt64(max(0, freshness.staleIfError.wholeMilliseconds))
        let keep = UInt64(max(0, freshness.keep.wholeMilliseconds))
        let expiresAt = now + fresh
        return (expiresAt, expiresAt + swr, expiresAt + sie, Int(fresh + max(swr, sie, keep)))
    }

    /// What a client is told when the upstream failed: short, the same for everyone, with no
    /// address or library message in it (the reason goes to `Cache-Status` and the log).
    package static func upstreamMessage(_ status: Int) -> String {
        switch status {
        case 504: "the upstream did not answer in time"
        case 503: "the upstream is busy, try again"
        case 400: "the request cannot be forwarded"
        default: "the upstream did not answer correctly"
        }
    }
}

extension ReadThrough {
    /// Whether the fill carries `Authorization` to the origin (RFC 9111 §3.5, origin mode).
    var fillHasAuthorization: Bool { fill.headers.contains { $0.name.lowercased() == "authorization" } }
}

extension CachedResponse {
    /// Whether a refresh can be conditional (`ETag` or `Last-Modified` stored).
    var hasValidators: Bool { headers.contains("ETag") || headers.contains("Last-Modified") }
}
