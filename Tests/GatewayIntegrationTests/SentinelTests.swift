import Foundation
import GatewayCore
import GatewayRuntime
import GatewayTestSupport
import XCTest

/// `redis+sentinel://`: a real master, a replica and three Sentinels on loopback; the gateway
/// finds the master through them and follows it when it dies (SIGKILL) or is switched on purpose
/// (`SENTINEL FAILOVER`), under a bounded load, answering every request meanwhile.
final class SentinelTests: GatewayTestCase {
    private var master: RedisServerProcess!
    private var replica: RedisServerProcess!
    private var sentinels: [RedisServerProcess] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        _ = try requiredTool(["/usr/bin/redis-sentinel"], package: "redis-sentinel")
        master = try RedisServerProcess()
        try master.start()
        replica = try RedisServerProcess(extraArguments: ["--replicaof", "127.0.0.1", "\(master.port)"])
        try replica.start()
        XCTAssertTrue(waitUntil(timeout: 10) { (try? self.replica.cli("INFO", "replication"))?.contains { $0.contains("master_link_status:up") } == true },
                      "replica in sync")
        sentinels = try (0..<3).map { _ in try RedisServerProcess.sentinel(monitoring: master.port) }
        for sentinel in sentinels { try sentinel.start() }
        // A failover needs the quorum to know the replica and each other (hello messages, every 2 s).
        XCTAssertTrue(waitUntil(timeout: 15) {
            self.sentinels.allSatisfy { sentinel in
                let replicas = (try? sentinel.cli("SENTINEL", "replicas", "mymaster")) ?? []
                let peers = (try? sentinel.cli("SENTINEL", "sentinels", "mymaster")) ?? []
                return replicas.contains("\(self.replica.port)") && peers.filter { $0 == "runid" }.count == 2
            }
        }, "the Sentinels know the replica and each other")
    }

    override func tearDown() {
        stopGateway()
        for sentinel in sentinels { sentinel.stop() }
        replica?.stop()
        master?.stop()
        super.tearDown()
    }

    private var sentinelURL: String {
        "redis+sentinel://" + sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") + "/mymaster/0"
    }

    private func startSentinelGateway(waitForRedis: Bool = true) throws {
        try startGateway(yaml: sentinelYAML, waitForRedis: waitForRedis)
    }

    private var sentinelYAML: String {
        """
            listen: 127.0.0.1:0
            server: { event_loops: 2, drain_timeout: 1s }
            upstream: { url: \(backend.baseURL), timeout: 5s, connect_timeout: 1s, max_connections: 16 }
            redis: { url: "\(sentinelURL)", timeout: 200ms, key_prefix: "\(prefix)" }
            invalidation: { channel: "events-\(prefix)" }
            admin: { listen: 127.0.0.1:0 }
            \(GatewayTestCase.defaultRoutes)
            """
    }

    private var masterPortInUse: Int? { service?.gateway.runningConfig.redis.url.port }

    private func entries(on server: RedisServerProcess) -> [String] {
        (try? server.cli("--scan", "--pattern", prefix + "e:*")) ?? []
    }

    /// `clients` threads send GETs over 30 keys until `stop()`; every answer's status is counted.
    private final class Load: @unchecked Sendable {
        private let lock = NSLock()
        private var statuses: [Int: Int] = [:]
        private var failures = 0
        private var stopped = false
        private let group = DispatchGroup()

        init(port: Int, clients: Int) {
            for c in 0..<clients {
                DispatchQueue.global().async(group: group) { [self] in
                    var i = c
                    // Bounded: stop() ends it, and 20,000 requests per client at most.
                    while !lock.withLock({ stopped }), i < 20_000 {
                        do {
                            let client = try TestClient(port: port, timeout: 10)
                            try client.send("GET /catalog/load\(i % 30) HTTP/1.1\r\nHost: test\r\n\r\n")
                            let status = try client.readResponse().status
                            lock.withLock { statuses[status, default: 0] += 1 }
                        } catch {
                            lock.withLock { failures += 1 }
                        }
                        i += clients
                    }
                }
            }
        }

        func stop() -> (ok: Int, notOK: Int, failures: Int) {
            lock.withLock { stopped = true }
            _ = group.wait(timeout: .now() + 20)
            return lock.withLock { (statuses[200] ?? 0, statuses.filter { $0.key != 200 }.values.reduce(0, +), failures) }
        }
    }

    func testFollowsThePromotedReplicaWhenTheMasterIsKilledUnderLoad() throws {
        backend.setBehaviour(.perRequest { _ in .ok("body") }, forPath: "/catalog/before")
        try startSentinelGateway()
        XCTAssertEqual(masterPortInUse, master.port, "started on the master the Sentinels name")
        XCTAssertEqual(try get("/catalog/before").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(try get("/catalog/before").cacheStatus, "CacheGateway; hit")
        XCTAssertEqual(entries(on: master).count, 1, "stored in the master")

        let load = Load(port: port, clients: 4)
        usleep(300_000)
        let killedAt = Date()
        master.sigkill()
        let followed = waitUntil(timeout: 20) { self.masterPortInUse == self.replica.port }
        let followSeconds = Date().timeIntervalSince(killedAt)
        usleep(500_000)  // a little load on the new master too
        let counts = load.stop()
        print("sentinel failover (SIGKILL): followed in \(String(format: "%.2f", followSeconds)) s; "
            + "\(counts.ok) answered 200, \(counts.notOK) other statuses, \(counts.failures) client failures")
        XCTAssertTrue(followed, "moved to the promoted replica on \(replica.port); in use: \(masterPortInUse ?? -1)")
        XCTAssertGreaterThan(counts.ok, 0)
        // Redis failures degrade to upstream: every request of the window is still answered.
        XCTAssertEqual(counts.notOK, 0, "non-200 answers during the failover")
        XCTAssertEqual(counts.failures, 0, "requests not answered during the failover")

        backend.setBehaviour(.perRequest { _ in .ok("after") }, forPath: "/catalog/after")
        let before = entries(on: replica).count
        XCTAssertEqual(try get("/catalog/after").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(entries(on: replica).count, before + 1, "the new entry landed on the new master")
        XCTAssertTrue(waitUntil { (try? self.get("/catalog/after").cacheStatus) == "CacheGateway; hit" }, "hit from the new master")
        let metrics = try admin("/metrics").text
        XCTAssertTrue(metrics.contains("cachegateway_redis_master_switches_total 1"), metrics)
        let stats = try admin("/stats").text
        XCTAssertTrue(stats.contains("\"sentinel\":{\"master\":\"127.0.0.1:\(replica.port)\",\"master_switches\":1}"), stats)
        // The invalidation subscriber moved too: a purge published on the new master is heard.
        XCTAssertTrue(waitUntil(timeout: 10) { (try? self.replica.cli("PUBLISH", "events-\(self.prefix)", "ping")) == ["1"] },
                      "subscribed on the new master")
    }

    func testPlannedFailoverIsFollowedThroughSwitchMasterWithoutErrors() throws {
        try startSentinelGateway()
        XCTAssertEqual(masterPortInUse, master.port)
        XCTAssertTrue(waitUntil { self.service?.sentinelMonitor?.isSubscribed == true }, "subscribed to +switch-master")
        let load = Load(port: port, clients: 4)
        usleep(300_000)
        let started = Date()
        XCTAssertEqual(try sentinels[1].cli("SENTINEL", "FAILOVER", "mymaster"), ["OK"])
        let followed = waitUntil(timeout: 20) { self.masterPortInUse == self.replica.port }
        let followSeconds = Date().timeIntervalSince(started)
        usleep(300_000)
        let counts = load.stop()
        print("sentinel failover (SENTINEL FAILOVER): followed in \(String(format: "%.2f", followSeconds)) s; "
            + "\(counts.ok) answered 200, \(counts.notOK) other statuses, \(counts.failures) client failures")
        XCTAssertTrue(followed, "moved to the promoted replica; in use: \(masterPortInUse ?? -1)")
        XCTAssertEqual(counts.notOK, 0)
        XCTAssertEqual(counts.failures, 0)
        backend.setBehaviour(.perRequest { _ in .ok("after") }, forPath: "/catalog/planned")
        let before = entries(on: replica).count
        XCTAssertEqual(try get("/catalog/planned").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(entries(on: replica).count, before + 1, "the new entry landed on the new master")
    }

    func testReloadKeepsTheMasterItFollowsAndStartsWithoutSentinelsOnUpstream() throws {
        // No Sentinel up at start: the gateway serves from upstream and finds the master later.
        for sentinel in sentinels { sentinel.stop() }
        try startSentinelGateway(waitForRedis: false)
        XCTAssertEqual(service?.gateway.runningConfig.redis.url.host, "")
        backend.setBehaviour(.perRequest { _ in .ok("fresh") }, forPath: "/catalog/early")
        let early = try get("/catalog/early")
        XCTAssertEqual(early.status, 200)
        XCTAssertEqual(early.text, "fresh")
        for sentinel in sentinels { try sentinel.start() }
        XCTAssertTrue(waitUntil(timeout: 10) { self.masterPortInUse == self.master.port }, "found the master once a Sentinel answered")
        XCTAssertTrue(waitUntil { self.service?.gateway.redisConnected == true })

        // A reload of the same file stays on the master (the file cannot name it) and moves nothing.
        let report = try XCTUnwrap(service).reload(try GatewayConfig.parse(yaml: sentinelYAML, fileName: "test.yaml"))
        XCTAssertFalse(report.redisURLChanged, "\(report)")
        XCTAssertEqual(masterPortInUse, master.port)
        XCTAssertEqual(try get("/catalog/early").cacheStatus, "CacheGateway; fwd=miss; stored")
        XCTAssertEqual(try get("/catalog/early").cacheStatus, "CacheGateway; hit")

        // Other Sentinels: asked at the reload, followed from then on.
        let fewer = sentinelYAML.replacingOccurrences(of: sentinelURL, with: "redis+sentinel://127.0.0.1:\(sentinels[2].port)/mymaster/0")
        let moved = try XCTUnwrap(service).reload(try GatewayConfig.parse(yaml: fewer, fileName: "test.yaml"))
        XCTAssertTrue(moved.redisURLChanged)
        XCTAssertEqual(masterPortInUse, master.port)
        XCTAssertEqual(service?.sentinelMonitor?.sentinels.map(\.port), [sentinels[2].port])
        XCTAssertEqual(try get("/catalog/early").cacheStatus, "CacheGateway; hit", "the same master: the entry is still there")
    }

    func testCheckConfigConnectAsksEverySentinelThenPingsTheMaster() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gateway")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-check-\(prefix).yaml")
        try sentinelYAML.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        sentinels[2].stop()
        let process = Process()
        process.executableURL = binary
        process.arguments = ["check-config", "--connect", file.path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 1, "a Sentinel down fails the check: \(text)")
        let lines = text.split(separator: "\n").map(String.init)
        for sentinel in sentinels.prefix(2) {
            XCTAssertTrue(lines.contains("sentinel 127.0.0.1:\(sentinel.port): ok (master \"mymaster\" is 127.0.0.1:\(master.port))"), text)
        }
        XCTAssertTrue(lines.contains { $0.hasPrefix("sentinel 127.0.0.1:\(sentinels[2].port): FAILED: ") }, text)
        XCTAssertTrue(lines.contains { $0.hasPrefix("redis \(sentinelURLShown): ok (connected to master 127.0.0.1:\(master.port), PING answered in ") }, text)
    }

    private var sentinelURLShown: String {
        "redis+sentinel://" + sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") + "/mymaster/0"
    }
}
