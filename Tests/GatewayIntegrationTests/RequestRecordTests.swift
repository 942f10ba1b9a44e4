import Foundation
import GatewayCore
import GatewayRuntime
import GatewayTestSupport
import Synchronization
import XCTest

/// Every answer reaches the request observers (the access log's and the metrics' source) once,
/// with the outcome, route and timings of what really happened.
final class RequestRecordTests: GatewayTestCase {
    final class Recorder: RequestObserver {
        let records = Mutex<[RequestRecord]>([])
        func requestFinished(_ record: RequestRecord) { records.withLock { $0.append(record) } }
        var all: [RequestRecord] { records.withLock { $0 } }
    }

    func testEachAnswerIsRecordedOnceWithItsOutcomeAndTimings() throws {
        let recorder = Recorder()
        requestObservers = [recorder]
        backend.setBehaviour(.delayed(0.3, .ok("hot")), forPath: "/catalog/hot")
        backend.setBehaviour(.ok("passed"), forPath: "/other")
        try startGateway()

        let herd = try burst(5) { _ in "/catalog/hot" }
        XCTAssertEqual(herd.map(\.status), [200, 200, 200, 200, 200])
        XCTAssertEqual(try get("/catalog/hot").status, 200)
        XCTAssertEqual(try get("/other?x=1", method: "HEAD").status, 200)
        XCTAssertEqual(try get("/healthz").status, 200)
        XCTAssertEqual(try get("/catalog/bad", headers: ["Connection": "Authorization"]).status, 400)

        XCTAssertTrue(waitUntil { recorder.all.count == 9 }, "\(recorder.all.count) records")
        let records = recorder.all
        let outcomes = Dictionary(grouping: records, by: \.outcome).mapValues(\.count)
        XCTAssertEqual(outcomes[.miss], 1, "\(outcomes)")
        // The herd's other four waited for the leader; the request after the fill hit.
        XCTAssertEqual((outcomes[.collapsed] ?? 0) + (outcomes[.hit] ?? 0), 5, "\(outcomes)")
        XCTAssertEqual(outcomes[.bypass], 1)
        XCTAssertEqual(outcomes[.local], 1)
        XCTAssertEqual(outcomes[.rejected], 1)

        let miss = try XCTUnwrap(records.first { $0.outcome == .miss })
        XCTAssertEqual(miss.route, "catalog")
        XCTAssertEqual(miss.target, "/catalog/hot")
        XCTAssertEqual(miss.bodyBytes, 3)
        XCTAssertEqual(miss.cacheStatus?.description, "CacheGateway; fwd=miss; stored")
        let upstream = try XCTUnwrap(miss.upstreamNanoseconds)
        XCTAssertGreaterThanOrEqual(upstream, 300_000_000, "the backend's delay is in the upstream time")
        XCTAssertGreaterThanOrEqual(miss.durationNanoseconds, upstream)
        XCTAssertNotNil(miss.redisNanoseconds, "the leader looked up and stored")
        XCTAssertNil(miss.waitNanoseconds)
        for waiter in records where waiter.outcome == .collapsed {
            XCTAssertNil(waiter.upstreamNanoseconds, "a waiter did not call the upstream")
            XCTAssertNotNil(waiter.waitNanoseconds)
        }
        let head = try XCTUnwrap(records.first { $0.outcome == .bypass })
        XCTAssertEqual(head.method, "HEAD")
        XCTAssertEqual(head.target, "/other?x=1")
        XCTAssertEqual(head.route, "rest")
        XCTAssertEqual(head.bodyBytes, 0, "HEAD sends no body")
        XCTAssertNotNil(head.upstreamNanoseconds)
        let refused = try XCTUnwrap(records.first { $0.outcome == .rejected })
        XCTAssertEqual(refused.status, 400)
        XCTAssertNil(refused.route)
        XCTAssertEqual(records.filter { $0.client.host == "127.0.0.1" }.count, 9)
    }

    func testAnUpstreamFailureIsAnError() throws {
        let recorder = Recorder()
        requestObservers = [recorder]
        backend.setBehaviour(.closeMidBody(contentLength: 100, sentBytes: 10), forPath: "/catalog/broken")
        try startGateway()
        XCTAssertEqual(try get("/catalog/broken").status, 502)
        XCTAssertTrue(waitUntil { recorder.all.count == 1 })
        let record = try XCTUnwrap(recorder.all.first)
        XCTAssertEqual(record.outcome, .error)
        XCTAssertEqual(record.status, 502)
        XCTAssertEqual(record.route, "catalog")
    }
}
