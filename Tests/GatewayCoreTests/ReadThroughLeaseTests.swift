import GatewayHTTP
import XCTest

@testable import GatewayCore

/// Cross-instance coalescing in the read-through state machine (`cache.cross_instance`): the
/// local leader's lease, the wait for another instance's fill, and every way that wait ends.
/// No sockets, no Redis, no clock (times are given).
final class ReadThroughLeaseTests: XCTestCase {
    private let t0: UInt64 = 1_764_576_000_000
    private let lease = ReadThrough.Lease(ttlMilliseconds: 11_000)

    private func machine(sie: Duration = .zero, lease: ReadThrough.Lease? = nil) -> ReadThrough {
        let settings = RouteCacheSettings(ttl: .seconds(10), maxWait: .seconds(2), freshness: FreshnessSettings(staleIfError: sie))
        return ReadThrough(settings: settings, routeClass: .public,
                           fill: OriginRequest(pathAndQuery: "/catalog/a", headers: [("Host", "backend")]),
                           requestHeaders: HTTPHeaders([]), lease: lease ?? self.lease)
    }

    private func entry(storedAt: UInt64, sie: UInt64 = 0, body: String = "v1") -> CachedResponse {
        CachedResponse(status: 200, headers: HTTPHeaders([]), body: Array(body.utf8)[...], storedAt: storedAt,
                       expiresAt: storedAt + 10_000, staleWhileRevalidateUntil: storedAt + 10_000,
                       staleIfErrorUntil: storedAt + 10_000 + sie)
    }

    private func ok(_ body: String = "v2", _ headers: [(String, String)] = []) -> Result<OriginResponse, OriginFailure> {
        .success(OriginResponse(status: 200, headers: HTTPHeaders(headers), body: Array(body.utf8), isCompleteByFraming: true))
    }

    /// A local leader past its lookup miss.
    private func leader(sie: Duration = .zero, stale: CachedResponse? = nil, now: UInt64? = nil) -> ReadThrough {
        var m = machine(sie: sie)
        _ = m.start(local: nil, now: now ?? t0)
        _ = m.lookedUp(stale.map { .entry($0) } ?? .missing, uncacheable: false, now: now ?? t0)
        return m
    }

    /// A local leader that found the lease held elsewhere and registered for the announcement.
    private func awaiting(remaining: Int = 500, sie: Duration = .zero, stale: CachedResponse? = nil, now: UInt64? = nil) -> ReadThrough {
        var m = leader(sie: sie, stale: stale, now: now)
        _ = m.joined(.leader, now: now ?? t0)
        _ = m.leaseResult(.heldElsewhere(remainingMilliseconds: remaining), now: now ?? t0)
        _ = m.rechecked(.missing, now: now ?? t0)
        return m
    }

    // MARK: The holder

    func testTheLocalLeaderAsksForTheLeaseBeforeFetching() {
        var m = leader()
        XCTAssertEqual(m.joined(.leader, now: t0).transcript, ["await-remote", "lease ttl=11000"],
                       "registered first: an announcement published after the acquire cannot be missed")
        XCTAssertEqual(m.state, .leasing)
    }

    func testLocalWaitersAndRefreshesNeverAskForTheLease() {
        var waiter = leader()
        XCTAssertEqual(waiter.joined(.waiter, now: t0).transcript, ["deadline 2000"])
        var refresh = machine()
        _ = refresh.start(local: nil, now: t0)
        let stale = CachedResponse(status: 200, headers: HTTPHeaders([]), body: Array("old".utf8)[...], storedAt: t0,
                                   expiresAt: t0 + 10, staleWhileRevalidateUntil: t0 + 60_000, staleIfErrorUntil: t0 + 10)
        _ = refresh.lookedUp(.entry(stale), uncacheable: false, now: t0 + 100)
        XCTAssertEqual(refresh.refreshJoined(leader: true).transcript, ["fetch"], "a background refresh is one per instance, behind a stale answer")
    }

    func testTheHolderStoresThenAnnouncesStored() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        XCTAssertEqual(m.leaseResult(.acquired, now: t0).transcript, ["stop-remote", "fetch"])
        XCTAssertEqual(m.fetched(ok(), now: t0).transcript, ["complete shared v2 hold", "store ttl=10000"],
                       "nothing is announced before Redis has the entry")
        XCTAssertEqual(m.storeCompleted(ok: true, now: t0).transcript,
                       ["release after=1000", "announce stored k", "reply v2 [CacheGateway; fwd=miss; stored]"])
    }

    func testAFailedStoreIsAnnouncedNotStored() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        _ = m.leaseResult(.acquired, now: t0)
        _ = m.fetched(ok(), now: t0)
        XCTAssertEqual(m.storeCompleted(ok: false, now: t0).transcript,
                       ["release after=0", "announce not-stored k", "reply v2 [CacheGateway; fwd=miss; detail=store-failed]"])
    }

    func testAPersonalAnswerIsAnnouncedNotStoredAndNeverHandedOn() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        _ = m.leaseResult(.acquired, now: t0)
        XCTAssertEqual(m.fetched(ok("mine", [("Set-Cookie", "a=1")]), now: t0).transcript, [
            "complete refetch", "announce not-stored k", "uncacheable 30000",
            "reply origin 200 [CacheGateway; fwd=miss; detail=not-stored-set-cookie]",
        ])
    }

    func testAFailedFetchIsAnnouncedAtOnce() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        _ = m.leaseResult(.acquired, now: t0)
        XCTAssertEqual(m.fetched(.failure(OriginFailure(status: 504, reason: "timeout")), now: t0).transcript,
                       ["complete failed 504", "announce failed 504 k", "reply 504 [CacheGateway; fwd=miss; detail=timeout]"])
    }

    func testWithoutTheLeaseTheLeaderFetchesAndAnnouncesNothing() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        XCTAssertEqual(m.leaseResult(.unavailable, now: t0).transcript, ["stop-remote", "fetch"])
        _ = m.fetched(ok(), now: t0)
        XCTAssertEqual(m.storeCompleted(ok: true, now: t0).transcript, ["release after=1000", "reply v2 [CacheGateway; fwd=miss; stored]"])
    }

    // MARK: Waiting for another instance

    func testALeaseHeldElsewhereRegistersThenReadsTheKeyAgain() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        XCTAssertEqual(m.leaseResult(.heldElsewhere(remainingMilliseconds: 500), now: t0).transcript,
                       ["recheck", "lease-retry 501"], "registered when the lease was asked for")
        XCTAssertEqual(m.rechecked(.missing, now: t0 + 1).transcript, [], "no fill yet: wait, without polling")
        XCTAssertEqual(m.state, .awaitingRemote(rechecking: false))
    }

    func testAFillThatLandedBeforeTheRegistrationIsFoundByTheRecheck() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        _ = m.leaseResult(.heldElsewhere(remainingMilliseconds: 500), now: t0)
        XCTAssertEqual(m.rechecked(.entry(entry(storedAt: t0)), now: t0 + 1).transcript, [
            "stop-remote", "complete shared v1 hold", "release after=1000",
            "reply v1 [CacheGateway; fwd=miss; collapsed; detail=remote-fill] age",
        ])
        XCTAssertEqual(m.state, .done)
    }

    func testStoredElsewhereIsReadFromRedisAndSharedLocally() {
        var m = awaiting()
        XCTAssertEqual(m.remoteFillAnnounced(.stored, now: t0 + 100).transcript, ["recheck"])
        XCTAssertEqual(m.rechecked(.entry(entry(storedAt: t0 + 100, body: "theirs")), now: t0 + 101).transcript, [
            "stop-remote", "complete shared theirs hold", "release after=1000",
            "reply theirs [CacheGateway; fwd=miss; collapsed; detail=remote-fill] age",
        ])
    }

    func testAStaleEntryOnTheRecheckIsNoFill() {
        let old = entry(storedAt: t0 - 20_000, sie: 60_000)
        var m = awaiting(sie: .seconds(60), stale: old)
        XCTAssertEqual(m.state, .awaitingRemote(rechecking: false))
        _ = m.remoteFillAnnounced(.unknown, now: t0 + 5)
        XCTAssertEqual(m.rechecked(.entry(old), now: t0 + 6).transcript, ["lease ttl=11000"],
                       "announcements may have been lost and the key still holds the old entry: try the lease")
    }

    func testAFailedFillElsewhereAnswersAtOnce() {
        var m = awaiting()
        XCTAssertEqual(m.remoteFillAnnounced(.failed(status: 502), now: t0 + 100).transcript,
                       ["stop-remote", "complete failed 502", "reply 502 [CacheGateway; fwd=miss; detail=remote-fill-failed]"])
        XCTAssertEqual(m.state, .done)
    }

    func testAFailedFillElsewhereServesOurOwnStaleEntry() {
        let old = entry(storedAt: t0 - 20_000, sie: 60_000)
        var m = awaiting(sie: .seconds(60), stale: old)
        XCTAssertEqual(m.remoteFillAnnounced(.failed(status: 503), now: t0 + 100).transcript,
                       ["stop-remote", "complete failed 503", "reply v1 [CacheGateway; fwd=stale; fwd-status=503; detail=stale-if-error] age"])
    }

    func testNotStoredElsewhereFetchesHereWithoutTheLease() {
        var m = awaiting()
        XCTAssertEqual(m.remoteFillAnnounced(.notStored, now: t0 + 100).transcript, ["stop-remote", "fetch"])
        _ = m.fetched(ok(), now: t0 + 200)
        XCTAssertEqual(m.storeCompleted(ok: true, now: t0 + 200).transcript, ["release after=1000", "reply v2 [CacheGateway; fwd=miss; stored]"],
                       "only the holder announces")
    }

    func testAnAnnouncementDuringARecheckIsActedOnAfterIt() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        _ = m.leaseResult(.heldElsewhere(remainingMilliseconds: 500), now: t0)
        XCTAssertEqual(m.remoteFillAnnounced(.stored, now: t0 + 1).transcript, [], "the read out may predate the fill")
        XCTAssertEqual(m.rechecked(.missing, now: t0 + 2).transcript, ["recheck"])
        XCTAssertEqual(m.rechecked(.missing, now: t0 + 3).transcript, ["lease ttl=11000"],
                       "announced stored and gone (purged): take the lease rather than wait")
    }

    func testAVaryingFillOrAFailingRedisFetchesHere() {
        var marker = awaiting()
        _ = marker.remoteFillAnnounced(.stored, now: t0 + 1)
        XCTAssertEqual(marker.rechecked(.marker(VaryMarker(names: ["accept"])), now: t0 + 2).transcript, ["stop-remote", "fetch"])
        var failing = awaiting()
        _ = failing.remoteFillAnnounced(.stored, now: t0 + 1)
        XCTAssertEqual(failing.rechecked(.failed(reason: "timeout"), now: t0 + 2).transcript, ["stop-remote", "fetch"])
    }

    // MARK: The holder died

    func testTheLeaseExpiringIsTakenOver() {
        var m = awaiting(remaining: 500)
        XCTAssertEqual(m.leaseRetryDue(now: t0 + 501).transcript, ["recheck"])
        XCTAssertEqual(m.rechecked(.missing, now: t0 + 502).transcript, ["lease ttl=11000"])
        XCTAssertEqual(m.leaseResult(.acquired, now: t0 + 503).transcript, ["stop-remote", "fetch"])
        _ = m.fetched(ok(), now: t0 + 600)
        XCTAssertEqual(m.storeCompleted(ok: true, now: t0 + 600).transcript,
                       ["release after=1000", "announce stored k", "reply v2 [CacheGateway; fwd=miss; stored]"])
    }

    func testAnotherInstanceTookItOverFirst() {
        var m = awaiting(remaining: 500)
        _ = m.leaseRetryDue(now: t0 + 501)
        _ = m.rechecked(.missing, now: t0 + 502)
        XCTAssertEqual(m.leaseResult(.heldElsewhere(remainingMilliseconds: 11_000), now: t0 + 503).transcript,
                       ["recheck", "lease-retry 1497"], "registered already; the retry never passes max_wait")
    }

    func testALeaseThatJustWentIsTriedAgainAtOnce() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        XCTAssertEqual(m.leaseResult(.heldElsewhere(remainingMilliseconds: -2), now: t0).transcript,
                       ["recheck", "lease-retry 1"])
    }

    func testNoWaitGoesPastMaxWait() {
        var m = awaiting(remaining: 10_000)
        XCTAssertEqual(m.leaseRetryDue(now: t0 + 2000).transcript, [
            "stop-remote", "complete failed 504", "reply 504 [CacheGateway; fwd=miss; collapsed; detail=max-wait]",
        ])
        XCTAssertEqual(m.state, .done)
        XCTAssertEqual(m.remoteFillAnnounced(.stored, now: t0 + 2001).transcript, [], "answered already")
        XCTAssertEqual(m.leaseRetryDue(now: t0 + 2002).transcript, [])
    }

    func testAtMaxWaitAStaleEntryInsideItsErrorWindowStandsIn() {
        let old = entry(storedAt: t0 - 10_500, sie: 60_000)
        var m = awaiting(remaining: 10_000, sie: .seconds(60), stale: old)
        XCTAssertEqual(m.leaseRetryDue(now: t0 + 2000).transcript, [
            "stop-remote", "complete failed 504", "reply v1 [CacheGateway; fwd=stale; collapsed; detail=max-wait] age",
        ])
    }

    /// The race a CI run found: another loop's (or instance's) holder fails and announces while
    /// this leader's acquire is out. The announcement reaches the registration made before the
    /// acquire, and is acted on once the lease's answer and the recheck are back.
    func testAFailureAnnouncedWhileTheLeaseIsAskedForIsNotMissed() {
        let old = entry(storedAt: t0 - 10_500, sie: 60_000)
        var m = leader(sie: .seconds(60), stale: old)
        XCTAssertEqual(m.joined(.leader, now: t0).transcript, ["await-remote", "lease ttl=11000"])
        XCTAssertEqual(m.remoteFillAnnounced(.failed(status: 502), now: t0 + 1).transcript, [], "kept until the lease answers")
        XCTAssertEqual(m.leaseResult(.heldElsewhere(remainingMilliseconds: 6000), now: t0 + 2).transcript, ["recheck", "lease-retry 2000"])
        XCTAssertEqual(m.rechecked(.entry(old), now: t0 + 3).transcript,
                       ["stop-remote", "complete failed 502", "reply v1 [CacheGateway; fwd=stale; fwd-status=502; detail=stale-if-error] age"],
                       "at once, not at max_wait")
    }

    func testAnAnnouncementBeforeTheLeaseWasTakenIsOfAnEarlierFill() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        _ = m.remoteFillAnnounced(.failed(status: 502), now: t0 + 1)
        XCTAssertEqual(m.leaseResult(.acquired, now: t0 + 2).transcript, ["stop-remote", "fetch"])
        XCTAssertEqual(m.fetched(ok(), now: t0 + 3).transcript, ["complete shared v2 hold", "store ttl=10000"])
    }

    func testARetryDuringARecheckMakesItTakeTheLease() {
        var m = leader()
        _ = m.joined(.leader, now: t0)
        _ = m.leaseResult(.heldElsewhere(remainingMilliseconds: 5), now: t0)
        XCTAssertEqual(m.leaseRetryDue(now: t0 + 6).transcript, [])
        XCTAssertEqual(m.rechecked(.missing, now: t0 + 7).transcript, ["lease ttl=11000"])
    }

    // MARK: Announcements

    func testAnnouncementsReadBackAndBadOnesAreIgnored() {
        let key = "gw:e:catalog:ab12"
        for fill in [RemoteFill.stored, .notStored, .failed(status: 504), .unknown] {
            let parsed = RemoteFill.parse(Array(fill.message(key: key).utf8))
            XCTAssertEqual(parsed?.key, key)
            XCTAssertEqual(parsed?.fill, fill)
        }
        for bad in ["", "stored", "stored ", "failed 504", "failed abc k", "failed 999 k", "done k", "\u{FF}"] {
            XCTAssertNil(RemoteFill.parse(Array(bad.utf8)), bad)
        }
        XCTAssertNil(RemoteFill.parse([0xFF, 0x20, 0x6B]), "not UTF-8")
    }
}
