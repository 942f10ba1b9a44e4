import Dispatch
import Foundation
import GatewayCore
import GatewayRuntime
import GatewayHTTP
import GatewayTestSupport
import Logging
import XCTest

/// Starts the real parts for each test: a redis-server (once per class), a scriptable HTTP backend
/// on 127.0.0.1, and the gateway itself on a real socket with a config written in YAML.
class GatewayTestCase: XCTestCase {
    nonisolated(unsafe) static var redis: RedisServerProcess?
    var backend: TestHTTPBackend!
    var service: GatewayService?
    var port: Int { service!.localAddress!.port }
    /// The admin listener's port (the config needs `admin: { listen: 127.0.0.1:0 }`).
    var adminPort: Int { service!.adminAddress!.port }
    var redis: RedisServerProcess { Self.redis! }
    /// A key prefix of this test's own, so tests sharing the redis-server never see each other's keys.
    var prefix = ""
    /// Given to the next gateway started, before it serves (the access log and metrics tests).
    var requestObservers: [any RequestObserver] = []

    override class func setUp() {
        super.setUp()
        do {
            let server = try RedisServerProcess()
            try server.start()
            redis = server
        } catch {
            XCTFail("cannot start redis-server: \(error)")
        }
    }

    override class func tearDown() {
        redis?.stop()
        redis = nil
        super.tearDown()
    }

    override func setUpWithError() throws {
        try super.setUpWithError()
        if let redis = Self.redis, !redis.isRunning { try redis.start() }
        backend = try TestHTTPBackend()
        prefix = "t\(UInt32.random(in: 0...UInt32.max)):"
    }

    /// Stops services a test launched itself (several instances), each within 10 s.
    func shutDown(_ services: [GatewayService]) {
        for service in services {
            let done = expectation(description: "instance stopped")
            service.shutdown { done.fulfill() }
            wait(for: [done], timeout: 10)
        }
    }

    override func tearDown() {
        stopGateway()
        backend?.stop()
        backend = nil
        super.tearDown()
    }

    /// The default routes: a public catalog, a per-user resource route, and pass for the rest.
    static let defaultRoutes = """
        routes:
          - name: catalog
            match: "/catalog/**"
            class: public
            ttl: 5m
            ttl_by_status: { 404: 30s }
            query: [page, sort]
            max_wait: 5s
          - name: resources
            match: "/users/{user}/resources"
            class: per_user
            identity: { header: Authorization }
            ttl: 5m
          - name: rest
            match: "/**"
            class: pass
        """

    /// Writes a config around `routes` and starts the gateway on 127.0.0.1:0.
    func startGateway(
        routes: String = GatewayTestCase.defaultRoutes, upstreamTimeout: String = "5s", upstreamMaxConnections: Int = 16,
        extra: String = ""
    ) throws {
        let yaml = """
            listen: 127.0.0.1:0
            server: { event_loops: 2, drain_timeout: 1s }
            upstream: { url: \(backend.baseURL), timeout: \(upstreamTimeout), connect_timeout: 1s, max_connections: \(upstreamMaxConnections) }
            redis: { url: redis://127.0.0.1:\(redis.port)/0, timeout: 200ms, key_prefix: "\(prefix)" }
            \(extra)
            \(routes)
            """
        try startGateway(yaml: yaml)
    }

    /// Starts the gateway with exactly this configuration.
    /// - Parameter waitForRedis: false for configs whose Redis is meant to stay unreachable.
    func startGateway(yaml: String, waitForRedis: Bool = true) throws {
        service = try launchService(yaml: yaml, waitForRedis: waitForRedis)
    }

    /// Starts a gateway with this configuration that the caller stops (tests of several instances).
    func launchService(yaml: String, waitForRedis: Bool = true) throws -> GatewayService {
        let config = try Self.parseConfig(yaml, fileName: "test.yaml")
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let service = GatewayService(config: config, logger: logger)
        service.gateway.requestObservers = requestObservers
        try service.start()
        // Requests before Redis is connected are served from upstream; tests want the cache.
        guard waitForRedis else { return service }
        XCTAssertTrue(waitUntil { service.gateway.redisConnected }, "gateway never connected to Redis")
        return service
    }

    /// `yaml` as the tests' gateways run it: the access log (on by default, to stdout) and the
    /// in-process tier (on by default, where a test reading Redis behind the gateway's back
    /// would race the invalidations) only when the YAML asks for them.
    static func parseConfig(_ yaml: String, fileName: String) throws -> GatewayConfig {
        var config = try GatewayConfig.parse(yaml: yaml, fileName: fileName)
        if !yaml.contains("access_log") { config.accessLog = nil }
        if !yaml.contains("local_ttl") && !yaml.contains("local_tracking") {
            config.cache.localTTL = .zero
            config.cache.localTTLWithoutTracking = .zero
        }
        return config
    }

    func stopGateway() {
        guard let service else { return }
        let done = expectation(description: "gateway stopped")
        service.shutdown { done.fulfill() }
        wait(for: [done], timeout: 10)
        self.service = nil
    }

    /// One request on a fresh connection.
    @discardableResult
    func get(_ target: String, headers: [String: String] = [:], method: String = "GET", body: String? = nil,
             port: Int? = nil) throws -> TestClient.Response {
        let client = try TestClient(port: port ?? self.port, timeout: 10)
        var request = "\(method) \(target) HTTP/1.1\r\n"
        if !headers.keys.contains(where: { $0.lowercased() == "host" }) { request += "Host: test\r\n" }
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        if let body { request += "Content-Length: \(body.utf8.count)\r\n" }
        request += "\r\n" + (body ?? "")
        try client.send(request)
        return try client.readResponse(head: method == "HEAD")
    }

    /// One request to the admin listener.
    @discardableResult
    func admin(_ target: String, headers: [String: String] = [:], method: String = "GET") throws -> TestClient.Response {
        try get(target, headers: headers, method: method, port: adminPort)
    }

    /// `n` clients send the same request at (nearly) the same moment; returns their responses.
    func burst(_ n: Int, _ target: (Int) -> String, headers: [String: String] = [:]) throws -> [TestClient.Response] {
        let clients = try (0..<n).map { _ in try TestClient(port: port, timeout: 15) }
        for (i, client) in clients.enumerated() {
            var request = "GET \(target(i)) HTTP/1.1\r\nHost: test\r\n"
            for (name, value) in headers { request += "\(name): \(value)\r\n" }
            try client.send(request + "\r\n")
        }
        return try clients.map { try $0.readResponse() }
    }

    /// Polls `condition` every 20 ms for up to `timeout` seconds.
    func waitUntil(timeout: TimeInterval = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// This test's cached entries (`<prefix>e:…`), not the path indexes beside them.
    func cacheKeys() throws -> [String] {
        try redis.cli("--scan", "--pattern", prefix + "e:*")
    }

    /// Every key under this test's prefix: entries and path indexes.
    func allKeys() throws -> [String] {
        try redis.cli("--scan", "--pattern", prefix + "*")
    }
}

extension TestClient.Response {
    var cacheStatus: String { header("Cache-Status") ?? "" }
}
