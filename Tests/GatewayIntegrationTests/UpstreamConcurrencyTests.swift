import Foundation
import GatewayTestSupport
import XCTest

/// `upstream.max_connections` is what the backend sees at most, however many event loops the
/// gateway has (the test gateway has two, and connections are spread over both).
final class UpstreamConcurrencyTests: GatewayTestCase {
    private func peakConcurrency(cap: Int, requests: Int = 12) throws -> Int {
        backend.setBehaviour(.delayed(0.15, .ok("slow")), forPath: "/slow")
        try startGateway(upstreamMaxConnections: cap)
        let responses = try burst(requests) { "/slow?i=\($0)" }
        XCTAssertEqual(responses.map(\.status), Array(repeating: 200, count: requests), "cap \(cap)")
        XCTAssertEqual(backend.requestCount(forPath: "/slow"), requests)
        return backend.maxConcurrentRequests
    }

    func testACapOfOneIsOneAcrossTwoLoops() throws {
        XCTAssertEqual(try peakConcurrency(cap: 1), 1)
    }

    func testACapOfThreeIsThreeAcrossTwoLoops() throws {
        XCTAssertEqual(try peakConcurrency(cap: 3), 3)
    }
}
