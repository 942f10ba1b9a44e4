import Foundation
import GatewayTestSupport
import XCTest

/// `instance_id` where an operator looks for it: `/stats`, `/config`, `cachegateway_build_info`,
/// and the invalidation stream's consumer group.
final class InstanceIDTests: GatewayTestCase {
    private let adminBlock = "admin: { listen: 127.0.0.1:0 }"

    private func json(_ response: TestClient.Response, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any], response.text, file: file, line: line)
    }

    func testTheExplicitIDIsInStatsConfigAndBuildInfo() throws {
        try startGateway(extra: adminBlock + "\ninstance_id: web-7.eu:a")
        XCTAssertEqual(try json(admin("/stats"))["instance_id"] as? String, "web-7.eu:a")
        XCTAssertEqual(try json(admin("/config"))["instance_id"] as? String, "web-7.eu:a")
        let exposition = try PrometheusExposition(admin("/metrics").text)
        let info = exposition.samples.filter { $0.name == "cachegateway_build_info" }
        XCTAssertEqual(info.count, 1, "one series per process")
        XCTAssertEqual(info.first?.labels["instance_id"], "web-7.eu:a")
    }

    func testTheDefaultIDIsHostNameAndThisProcess() throws {
        try startGateway(extra: adminBlock)
        let id = try XCTUnwrap(try json(admin("/stats"))["instance_id"] as? String)
        XCTAssertTrue(id.hasSuffix(":\(getpid())"), id)
        XCTAssertTrue(id.hasPrefix(String(ProcessInfo.processInfo.hostName.prefix(8))), id)
    }

    /// The stream group follows an explicit instance_id (stable across restarts), and
    /// `invalidation.instance` still wins over it.
    func testTheStreamGroupIsNamedAfterTheExplicitID() throws {
        let stream = "events-\(prefix)"
        for (extra, group) in [("instance_id: gw-east-1\ninvalidation: { stream: \"\(stream)\" }", "cachegateway:gw-east-1"),
                               ("instance_id: gw-east-1\ninvalidation: { stream: \"\(stream)\", instance: legacy-name }", "cachegateway:legacy-name")] {
            try startGateway(extra: extra)
            XCTAssertTrue(waitUntil { ((try? self.redis.cli("XINFO", "GROUPS", stream)) ?? []).contains(group) },
                          "no group \(group): \((try? self.redis.cli("XINFO", "GROUPS", stream)) ?? [])")
            stopGateway()
        }
    }
}
