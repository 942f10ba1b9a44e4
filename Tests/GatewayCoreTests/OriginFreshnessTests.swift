import GatewayHTTP
import XCTest

@testable import GatewayCore

/// `ttl: origin`: every rule of ``OriginFreshness``, ``ResponseDirectives`` (CDN-Cache-Control
/// first) and ``StructuredFieldDictionary``, plus CDN-Cache-Control in forced-TTL mode.
final class OriginFreshnessTests: XCTestCase {
    /// 2025-12-01 08:00:00 GMT.
    private let now: UInt64 = 1_764_576_000_000
    private let nowDate = "Mon, 01 Dec 2025 08:00:00 GMT"

    private func origin(
        statuses: Set<Int> = [200], heuristic: Bool = false, maxTTL: Duration = .seconds(86_400),
        swr: Duration = .zero, sie: Duration = .zero, keep: Duration = .zero
    ) -> RouteCacheSettings {
        RouteCacheSettings(
            mode: .origin(OriginModeSettings(statuses: statuses, heuristic: heuristic)), ttl: maxTTL,
            freshness: FreshnessSettings(staleWhileRevalidate: swr, staleIfError: sie, keep: keep))
    }

    private func evaluate(
        _ headers: [(String, String)], status: Int = 200, authorization: Bool = false,
        _ settings: RouteCacheSettings? = nil, routeClass: RouteClass = .public
    ) -> OriginFreshness.Decision {
        OriginFreshness.evaluate(status: status, headers: HTTPHeaders(headers), requestHasAuthorization: authorization,
                                 now: now, settings: settings ?? origin(), routeClass: routeClass)
    }

    private func lifetime(_ headers: [(String, String)], _ settings: RouteCacheSettings? = nil,
                          file: StaticString = #filePath, line: UInt = #line) -> OriginFreshness.Lifetime? {
        guard case .storable(let l) = evaluate(headers, settings) else {
            XCTFail("not storable: \(evaluate(headers, settings))", file: file, line: line)
            return nil
        }
        return l
    }

    // MARK: Freshness lifetime

    func testSMaxAgeBeatsMaxAgeBeatsExpires() {
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=60, s-maxage=20")])?.freshnessLifetime, 20_000)
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=60"), ("Expires", "Mon, 01 Dec 2025 09:00:00 GMT")])?.freshnessLifetime, 60_000)
        XCTAssertEqual(lifetime([("Date", nowDate), ("Expires", "Mon, 01 Dec 2025 08:05:00 GMT")])?.remaining, 300_000)
    }

    func testExpiresCountsFromDateAndWithoutDateFromArrival() {
        // Date says the origin's clock is 1 min behind: Expires − Date is the lifetime, and the
        // apparent age (now − Date = 60 s) comes off it.
        let l = lifetime([("Date", "Mon, 01 Dec 2025 07:59:00 GMT"), ("Expires", "Mon, 01 Dec 2025 08:04:00 GMT")])
        XCTAssertEqual(l?.freshnessLifetime, 300_000)
        XCTAssertEqual(l?.initialAge, 60_000)
        XCTAssertEqual(l?.remaining, 240_000)
        XCTAssertEqual(lifetime([("Expires", "Mon, 01 Dec 2025 08:01:00 GMT")])?.remaining, 60_000)
    }

    func testInvalidMaxAgeOrExpiresMeansStale() {
        for headers in [
            [("Cache-Control", "max-age=abc")], [("Cache-Control", "max-age=-5")], [("Cache-Control", "max-age=10, max-age=20")],
            [("Expires", "0")], [("Expires", "tomorrow")],
        ] {
            XCTAssertEqual(evaluate(headers), .notStorable(reason: "stale"), "\(headers)")
            // With a validator it is kept, stale, so that the next fetch is conditional.
            guard case .storable(let l) = evaluate(headers + [("ETag", "\"a\"")]) else { return XCTFail("\(headers)") }
            XCTAssertEqual(l.remaining, 0)
        }
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=10, max-age=10")])?.freshnessLifetime, 10_000, "the same value twice is fine")
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=99999999999")])?.freshnessLifetime, 86_400_000, "capped by max_ttl")
    }

    func testNoExplicitFreshnessIsNotStoredUnlessHeuristic() {
        let modified = [("Date", nowDate), ("Last-Modified", "Sat, 01 Nov 2025 08:00:00 GMT")]
        XCTAssertEqual(evaluate(modified), .notStorable(reason: "no-freshness"))
        XCTAssertEqual(evaluate([]), .notStorable(reason: "no-freshness"))
        // 10% of 30 days = 3 days, capped by max_ttl (1 h here).
        let l = lifetime(modified, origin(heuristic: true, maxTTL: .seconds(3600)))
        XCTAssertEqual(l?.freshnessLifetime, 3_600_000)
        XCTAssertEqual(l?.heuristic, true)
        XCTAssertEqual(lifetime(modified, origin(heuristic: true, maxTTL: .seconds(7 * 86_400)))?.freshnessLifetime, 3 * 86_400_000)
        XCTAssertEqual(evaluate([], origin(heuristic: true)), .notStorable(reason: "no-freshness"), "no Last-Modified, no heuristic")
        XCTAssertEqual(evaluate(modified, status: 302, origin(statuses: [200, 302], heuristic: true)), .notStorable(reason: "no-freshness"),
                       "302 is not heuristically cacheable")
    }

    // MARK: Age

    func testAgeIsTheLargerOfTheAgeFieldAndTheApparentAge() {
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=300"), ("Age", "100")])?.initialAge, 100_000)
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=300"), ("Age", "100")])?.remaining, 200_000)
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=300"), ("Age", "10"), ("Date", "Mon, 01 Dec 2025 07:59:00 GMT")])?.initialAge, 60_000)
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=300"), ("Age", "junk")])?.initialAge, 0, "an invalid Age is ignored")
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=300"), ("Date", "Mon, 01 Dec 2025 08:01:00 GMT")])?.initialAge, 0,
                       "a Date in the future is no negative age")
        XCTAssertEqual(evaluate([("Cache-Control", "max-age=60"), ("Age", "100")]), .notStorable(reason: "stale"))
    }

    func testStoredAtIsSetBackByTheInitialAge() {
        let w = lifetime([("Cache-Control", "max-age=300"), ("Age", "100")])!.windows(now: now, keep: .zero, ceiling: .seconds(86_400))
        XCTAssertEqual(w.storedAt, now - 100_000)
        XCTAssertEqual(w.expiresAt, now + 200_000)
        XCTAssertEqual(w.redisTTL, 200_000)
        let entry = CachedResponse(status: 200, headers: HTTPHeaders(), body: [], storedAt: w.storedAt, expiresAt: w.expiresAt)
        XCTAssertEqual(entry.age(at: now + 5_000), 105, "Age goes on from the origin's")
    }

    // MARK: Storability

    func testNoStorePrivateAndStatus() {
        XCTAssertEqual(evaluate([("Cache-Control", "max-age=60, no-store")]), .notStorable(reason: "no-store"))
        XCTAssertEqual(evaluate([("Cache-Control", "max-age=60, private")]), .notStorable(reason: "private"))
        XCTAssertEqual(evaluate([("Cache-Control", "max-age=60, private=\"x-user, set-cookie\"")]), .notStorable(reason: "private"))
    }

    func testPrivateIsStoredOnPerUserRoutes() {
        guard case .storable = evaluate([("Cache-Control", "private, max-age=60")], routeClass: .perUser) else { return XCTFail() }
    }

    func testOnlyListedStatusesAreStored() {
        XCTAssertEqual(evaluate([("Cache-Control", "max-age=60")], status: 404), .notStorable(reason: "status"))
        guard case .storable = evaluate([("Cache-Control", "max-age=60")], status: 404, origin(statuses: [404])) else { return XCTFail() }
        XCTAssertEqual(evaluate([("Cache-Control", "max-age=60")], status: 500, origin(statuses: [404])), .notStorable(reason: "status"))
    }

    func testAuthorizedRequestsNeedPublicSMaxAgeOrMustRevalidate() {
        XCTAssertEqual(evaluate([("Cache-Control", "max-age=60")], authorization: true), .notStorable(reason: "authorization"))
        for cc in ["public, max-age=60", "s-maxage=60", "max-age=60, must-revalidate"] {
            guard case .storable = evaluate([("Cache-Control", cc)], authorization: true) else { return XCTFail(cc) }
        }
        guard case .storable = evaluate([("Cache-Control", "max-age=60")], authorization: true, routeClass: .perUser) else {
            return XCTFail("per_user entries are never shared")
        }
    }

    func testNoCacheIsStoredWithoutFreshnessAndNeverServedStale() {
        let l = lifetime([("Cache-Control", "no-cache, max-age=60, stale-if-error=60"), ("ETag", "\"v1\"")], origin(swr: .seconds(30), sie: .seconds(30)))
        XCTAssertEqual(l?.noCache, true)
        XCTAssertEqual(l?.remaining, 0)
        XCTAssertEqual(l?.staleWhileRevalidate, 0)
        XCTAssertEqual(l?.staleIfError, 0)
        // Kept for its validators: `keep`, else max_ttl.
        XCTAssertEqual(l?.windows(now: now, keep: .zero, ceiling: .seconds(600)).redisTTL, 600_000)
        XCTAssertEqual(l?.windows(now: now, keep: .seconds(5), ceiling: .seconds(600)).redisTTL, 5_000)
        XCTAssertEqual(l?.windows(now: now, keep: .zero, ceiling: .seconds(600)).expiresAt, now, "stale at once: every reuse revalidates")
        XCTAssertEqual(evaluate([("Cache-Control", "no-cache")]), .notStorable(reason: "no-cache"), "without a validator there is nothing to revalidate")
    }

    // MARK: Stale windows

    func testStaleDirectivesAreCappedByTheRoute() {
        let route = origin(swr: .seconds(30), sie: .seconds(600))
        let l = lifetime([("Cache-Control", "max-age=60, stale-while-revalidate=120, stale-if-error=60")], route)
        XCTAssertEqual(l?.staleWhileRevalidate, 30_000)
        XCTAssertEqual(l?.staleIfError, 60_000)
        let w = l!.windows(now: now, keep: .zero, ceiling: .seconds(86_400))
        XCTAssertEqual(w.staleWhileRevalidateUntil, now + 90_000)
        XCTAssertEqual(w.staleIfErrorUntil, now + 120_000)
        XCTAssertEqual(w.redisTTL, 120_000)
    }

    func testWithoutDirectivesTheRouteWindowsApply() {
        let l = lifetime([("Cache-Control", "max-age=60")], origin(swr: .seconds(30), sie: .seconds(600)))
        XCTAssertEqual(l?.staleWhileRevalidate, 30_000)
        XCTAssertEqual(l?.staleIfError, 600_000)
        // A route window of 0 is off, whatever the origin says.
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=60, stale-while-revalidate=30")])?.staleWhileRevalidate, 0)
    }

    func testMustRevalidateForbidsStale() {
        let route = origin(swr: .seconds(30), sie: .seconds(600))
        for cc in ["max-age=60, must-revalidate, stale-if-error=60", "max-age=60, proxy-revalidate"] {
            let l = lifetime([("Cache-Control", cc)], route)
            XCTAssertEqual(l?.mustRevalidate, true, cc)
            XCTAssertEqual(l?.staleWhileRevalidate, 0, cc)
            XCTAssertEqual(l?.staleIfError, 0, cc)
        }
    }

    func testSMaxAgeImpliesProxyRevalidateButExplicitWindowsStillApply() {
        let route = origin(swr: .seconds(30), sie: .seconds(600))
        XCTAssertEqual(lifetime([("Cache-Control", "s-maxage=60")], route)?.staleIfError, 0)
        XCTAssertEqual(lifetime([("Cache-Control", "s-maxage=60, stale-while-revalidate=10")], route)?.staleWhileRevalidate, 10_000)
    }

    func testAStaleOnArrivalResponseIsKeptForItsWindow() {
        // max-age=0 with stale-while-revalidate: served at once while refreshing, RFC 5861 §3.
        let l = lifetime([("Cache-Control", "max-age=0, stale-while-revalidate=30")], origin(swr: .seconds(60)))
        XCTAssertEqual(l?.remaining, 0)
        XCTAssertEqual(l?.staleWhileRevalidate, 30_000)
    }

    // MARK: CDN-Cache-Control

    func testCDNCacheControlTakesPrecedenceOverCacheControlAndExpires() {
        XCTAssertEqual(lifetime([("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=30")])?.freshnessLifetime, 30_000)
        XCTAssertEqual(lifetime([("Cache-Control", "max-age=600"), ("CDN-Cache-Control", "max-age=30"),
                                 ("Expires", "Mon, 01 Dec 2025 09:00:00 GMT")])?.freshnessLifetime, 30_000)
        XCTAssertEqual(evaluate([("Cache-Control", "max-age=600"), ("CDN-Cache-Control", "private")]), .notStorable(reason: "private"))
        XCTAssertEqual(evaluate([("Cache-Control", "max-age=600"), ("CDN-Cache-Control", "no-store")]), .notStorable(reason: "no-store"))
        XCTAssertEqual(evaluate([("Expires", "Mon, 01 Dec 2025 09:00:00 GMT"), ("CDN-Cache-Control", "public")]),
                       .notStorable(reason: "no-freshness"), "Expires is ignored too (RFC 9213 §2.2)")
    }

    func testMalformedOrEmptyCDNCacheControlFallsBackToCacheControl() {
        for bad in ["max-age=30,", "Max-Age=30", "max-age=30; ;", "", "max-age=\"30"] {
            XCTAssertEqual(lifetime([("Cache-Control", "max-age=600"), ("CDN-Cache-Control", bad)])?.freshnessLifetime, 600_000, bad)
        }
    }

    func testCDNDirectivesOfTheWrongTypeAreNotConsumed() {
        let d = ResponseDirectives(HTTPHeaders([("CDN-Cache-Control", "max-age=1.5, s-maxage=\"9\", no-store=?0, private=?1, stale-if-error=60;x=1")]))
        XCTAssertEqual(d.source, .cdnCacheControl)
        XCTAssertNil(d.maxAge)
        XCTAssertNil(d.sMaxAge)
        XCTAssertFalse(d.noStore)
        XCTAssertTrue(d.isPrivate)
        XCTAssertEqual(d.staleIfError, 60)
        // Several lines are one dictionary; a later duplicate wins.
        let lines = ResponseDirectives(HTTPHeaders([("CDN-Cache-Control", "max-age=10"), ("CDN-Cache-Control", "max-age=20, must-revalidate")]))
        XCTAssertEqual(lines.maxAge, 20)
        XCTAssertTrue(lines.mustRevalidate)
    }

    func testForcedModeObeysCDNCacheControl() {
        let forced = RouteCacheSettings(ttl: .seconds(300))
        func decide(_ headers: [(String, String)]) -> StoreDecision {
            CachePolicy.decide(status: 200, headers: HTTPHeaders(headers), bodyCount: 1, completeByFraming: true, routeClass: .public, settings: forced)
        }
        XCTAssertEqual(decide([("CDN-Cache-Control", "no-store")]), .doNotShare(reason: "no-store"))
        XCTAssertEqual(decide([("CDN-Cache-Control", "private"), ("Cache-Control", "public")]), .doNotShare(reason: "private"))
        XCTAssertEqual(decide([("CDN-Cache-Control", "max-age=20"), ("Cache-Control", "max-age=100")]), .store(ttl: .seconds(20)))
        XCTAssertEqual(decide([("CDN-Cache-Control", "max-age=20"), ("Cache-Control", "no-store")]), .store(ttl: .seconds(20)))
        XCTAssertEqual(decide([("CDN-Cache-Control", "max-age=20,"), ("Cache-Control", "max-age=100")]), .store(ttl: .seconds(100)), "malformed: ignored")
        // Without any freshness information forced mode stores for the full TTL: its point.
        XCTAssertEqual(decide([]), .store(ttl: .seconds(300)))
        // An invalid max-age means stale; Age comes off the origin's max-age.
        XCTAssertEqual(decide([("Cache-Control", "max-age=soon")]), .shareOnly(reason: "max-age=0"))
        XCTAssertEqual(decide([("Cache-Control", "max-age=100"), ("Age", "40")]), .store(ttl: .seconds(60)))
        XCTAssertEqual(decide([("Cache-Control", "max-age=100"), ("Age", "100")]), .shareOnly(reason: "stale"))
    }

    func testForcedModeKeepsTheOriginsAgeButCountsTheTTLFromTheStore() {
        let plan = CachePolicy.plan(status: 200, headers: HTTPHeaders([("Age", "100"), ("Date", "Mon, 01 Dec 2025 07:00:00 GMT")]),
                                    bodyCount: 1, completeByFraming: true, requestHasAuthorization: false, routeClass: .public,
                                    settings: RouteCacheSettings(ttl: .seconds(300)), now: now)
        XCTAssertEqual(plan.decision, .store(ttl: .seconds(300)))
        XCTAssertEqual(plan.windows.storedAt, now - 100_000, "the Age field only: forced mode does not trust the origin's clock")
        XCTAssertEqual(plan.windows.expiresAt, now + 300_000)
    }

    func testOriginModeThroughThePlan() {
        func plan(_ headers: [(String, String)], framed: Bool = true, body: Int = 1) -> StorePlan {
            CachePolicy.plan(status: 200, headers: HTTPHeaders(headers), bodyCount: body, completeByFraming: framed,
                             requestHasAuthorization: false, routeClass: .public, settings: origin(), now: now)
        }
        XCTAssertEqual(plan([("Cache-Control", "max-age=1")]).decision, .store(ttl: .seconds(1)))
        XCTAssertEqual(plan([("Cache-Control", "max-age=1")]).windows.expiresAt, now + 1000)
        XCTAssertEqual(plan([]).decision, .shareOnly(reason: "no-freshness"))
        XCTAssertEqual(plan([("Cache-Control", "max-age=1"), ("Set-Cookie", "a=b")]).decision, .doNotShare(reason: "set-cookie"))
        XCTAssertEqual(plan([("Cache-Control", "max-age=1")], framed: false).decision, .shareOnly(reason: "unframed"))
        XCTAssertEqual(plan([("CDN-Cache-Control", "private"), ("Cache-Control", "max-age=1")]).decision, .doNotShare(reason: "private"))
    }

    func testRenewalFollowsTheUpdatedHeaders() {
        let w = CachePolicy.renewal(status: 200, headers: HTTPHeaders([("Cache-Control", "max-age=50"), ("ETag", "\"a\"")]),
                                    notModified: HTTPHeaders([("Age", "10")]), requestHasAuthorization: false, routeClass: .public,
                                    settings: origin(), now: now)
        XCTAssertEqual(w.expiresAt, now + 40_000)
        XCTAssertEqual(w.storedAt, now - 10_000)
    }

    // MARK: The read-through

    func testReadThroughStoresWithTheOriginsClock() {
        var m = ReadThrough(settings: origin(), routeClass: .public,
                            fill: OriginRequest(pathAndQuery: "/a"), requestHeaders: HTTPHeaders())
        _ = m.start(local: nil, now: now)
        _ = m.lookedUp(.missing, uncacheable: false, now: now)
        _ = m.joined(.leader, now: now)
        let actions = m.fetched(.success(OriginResponse(status: 200, headers: HTTPHeaders([("Cache-Control", "max-age=300"), ("Age", "100")]),
                                                       body: Array("v".utf8), isCompleteByFraming: true)), now: now)
        guard case .store(let entry, let ttl, _)? = actions.last else { return XCTFail("\(actions)") }
        XCTAssertEqual(ttl, 200_000)
        XCTAssertEqual(entry.storedAt, now - 100_000)
        XCTAssertEqual(entry.expiresAt, now + 200_000)
        XCTAssertFalse(entry.headers.contains("Age"), "Age is recomputed when served")
    }

    func testAuthorizationOnTheFillIsSeen() {
        var m = ReadThrough(settings: origin(), routeClass: .public,
                            fill: OriginRequest(pathAndQuery: "/a", headers: [("authorization", "Bearer x")]), requestHeaders: HTTPHeaders())
        _ = m.start(local: nil, now: now)
        _ = m.lookedUp(.missing, uncacheable: false, now: now)
        _ = m.joined(.leader, now: now)
        let actions = m.fetched(.success(OriginResponse(status: 200, headers: HTTPHeaders([("Cache-Control", "max-age=300")]),
                                                       body: [], isCompleteByFraming: true)), now: now)
        XCTAssertTrue(actions.contains { if case .reply(.entry(_, let status, _)) = $0 { status.description.contains("not-stored-authorization") } else { false } },
                      "\(actions)")
    }

    // MARK: Structured fields

    func testDictionaryParser() {
        typealias I = StructuredFieldDictionary.Item
        let parsed = StructuredFieldDictionary.parse(["a=1, b, c=?0, d=\"x\\\"y\", e=tok/en, f=-2.50, g=:aGk=:, h=(1 2);p, *i;q=1"])
        XCTAssertEqual(parsed?.map(\.key), ["a", "b", "c", "d", "e", "f", "g", "h", "*i"])
        XCTAssertEqual(parsed?.map(\.value), [I.integer(1), .boolean(true), .boolean(false), .string("x\"y"), .token("tok/en"),
                                              .decimal(-2.5), .byteSequence, .innerList, .boolean(true)])
        for bad in ["a=1,", "A=1", "a=", "a=1 b=2", "a=\"unterminated", "a=1.2345", "a=1234567890123456", "a=?2", "a=(1", ",a"] {
            XCTAssertNil(StructuredFieldDictionary.parse([bad]), bad)
        }
        XCTAssertEqual(StructuredFieldDictionary.parse([""])?.count, 0)
        XCTAssertEqual(StructuredFieldDictionary.parse(["a=1", "a=2"])?.map(\.value), [I.integer(2)])
    }
}
