import Foundation
import GatewayUpstream
import XCTest

/// A measurement, not an assertion: skipped unless `UPSTREAM_BENCH=1`. Run it in release:
///
///     UPSTREAM_BENCH=1 swift test -c release --scratch-path .build-upstream \
///         --filter GatewayUpstreamTests.UpstreamThroughputTests
///
/// `UPSTREAM_BENCH_REQUESTS` (20000), `UPSTREAM_BENCH_IN_FLIGHT` (64) and
/// `UPSTREAM_BENCH_CONNECTIONS` (same as in flight) change the shape.
final class UpstreamThroughputTests: XCTestCase {
    func testSmallGetThroughput() throws {
        let env = ProcessInfo.processInfo.environment
        try XCTSkipUnless(env["UPSTREAM_BENCH"] == "1", "set UPSTREAM_BENCH=1 to measure")
        let total = Int(env["UPSTREAM_BENCH_REQUESTS"] ?? "") ?? 20_000
        let inFlight = Int(env["UPSTREAM_BENCH_IN_FLIGHT"] ?? "") ?? 64
        let connections = Int(env["UPSTREAM_BENCH_CONNECTIONS"] ?? "") ?? inFlight

        let backend = try TestHTTPBackend(defaultBehaviour: .ok(String(repeating: "x", count: 100)))
        defer { backend.stop() }
        let harness = ClientHarness(baseURL: backend.baseURL, maxConnections: connections, maxQueued: inFlight)
        defer { harness.shutdown() }
        // Warm up: open the connections.
        _ = harness.run((0..<inFlight).map { _ in UpstreamRequest(pathAndQuery: "/warm") })

        final class State: @unchecked Sendable {
            var issued = 0, completed = 0, failed = 0
        }
        let state = State()
        let done = DispatchSemaphore(value: 0)
        let client = harness.client
        let request = UpstreamRequest(pathAndQuery: "/bench", headers: [("Accept", "*/*")])
        @Sendable func issue() {
            state.issued += 1
            client.execute(request) { result in
                state.completed += 1
                if case .failure = result { state.failed += 1 }
                if state.issued < total {
                    issue()
                } else if state.completed == total {
                    done.signal()
                }
            }
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let cpuStart = clock()
        harness.queue.async {
            for _ in 0..<min(inFlight, total) { issue() }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 300), .success)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let cpu = Double(clock() - cpuStart) / Double(CLOCKS_PER_SEC)
        let failed = harness.queue.sync { state.failed }
        print(String(format: "upstream bench: %d GETs, %d in flight, %d connections: %.2f s, %.0f transfers/s, process CPU %.2f s (client + backend), failed %d, backend connections %d",
                     total, inFlight, connections, seconds, Double(total) / seconds, cpu, failed,
                     backend.acceptedConnections))
        XCTAssertEqual(failed, 0)
    }
}
