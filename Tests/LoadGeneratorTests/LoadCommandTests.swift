import Foundation
import GatewayTestSupport
import XCTest

/// `cachegateway-bench load` itself, as scripts/demo.sh calls it.
final class LoadCommandTests: XCTestCase {
    private var backend: TestHTTPBackend!

    override func setUpWithError() throws {
        backend = try TestHTTPBackend()
    }

    override func tearDown() {
        backend?.stop()
        backend = nil
    }

    private func bench(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try ChildProcess.run(ChildProcess.built("cachegateway-bench"), arguments)
    }

    func testBurstSendsOneRequestPerConnectionAndCountsCacheStatus() throws {
        backend.setBehaviour(.delayed(0.2, .respond(status: 200, headers: [("Cache-Status", "CacheGateway; fwd=miss; collapsed")],
                                                    body: Array("x".utf8), framing: .contentLength)), forPath: "/herd")
        let result = try bench(["load", "--burst", "20", "--timeout", "10s", "\(backend.baseURL)/herd?k=1"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.hasPrefix("GET \(backend.baseURL)/herd?k=1  20 requests at once, one per connection\n"), result.output)
        XCTAssertTrue(result.output.contains("\nstatuses       200 × 20\n"), result.output)
        XCTAssertTrue(result.output.contains("\ncache-status   CacheGateway; fwd=miss; collapsed × 20 (100.0 %)\n"), result.output)
        XCTAssertEqual(backend.requestCount(forPath: "/herd"), 20)
        // All connections are opened before the first request is written.
        XCTAssertEqual(backend.acceptedConnections, 20)
        XCTAssertEqual(backend.maxOpenConnections, 20)
    }

    func testBurstOfNothingIsRefused() throws {
        let result = try bench(["load", "--burst", "0", "\(backend.baseURL)/"])
        XCTAssertEqual(result.status, 64, result.output)
        XCTAssertTrue(result.output.contains("--burst must be at least 1"), result.output)
        XCTAssertEqual(backend.totalRequests, 0)
    }
}
