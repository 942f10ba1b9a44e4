import Foundation
import GatewayTestSupport
import GatewayCore
@testable import GatewayRuntime
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
        XCTAssertEqual(service?.gateway.instanceID, "web-7.eu:a", "the accessor the leases read")
    }

    /// A lease in Redis says which instance holds it: `<instance_id>:<nonce>`.
    func testTheLeaseValueNamesTheInstance() throws {
        try startGateway(extra: "instance_id: web-lease-1\ncache: { cross_instance: true }")
        // The lease is skipped until the fills subscription is up: a few fresh keys, bounded.
        var value: String?
        for attempt in 0..<10 where value == nil {
            let path = "/catalog/slow-\(attempt)"
            backend.setBehaviour(.delayed(0.5, .ok("slow")), forPath: path)
            let client = try TestClient(port: port, timeout: 5)
            try client.send("GET \(path) HTTP/1.1\r\nHost: t\r\n\r\n")
            _ = waitUntil(timeout: 0.4) {
                value = (try? self.redis.cli("KEYS", "\(self.prefix)l:*"))?.first.flatMap { try? self.redis.cli("GET", $0).first }
                return value != nil
            }
            XCTAssertEqual(try client.readResponse().status, 200)
        }
        let lease = try XCTUnwrap(value, "no lease seen in 10 fills")
        XCTAssertTrue(lease.hasPrefix("web-lease-1:"), lease)
        XCTAssertEqual(service?.gateway.leaseValue().hasPrefix("web-lease-1:"), true)
    }

    /// The id is the process's: a reload that names another one is told it takes a restart.
    func testAReloadKeepsTheRunningID() throws {
        let yaml = { (id: String) in """
            listen: 127.0.0.1:0
            instance_id: \(id)
            upstream: { url: \(self.backend.baseURL) }
            redis: { url: redis://127.0.0.1:\(self.redis.port)/0, key_prefix: "\(self.prefix)" }
            \(self.adminBlock)
            \(GatewayTestCase.defaultRoutes)
            """ }
        try startGateway(yaml: yaml("web-a"))
        var next = try GatewayConfig.parse(yaml: yaml("web-b"), fileName: "reloaded.yaml")
        next.accessLog = nil
        let report = try XCTUnwrap(service).reload(next)
        XCTAssertEqual(report.needsRestart, ["instance_id"])
        XCTAssertEqual(service?.gateway.instanceID, "web-a")
        XCTAssertEqual(try json(admin("/stats"))["instance_id"] as? String, "web-a")
        XCTAssertEqual(try json(admin("/config"))["instance_id"] as? String, "web-a")
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
