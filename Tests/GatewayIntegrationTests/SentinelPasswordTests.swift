import Foundation
import GatewayCore
import GatewayRuntime
import GatewayTestSupport
import XCTest

/// `redis.sentinel_password`: a Sentinel started with `requirepass` (the master has none), a
/// replica for it to promote. The gateway AUTHs to the Sentinel for its questions and for the
/// `+switch-master` subscription and follows a failover; without the password check-config
/// says the Sentinel refused. One Sentinel (quorum 1) keeps it short.
final class SentinelPasswordTests: GatewayTestCase {
    private static let password = "sentinel-s3cret"
    private static let variable = "CG_TEST_SENTINEL_PASSWORD"
    private var master: RedisServerProcess!
    private var replica: RedisServerProcess!
    private var sentinel: RedisServerProcess!

    override func setUpWithError() throws {
        try super.setUpWithError()
        _ = try requiredTool(["/usr/bin/redis-sentinel"], package: "redis-sentinel")
        setenv(Self.variable, Self.password, 1)
        master = try RedisServerProcess()
        try master.start()
        replica = try RedisServerProcess(extraArguments: ["--replicaof", "127.0.0.1", "\(master.port)"])
        try replica.start()
        sentinel = try RedisServerProcess.sentinel(monitoring: master.port, quorum: 1, password: Self.password)
        try sentinel.start()
        XCTAssertTrue(waitUntil(timeout: 10) { (try? self.replica.cli("INFO", "replication"))?.contains { $0.contains("master_link_status:up") } == true },
                      "replica in sync")
        // Only a replica the Sentinel has seen in sync can be promoted.
        XCTAssertTrue(waitUntil(timeout: 10) {
            let replicas = (try? self.sentinel("SENTINEL", "replicas", "mymaster")) ?? []
            guard replicas.contains("\(self.replica.port)"), let i = replicas.firstIndex(of: "master-link-status") else { return false }
            return replicas.indices.contains(i + 1) && replicas[i + 1] == "ok"
        }, "the Sentinel knows the replica in sync")
    }

    /// A command to the Sentinel, with its password.
    private func sentinel(_ arguments: String...) throws -> [String] {
        try sentinel.cli(["-a", Self.password, "--no-auth-warning"] + arguments)
    }

    override func tearDown() {
        stopGateway()
        sentinel?.stop()
        replica?.stop()
        master?.stop()
        unsetenv(Self.variable)
        super.tearDown()
    }

    private func yaml(withPassword: Bool) -> String {
        """
            listen: 127.0.0.1:0
            server: { event_loops: 2, drain_timeout: 1s }
            upstream: { url: \(backend.baseURL), timeout: 5s, connect_timeout: 1s, max_connections: 16 }
            redis:
              url: "redis+sentinel://127.0.0.1:\(sentinel.port)/mymaster/0"
              \(withPassword ? "sentinel_password: \"${\(Self.variable)}\"" : "")
              timeout: 200ms
              key_prefix: "\(prefix)"
            \(GatewayTestCase.defaultRoutes)
            """
    }

    func testTheGatewayAuthenticatesToTheSentinelAndFollowsAFailover() throws {
        try startGateway(yaml: yaml(withPassword: true))
        XCTAssertEqual(service?.gateway.runningConfig.redis.url.port, master.port, "the Sentinel answered after AUTH")
        XCTAssertTrue(waitUntil { self.service?.sentinelMonitor?.isSubscribed == true }, "subscribed to +switch-master after AUTH")
        let config = try XCTUnwrap(service).gateway.runningConfig.redactedJSON()
        XCTAssertFalse(config.contains(Self.password), config)
        XCTAssertTrue(config.contains("\"sentinel_password\""), config)

        XCTAssertEqual(try sentinel("SENTINEL", "FAILOVER", "mymaster"), ["OK"])
        XCTAssertTrue(waitUntil(timeout: 15) { self.service?.gateway.runningConfig.redis.url.port == self.replica.port },
                      "moved to the promoted replica")
        backend.setBehaviour(.ok("after"), forPath: "/catalog/after")
        XCTAssertEqual(try get("/catalog/after").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertFalse((try replica.cli("--scan", "--pattern", prefix + "e:*")).isEmpty, "stored on the new master")
    }

    func testCheckConfigConnectSaysTheSentinelRefusedWithoutThePassword() throws {
        func check(withPassword: Bool) throws -> (status: Int32, lines: [String]) {
            let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gateway")
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-auth-\(prefix).yaml")
            try yaml(withPassword: withPassword).write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let process = Process()
            process.executableURL = binary
            process.arguments = ["check-config", "--connect", file.path]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertFalse(text.contains(Self.password), text)
            return (process.terminationStatus, text.split(separator: "\n").map(String.init))
        }
        let refused = try check(withPassword: false)
        XCTAssertEqual(refused.status, 1, "\(refused.lines)")
        XCTAssertTrue(refused.lines.contains { $0.hasPrefix("sentinel 127.0.0.1:\(sentinel.port): FAILED: the Sentinel refused: NOAUTH") && $0.contains("redis.sentinel_password") },
                      "\(refused.lines)")

        let accepted = try check(withPassword: true)
        XCTAssertTrue(accepted.lines.contains("sentinel 127.0.0.1:\(sentinel.port): ok (master \"mymaster\" is 127.0.0.1:\(master.port))"),
                      "\(accepted.lines)")
    }
}
