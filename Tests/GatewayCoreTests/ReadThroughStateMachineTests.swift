import GatewayHTTP
import XCTest

@testable import GatewayCore

/// The read-through state machine alone: every state and event of the design, no sockets, no
/// Redis, no clock (times are given).
final class ReadThroughStateMachineTests: XCTestCase {
    private let t0: UInt64 = 1_764_576_000_000

    private func settings(swr: Duration = .zero, sie: Duration = .zero, keep: Duration = .zero,
                          onStoreError: StoreErrorPolicy = .origin, maxWaiters: Int = 10_000) -> RouteCacheSettings {
        RouteCacheSettings(ttl: .seconds(10), maxWait: .seconds(2), freshness: FreshnessSettings(
            staleWhileRevalidate: swr, staleIfError: sie, keep: keep, maxWaiters: maxWaiters, onStoreError: onStoreError))
    }

    private func machine(_ settings: RouteCacheSettings? = nil, routeClass: RouteClass = .public,
                         headers: [(String, String)] = []) -> ReadThrough {
        ReadThrough(settings: settings ?? self.settings(), routeClass: routeClass,
                    fill: OriginRequest(pathAndQuery: "/catalog/a", headers: [("Host", "backend")]),
                    requestHeaders: HTTPHeaders(headers))
    }

    /// An entry stored at `storedAt` with a 10 s TTL and the given windows.
    private func entry(storedAt: UInt64, swr: UInt64 = 0, sie: UInt64 = 0, headers: [(String, String)] = [], body: String = "v1") -> CachedResponse {
        CachedResponse(status: 200, headers: HTTPHeaders(headers), body: Array(body.utf8)[...], storedAt: storedAt,
                       expiresAt: storedAt + 10_000, staleWhileRevalidateUntil: storedAt + 10_000 + swr,
                       staleIfErrorUntil: storedAt + 10_000 + sie)
    }

    private func ok(_ body: String = "v2", status: Int = 200, _ headers: [(String, String)] = []) -> Result<OriginResponse, OriginFailure> {
        .success(OriginResponse(status: status, headers: HTTPHeaders(headers), body: Array(body.utf8), isCompleteByFraming: true))
    }

    private func describe(_ actions: [ReadThrough.Action]) -> [String] { actions.transcript }

    // MARK: idle

    func testAFreshLocalEntryIsAnsweredWithoutRedis() {
        var m = machine()
        XCTAssertEqual(describe(m.start(local: entry(storedAt: t0), now: t0 + 1)), ["reply v1 [CacheGateway; hit; detail=local] age"])
        XCTAssertEqual(m.state, .done)
    }

    func testNoOrStaleLocalEntryLooksUpRedis() {
        var m = machine()
        XCTAssertEqual(describe(m.start(local: nil, now: t0)), ["lookup"])
        var n = machine()
        XCTAssertEqual(describe(n.start(local: entry(storedAt: t0), now: t0 + 10_000)), ["lookup"])
        XCTAssertEqual(n.state, .lookingUp)
    }

    // MARK: lookingUp

    func testFreshHit() {
        var m = machine()
        _ = m.start(local: nil, now: t0)
        XCTAssertEqual(describe(m.lookedUp(.entry(entry(storedAt: t0)), uncacheable: false, now: t0 + 9_999)),
                       ["reply v1 [CacheGateway; hit] age"])
    }

    func testMissJoinsTheFlightWithTheWaiterCap() {
        var m = machine(settings(maxWaiters: 7))
        _ = m.start(local: nil, now: t0)
        XCTAssertEqual(describe(m.lookedUp(.missing, uncacheable: false, now: t0)), ["join max=7"])
        XCTAssertEqual(m.state, .joining)
    }

    func testAMissOnAnUncacheableKeyGoesStraightUpstream() {
        var m = machine()
        _ = m.start(local: nil, now: t0)
        XCTAssertEqual(describe(m.lookedUp(.missing, uncacheable: true, now: t0)), ["forward [CacheGateway; fwd=miss; detail=uncacheable]"])
        XCTAssertEqual(m.state, .forwarding)
    }

    func testAStoredEntryWinsOverTheUncacheableMark() {
        var m = machine()
        _ = m.start(local: nil, now: t0)
        XCTAssertEqual(describe(m.lookedUp(.entry(entry(storedAt: t0)), uncacheable: true, now: t0)), ["reply v1 [CacheGateway; hit] age"])
    }

    func testRedisFailureFetchesOrFailsAsTheRouteSays() {
        var origin = machine()
        _ = origin.start(local: nil, now: t0)
        XCTAssertEqual(describe(origin.lookedUp(.failed(reason: "timeout"), uncacheable: false, now: t0)), ["join max=10000"])
        var fail = machine(settings(onStoreError: .fail))
        _ = fail.start(local: nil, now: t0)
        XCTAssertEqual(describe(fail.lookedUp(.failed(reason: "timeout"), uncacheable: false, now: t0)),
                       ["reply 503 [CacheGateway; fwd=miss; detail=redis-timeout]"])
    }

    func testInsideStaleWhileRevalidateTheStaleEntryIsServedAndOneRefreshLed() {
        var m = machine(settings(swr: .seconds(30)))
        _ = m.start(local: nil, now: t0)
        let stale = entry(storedAt: t0, swr: 30_000, headers: [("ETag", "\"v1\"")])
        XCTAssertEqual(describe(m.lookedUp(.entry(stale), uncacheable: false, now: t0 + 12_000)), [
            "reply v1 [CacheGateway; fwd=stale; detail=stale-while-revalidate] age", "join-refresh",
        ])
        XCTAssertEqual(describe(m.refreshJoined(leader: true)), ["fetch If-None-Match=\"v1\""])
        XCTAssertEqual(m.state, .leading(background: true))
        // The refresh stores quietly: the client was answered already.
        XCTAssertEqual(describe(m.fetched(ok(), now: t0 + 12_050)), ["complete shared v2 hold", "store ttl=40000"])
        XCTAssertEqual(describe(m.storeCompleted(ok: true, now: t0 + 12_060)), ["release after=1000"])
        XCTAssertEqual(m.state, .done)
    }

    func testASecondRequestDuringTheRefreshStartsNothing() {
        var m = machine(settings(swr: .seconds(30)))
        _ = m.start(local: nil, now: t0)
        _ = m.lookedUp(.entry(entry(storedAt: t0, swr: 30_000)), uncacheable: false, now: t0 + 12_000)
        XCTAssertEqual(describe(m.refreshJoined(leader: false)), [])
        XCTAssertEqual(m.state, .done)
    }

    func testAFailedRefreshLeavesTheStaleEntryAndAnswersNobody() {
        var m = machine(settings(swr: .seconds(30)))
        _ = m.start(local: nil, now: t0)
        _ = m.lookedUp(.entry(entry(storedAt: t0, swr: 30_000)), uncacheable: false, now: t0 + 12_000)
        _ = m.refreshJoined(leader: true)
        XCTAssertEqual(describe(m.fetched(.failure(OriginFailure(status: 502, reason: "connect_failed")), now: t0 + 12_100)),
                       ["complete failed 502"])
        XCTAssertEqual(m.state, .done)
    }

    func testPastEveryWindowAStaleEntryStillMakesTheFetchConditional() {
        var m = machine(settings(keep: .seconds(3600)))
        _ = m.start(local: nil, now: t0)
        let old = entry(storedAt: t0, headers: [("ETag", "\"v1\""), ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")])
        XCTAssertEqual(describe(m.lookedUp(.entry(old), uncacheable: false, now: t0 + 60_000)), ["join max=10000"])
        XCTAssertEqual(describe(m.joined(.leader, now: t0 + 60_000)),
                       ["fetch If-None-Match=\"v1\" If-Modified-Since=Sun, 06 Nov 1994 08:49:37 GMT"])
    }

    // MARK: joining

    func testLeaderFetchesWaiterArmsItsDeadlineFinishedIsDelivered() {
        var leader = machine()
        _ = leader.start(local: nil, now: t0)
        _ = leader.lookedUp(.missing, uncacheable: false, now: t0)
        XCTAssertEqual(describe(leader.joined(.leader, now: t0)), ["fetch"])

        var waiter = machine()
        _ = waiter.start(local: nil, now: t0)
        _ = waiter.lookedUp(.missing, uncacheable: false, now: t0)
        XCTAssertEqual(describe(waiter.joined(.waiter, now: t0)), ["deadline 2000"])
        XCTAssertEqual(waiter.state, .waiting)

        var late = machine()
        _ = late.start(local: nil, now: t0)
        _ = late.lookedUp(.missing, uncacheable: false, now: t0)
        XCTAssertEqual(describe(late.joined(.finished(.shared(entry(storedAt: t0), vary: nil)), now: t0)),
                       ["reply v1 [CacheGateway; fwd=miss; collapsed]"])
    }

    func testOverflowGivesTheStaleEntryOrA503() {
        var none = machine()
        _ = none.start(local: nil, now: t0)
        _ = none.lookedUp(.missing, uncacheable: false, now: t0)
        XCTAssertEqual(describe(none.joined(.overflow, now: t0)), ["reply 503 [CacheGateway; fwd=miss; detail=max-waiters]"])

        var stale = machine(settings(sie: .seconds(600)))
        _ = stale.start(local: nil, now: t0)
        _ = stale.lookedUp(.entry(entry(storedAt: t0, sie: 600_000)), uncacheable: false, now: t0 + 20_000)
        XCTAssertEqual(describe(stale.joined(.overflow, now: t0 + 20_000)),
                       ["reply v1 [CacheGateway; fwd=stale; detail=max-waiters] age"])
    }

    // MARK: leading

    private func leading(_ settings: RouteCacheSettings? = nil, stale: CachedResponse? = nil, now: UInt64? = nil,
                         routeClass: RouteClass = .public, headers: [(String, String)] = []) -> ReadThrough {
        var m = machine(settings, routeClass: routeClass, headers: headers)
        _ = m.start(local: nil, now: now ?? t0)
        _ = m.lookedUp(stale.map { .entry($0) } ?? .missing, uncacheable: false, now: now ?? t0)
        _ = m.joined(.leader, now: now ?? t0)
        return m
    }

    func testAStorableAnswerWakesWaitersThenIsAnsweredOnceRedisTookIt() {
        var m = leading()
        XCTAssertEqual(describe(m.fetched(ok(), now: t0 + 10)), ["complete shared v2 hold", "store ttl=10000"])
        XCTAssertEqual(describe(m.storeCompleted(ok: true, now: t0 + 11)),
                       ["release after=1000", "reply v2 [CacheGateway; fwd=miss; stored]"])
    }

    func testAFailedStoreIsNotClaimedAndNotHeld() {
        var m = leading()
        _ = m.fetched(ok(), now: t0 + 10)
        XCTAssertEqual(describe(m.storeCompleted(ok: false, now: t0 + 11)),
                       ["release after=0", "reply v2 [CacheGateway; fwd=miss; detail=store-failed]"])
    }

    func testTheRedisTTLCoversTheLongestWindow() {
        var m = leading(settings(swr: .seconds(30), sie: .seconds(600), keep: .seconds(60)))
        XCTAssertEqual(describe(m.fetched(ok(), now: t0)), ["complete shared v2 hold", "store ttl=610000"])
    }

    func testNotStorableAnswersMarkTheKeyAndAreSharedOrNot() {
        var shared = leading()
        XCTAssertEqual(describe(shared.fetched(ok(status: 500), now: t0)), [
            "complete shared v2", "uncacheable 30000", "reply v2 [CacheGateway; fwd=miss; detail=not-stored-status]",
        ])
        var personal = leading()
        XCTAssertEqual(describe(personal.fetched(ok("mine", [("Set-Cookie", "a=1")]), now: t0)), [
            "complete refetch", "uncacheable 30000", "reply origin 200 [CacheGateway; fwd=miss; detail=not-stored-set-cookie]",
        ])
        var varied = leading(headers: [("X-Theme", "dark")])
        XCTAssertEqual(describe(varied.fetched(ok("dark", [("Vary", "X-Theme")]), now: t0)), [
            "complete shared dark vary", "uncacheable 30000", "reply dark [CacheGateway; fwd=miss; detail=not-stored-vary]",
        ], "a header outside vary_headers: shared only with matching waiters, not stored")
        var star = leading()
        XCTAssertEqual(describe(star.fetched(ok("x", [("Vary", "*")]), now: t0)).first, "complete refetch")
    }

    func testUpstreamFailureGivesTheErrorOrTheStaleEntryInsideStaleIfError() {
        var none = leading()
        XCTAssertEqual(describe(none.fetched(.failure(OriginFailure(status: 504, reason: "timeout")), now: t0)),
                       ["complete failed 504", "reply 504 [CacheGateway; fwd=miss; detail=timeout]"])

        let stale = entry(storedAt: t0, sie: 600_000)
        var inside = leading(settings(sie: .seconds(600)), stale: stale, now: t0 + 20_000)
        XCTAssertEqual(describe(inside.fetched(.failure(OriginFailure(status: 502, reason: "connect_failed")), now: t0 + 20_000)),
                       ["complete failed 502", "reply v1 [CacheGateway; fwd=stale; fwd-status=502; detail=stale-if-error] age"])

        var after = leading(settings(sie: .seconds(600)), stale: stale, now: t0 + 700_000)
        XCTAssertEqual(describe(after.fetched(.failure(OriginFailure(status: 502, reason: "connect_failed")), now: t0 + 700_000)),
                       ["complete failed 502", "reply 502 [CacheGateway; fwd=miss; detail=connect_failed]"])
    }

    func testAnErrorStatusCountsAsFailureOnlyWhenAStaleEntryCanStandIn() {
        let stale = entry(storedAt: t0, sie: 600_000)
        var m = leading(settings(sie: .seconds(600)), stale: stale, now: t0 + 20_000)
        XCTAssertEqual(describe(m.fetched(ok("oops", status: 503), now: t0 + 20_000)),
                       ["complete failed 503", "reply v1 [CacheGateway; fwd=stale; fwd-status=503; detail=stale-if-error] age"])
    }

    func testA304RenewsTheStoredEntryWithoutItsBody() {
        let stale = entry(storedAt: t0, headers: [("ETag", "\"v1\""), ("X-Version", "1")])
        var m = leading(settings(keep: .seconds(3600)), stale: stale, now: t0 + 60_000)
        let actions = m.fetched(ok("", status: 304, [("ETag", "\"v1\""), ("X-Version", "2"), ("Content-Length", "0")]), now: t0 + 60_000)
        XCTAssertEqual(describe(actions), ["complete shared v1 hold", "store ttl=3610000"])
        guard case .store(let renewed, _, _) = actions[1] else { return XCTFail() }
        XCTAssertEqual(renewed.headers["X-Version"], "2", "the 304's headers replace the stored ones")
        XCTAssertNil(renewed.headers["Content-Length"])
        XCTAssertEqual(renewed.storedAt, t0 + 60_000)
        XCTAssertEqual(renewed.expiresAt, t0 + 70_000)
        XCTAssertEqual(describe(m.storeCompleted(ok: true, now: t0 + 60_010)),
                       ["release after=1000", "reply v1 [CacheGateway; fwd=stale; fwd-status=304; stored]"])
    }

    func testAnAnswerVaryingOnAnAllowedHeaderIsStoredAsAVariant() {
        var m = leading()
        XCTAssertEqual(describe(m.fetched(ok("gz", [("Vary", "Accept-Encoding, Accept-Language")]), now: t0)), [
            "complete shared gz vary hold", "store ttl=10000 variant accept-encoding,accept-language",
        ])
        var cookie = leading()
        XCTAssertEqual(describe(cookie.fetched(ok("c", [("Vary", "Cookie")]), now: t0)).last,
                       "reply c [CacheGateway; fwd=miss; detail=not-stored-vary]", "credentials on a public route: never stored")
        var perUser = leading(routeClass: .perUser)
        XCTAssertEqual(describe(perUser.fetched(ok("mine", [("Vary", "Accept-Encoding")]), now: t0)).last,
                       "store ttl=10000 variant accept-encoding", "per_user answers are stored per variant too")
    }

    func testAMarkerSendsTheLookupToTheVariantOnce() {
        var m = machine()
        _ = m.start(local: nil, now: t0)
        let marker = VaryMarker(names: ["accept-encoding"])
        let actions = describe(m.lookedUp(.marker(marker), uncacheable: false, now: t0))
        XCTAssertEqual(actions, ["lookup-variant 15:accept-encoding7:\u{1}absent"], "the fill sends no Accept-Encoding")
        XCTAssertEqual(m.state, .lookingUp)
        XCTAssertEqual(describe(m.lookedUp(.marker(marker), uncacheable: false, now: t0)), ["join max=10000"],
                       "a marker where the variant should be is a miss")
    }

    func testA304WithoutAStoredEntryIsAnOrdinaryAnswer() {
        var m = leading()
        XCTAssertEqual(describe(m.fetched(ok("", status: 304), now: t0)).first, "complete shared ")
    }

    // MARK: waiting

    private func waiting(_ settings: RouteCacheSettings? = nil, stale: CachedResponse? = nil, now: UInt64? = nil,
                         headers: [(String, String)] = []) -> ReadThrough {
        var m = machine(settings, headers: headers)
        _ = m.start(local: nil, now: now ?? t0)
        _ = m.lookedUp(stale.map { .entry($0) } ?? .missing, uncacheable: false, now: now ?? t0)
        _ = m.joined(.waiter, now: now ?? t0)
        return m
    }

    func testAWaiterGetsTheSharedAnswerOrFetchesItsOwn() {
        var shared = waiting()
        XCTAssertEqual(describe(shared.flightCompleted(.shared(entry(storedAt: t0), vary: nil), now: t0)),
                       ["reply v1 [CacheGateway; fwd=miss; collapsed]"])
        var refetch = waiting()
        XCTAssertEqual(describe(refetch.flightCompleted(.refetch, now: t0)), ["forward [CacheGateway; fwd=miss; detail=not-shareable]"])
    }

    func testAWaiterGetsAVariedAnswerOnlyIfItsRequestMatches() {
        let leaderHeaders = HTTPHeaders([("Authorization", "Bearer alice")])
        let answer = FlightOutcome.shared(entry(storedAt: t0, body: "alice's"), vary: VaryMatch(["authorization"], in: leaderHeaders))
        var alice = waiting(headers: [("Authorization", "Bearer alice")])
        XCTAssertEqual(describe(alice.flightCompleted(answer, now: t0)), ["reply alice's [CacheGateway; fwd=miss; collapsed]"])
        var bob = waiting(headers: [("Authorization", "Bearer bob")])
        XCTAssertEqual(describe(bob.flightCompleted(answer, now: t0)), ["forward [CacheGateway; fwd=miss; detail=not-shareable-vary]"])
        var anonymous = waiting()
        XCTAssertEqual(describe(anonymous.flightCompleted(answer, now: t0)).first, "forward [CacheGateway; fwd=miss; detail=not-shareable-vary]")
    }

    func testAFailedFlightGivesTheWaiterTheError() {
        var none = waiting()
        XCTAssertEqual(describe(none.flightCompleted(.failed(status: 502, message: "x"), now: t0)),
                       ["reply 502 [CacheGateway; fwd=miss; collapsed]"])
        // Past its stale_if_error window an entry does not stand in: the waiter waits and fails.
        var old = waiting(settings(sie: .seconds(600)), stale: entry(storedAt: t0, sie: 600_000), now: t0 + 700_000)
        XCTAssertEqual(describe(old.flightCompleted(.failed(status: 502, message: "x"), now: t0 + 700_000)),
                       ["reply 502 [CacheGateway; fwd=miss; collapsed]"])
    }

    func testAWaiterWithAnEntryThatMayStandInDoesNotWait() {
        var m = machine(settings(sie: .seconds(600)))
        _ = m.start(local: nil, now: t0 + 20_000)
        _ = m.lookedUp(.entry(entry(storedAt: t0, sie: 600_000)), uncacheable: false, now: t0 + 20_000)
        XCTAssertEqual(describe(m.joined(.waiter, now: t0 + 20_000)),
                       ["leave", "reply v1 [CacheGateway; fwd=stale; collapsed; detail=updating] age"])
        XCTAssertEqual(m.state, .done)
    }

    func testTheDeadlineGivesA504AndIsFinal() {
        var none = waiting()
        XCTAssertEqual(describe(none.deadlinePassed(now: t0 + 2_000)), ["reply 504 [CacheGateway; fwd=miss; collapsed; detail=max-wait]"])
        XCTAssertEqual(describe(none.flightCompleted(.refetch, now: t0 + 2_001)), [], "answered once")
    }

    func testAWakeUpAfterTheAnswerIsIgnored() {
        var m = waiting()
        _ = m.flightCompleted(.shared(entry(storedAt: t0), vary: nil), now: t0)
        XCTAssertEqual(describe(m.deadlinePassed(now: t0 + 5_000)), [])
    }

    // MARK: entries

    func testFreshnessOfAnEntry() {
        let e = entry(storedAt: t0, swr: 5_000, sie: 60_000)
        XCTAssertEqual(e.freshness(at: t0 + 9_999), .fresh)
        XCTAssertEqual(e.freshness(at: t0 + 10_000), .staleWhileRevalidate)
        XCTAssertEqual(e.freshness(at: t0 + 15_000), .stale)
        XCTAssertTrue(e.usableOnError(at: t0 + 69_999))
        XCTAssertFalse(e.usableOnError(at: t0 + 70_000))
        XCTAssertEqual(e.age(at: t0 + 12_345), 12)
    }
}
