import GatewayTestSupport
import Foundation
@testable import GatewayUpstream
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Connection reuse, the concurrency cap, overload, timeouts, connect failures and shutdown.
final class UpstreamConnectionTests: XCTestCase {
    var backend: TestHTTPBackend!

    override func setUpWithError() throws {
        backend = try TestHTTPBackend()
    }

    override func tearDown() {
        backend.stop()
    }

    func testSequentialRequestsReuseOneConnection() {
        let harness = ClientHarness(baseURL: backend.baseURL)
        defer { harness.shutdown() }
        for i in 0..<200 {
            let result = harness.run(UpstreamRequest(pathAndQuery: "/seq?i=\(i)"))
            XCTAssertEqual(result.success?.status, 200)
        }
        XCTAssertEqual(backend.requestCount(forPath: "/seq"), 200)
        XCTAssertLessThanOrEqual(backend.acceptedConnections, 2)
    }

    func testConcurrentRequestsStayWithinMaxConnections() {
        backend.setBehaviour(.delayed(0.005, .ok("slowish")), forPath: "/c")
        let harness = ClientHarness(baseURL: backend.baseURL, maxConnections: 8, maxQueued: 200)
        defer { harness.shutdown() }
        let requests = (0..<200).map { UpstreamRequest(pathAndQuery: "/c?i=\($0)") }
        let results = harness.run(requests)
        XCTAssertEqual(results.filter { $0.success?.body == Array("slowish".utf8) }.count, 200)
        XCTAssertEqual(backend.requestCount(forPath: "/c"), 200)
        XCTAssertLessThanOrEqual(backend.acceptedConnections, 8)
        XCTAssertLessThanOrEqual(backend.maxOpenConnections, 8)
        XCTAssertGreaterThan(backend.acceptedConnections, 1, "requests ran concurrently")
        // Nothing is left behind.
        XCTAssertEqual(harness.queue.sync { harness.client.inFlightCount + harness.client.queuedCount }, 0)
    }

    func testRequestsBeyondConnectionsAndQueueAreOverloaded() {
        backend.setBehaviour(.delayed(0.3, .ok("slow")), forPath: "/slow")
        let harness = ClientHarness(baseURL: backend.baseURL, maxConnections: 1, maxQueued: 2)
        defer { harness.shutdown() }
        let calls = ClientHarness.Calls(10)
        let done = DispatchSemaphore(value: 0)
        let start = DispatchTime.now().uptimeNanoseconds
        harness.queue.async { [client = harness.client] in
            for i in 0..<10 {
                client.execute(UpstreamRequest(pathAndQuery: "/slow?i=\(i)")) { result in
                    calls.results[i] = result
                    calls.callCounts[i] += 1
                    calls.finishedAt[i] = DispatchTime.now().uptimeNanoseconds - start
                    calls.remaining -= 1
                    if calls.remaining == 0 { done.signal() }
                }
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        harness.queue.sync {
            XCTAssertEqual(calls.callCounts, Array(repeating: 1, count: 10))
            let succeeded = (0..<10).filter { calls.results[$0]?.success != nil }
            let overloaded = (0..<10).filter { calls.results[$0]?.failure == .overloaded }
            XCTAssertEqual(succeeded, [0, 1, 2], "the first one in flight and the two queued ones")
            XCTAssertEqual(overloaded, Array(3..<10))
            for i in overloaded {
                XCTAssertLessThan(calls.finishedAt[i], 200_000_000, "overload is reported at once, not after waiting")
                XCTAssertEqual(calls.results[i]?.failure?.suggestedStatus, 503)
            }
        }
        XCTAssertEqual(backend.requestCount(forPath: "/slow"), 3)
        XCTAssertEqual(backend.maxOpenConnections, 1)
    }

    func testUnansweredRequestTimesOut() {
        backend.setBehaviour(.neverAnswer, forPath: "/hang")
        let harness = ClientHarness(baseURL: backend.baseURL, timeout: .milliseconds(500))
        defer { harness.shutdown() }
        var result: UpstreamResult?
        let seconds = elapsed { result = harness.run(UpstreamRequest(pathAndQuery: "/hang")) }
        XCTAssertEqual(result?.failure, .timeout, "\(String(describing: result))")
        XCTAssertEqual(result?.failure?.suggestedStatus, 504)
        XCTAssertGreaterThanOrEqual(seconds, 0.45)
        XCTAssertLessThan(seconds, 2.0)
        // The hung connection was closed, not returned to the cache.
        XCTAssertTrue(eventually { self.backend.openConnections == 1 || self.backend.openConnections == 0 })
        XCTAssertEqual(harness.run(UpstreamRequest(pathAndQuery: "/after")).success?.status, 200)
    }

    func testTimeWaitingInTheQueueCountsTowardsTheTimeout() {
        backend.setBehaviour(.delayed(0.5, .ok("first")), forPath: "/first")
        backend.setBehaviour(.delayed(0.4, .ok("second")), forPath: "/second")
        let harness = ClientHarness(baseURL: backend.baseURL, timeout: .milliseconds(800), maxConnections: 1, maxQueued: 4)
        defer { harness.shutdown() }
        var results: [UpstreamResult] = []
        let seconds = elapsed {
            results = harness.run([UpstreamRequest(pathAndQuery: "/first"), UpstreamRequest(pathAndQuery: "/second")])
        }
        XCTAssertEqual(results[0].success?.body, Array("first".utf8))
        // Started after 0.5 s of waiting, it would need until 0.9 s: past its 0.8 s deadline.
        XCTAssertEqual(results[1].failure, .timeout)
        XCTAssertLessThan(seconds, 0.88)
    }

    func testConnectionRefusedFailsQuickly() throws {
        let port = try Self.closedPort()
        let harness = ClientHarness(baseURL: "http://127.0.0.1:\(port)", timeout: .seconds(10))
        defer { harness.shutdown() }
        var result: UpstreamResult?
        let seconds = elapsed { result = harness.run(UpstreamRequest(pathAndQuery: "/")) }
        XCTAssertEqual(result?.failure, .connectFailed, "\(String(describing: result))")
        XCTAssertEqual(result?.failure?.suggestedStatus, 502)
        XCTAssertLessThan(seconds, 1.0)
    }

    func testConnectTimeoutIsConnectFailed() throws {
        // A listener with a full accept queue drops further SYNs, so connect() hangs.
        let (listener, port, fillers) = try Self.saturatedListener()
        defer {
            fillers.forEach { _ = close($0) }
            close(listener)
        }
        let harness = ClientHarness(baseURL: "http://127.0.0.1:\(port)", connectTimeout: .milliseconds(300), timeout: .seconds(10))
        defer { harness.shutdown() }
        var result: UpstreamResult?
        let seconds = elapsed { result = harness.run(UpstreamRequest(pathAndQuery: "/")) }
        XCTAssertEqual(result?.failure, .connectFailed, "\(String(describing: result))")
        XCTAssertGreaterThanOrEqual(seconds, 0.25)
        XCTAssertLessThan(seconds, 2.0)
    }

    func testShutdownFailsEveryPendingRequestExactlyOnce() {
        backend.setBehaviour(.neverAnswer, forPath: "/hang")
        let harness = ClientHarness(baseURL: backend.baseURL, maxConnections: 3, maxQueued: 4)
        let calls = ClientHarness.Calls(7)
        harness.queue.async { [client = harness.client] in
            for i in 0..<7 {
                client.execute(UpstreamRequest(pathAndQuery: "/hang?i=\(i)")) { result in
                    calls.results[i] = result
                    calls.callCounts[i] += 1
                }
            }
        }
        XCTAssertTrue(eventually { self.backend.requestCount(forPath: "/hang") == 3 })
        harness.queue.sync {
            XCTAssertEqual(harness.client.inFlightCount, 3)
            XCTAssertEqual(harness.client.queuedCount, 4)
            harness.client.shutdown()
            // Completions ran inside shutdown().
            XCTAssertEqual(calls.callCounts, Array(repeating: 1, count: 7))
            XCTAssertTrue(calls.results.allSatisfy { $0?.failure == .shutdown })
            harness.client.shutdown()  // idempotent
        }
        // Every upstream connection was closed.
        XCTAssertTrue(eventually { self.backend.openConnections == 0 }, "open: \(backend.openConnections)")
        Thread.sleep(forTimeInterval: 0.3)
        harness.queue.sync { XCTAssertEqual(calls.callCounts, Array(repeating: 1, count: 7), "a completion ran twice") }
        XCTAssertEqual(harness.run(UpstreamRequest(pathAndQuery: "/late")).failure, .shutdown)
        XCTAssertEqual(backend.requestCount(forPath: "/late"), 0)
    }

    func testShutdownClosesIdleKeepAliveConnections() {
        let harness = ClientHarness(baseURL: backend.baseURL, maxConnections: 4)
        _ = harness.run((0..<4).map { _ in UpstreamRequest(pathAndQuery: "/k") })
        XCTAssertGreaterThan(backend.openConnections, 0, "connections are kept alive")
        harness.shutdown()
        XCTAssertTrue(eventually { self.backend.openConnections == 0 }, "open: \(backend.openConnections)")
    }

    func testReleasingTheClientShutsItDown() {
        backend.setBehaviour(.neverAnswer, forPath: "/hang")
        let queue = DispatchQueue(label: "released-client")
        let calls = ClientHarness.Calls(1)
        let done = DispatchSemaphore(value: 0)
        do {
            let client = UpstreamClient(configuration: .init(baseURL: backend.baseURL), queue: queue)
            queue.async {
                client.execute(UpstreamRequest(pathAndQuery: "/hang")) { result in
                    calls.results[0] = result
                    calls.callCounts[0] += 1
                    done.signal()
                }
            }
            XCTAssertTrue(eventually { self.backend.requestCount(forPath: "/hang") == 1 })
        }
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success)
        queue.sync { XCTAssertEqual(calls.results[0]?.failure, .shutdown) }
        XCTAssertTrue(eventually { self.backend.openConnections == 0 })
    }

    /// A host name that is not an IP literal goes through libcurl's threaded resolver, whose socket
    /// pair passes through the socket callback and is closed by libcurl itself.
    func testHostNameGoesThroughTheResolver() throws {
        let name = try XCTUnwrap(Self.loopbackHostName(), "no name in /etc/hosts maps to 127.0.0.1")
        let harness = ClientHarness(baseURL: "http://\(name):\(backend.port)", maxConnections: 4)
        defer { harness.shutdown() }
        for i in 0..<20 {
            XCTAssertEqual(harness.run(UpstreamRequest(pathAndQuery: "/r?i=\(i)")).success?.status, 200)
        }
        let results = harness.run((0..<100).map { UpstreamRequest(pathAndQuery: "/rc?i=\($0)") })
        XCTAssertEqual(results.filter { $0.success?.status == 200 }.count, 100)
        XCTAssertEqual(backend.lastRequest?.header("Host"), "\(name):\(backend.port)")
        XCTAssertLessThanOrEqual(backend.acceptedConnections, 4)
    }

    func testNoDescriptorOrClientIsLeaked() throws {
        backend.setBehaviour(.neverAnswer, forPath: "/hang")
        let baseline = Self.openDescriptorCount()
        weak var released: UpstreamClient?
        weak var releasedLoop: CurlMultiLoop?
        do {
            let name = Self.loopbackHostName() ?? "127.0.0.1"
            let harness = ClientHarness(baseURL: "http://\(name):\(backend.port)", maxConnections: 8)
            released = harness.client
            releasedLoop = harness.client.loop
            _ = harness.run((0..<50).map { UpstreamRequest(pathAndQuery: "/x?i=\($0)") })
            backend.setBehaviour(.closeMidBody(contentLength: 9, sentBytes: 1), forPath: "/cut")
            _ = harness.run((0..<5).map { _ in UpstreamRequest(pathAndQuery: "/cut") })
            // Two hung transfers are cut by shutdown.
            harness.queue.async { [client = harness.client] in
                for _ in 0..<2 { client.execute(UpstreamRequest(pathAndQuery: "/hang")) { _ in } }
            }
            XCTAssertTrue(eventually { self.backend.requestCount(forPath: "/hang") == 2 })
            XCTAssertGreaterThan(Self.openDescriptorCount(), baseline)
            harness.shutdown()
        }
        XCTAssertTrue(eventually { released == nil }, "the client is still referenced after shutdown")
        XCTAssertTrue(eventually { releasedLoop == nil }, "the multi loop is still referenced after shutdown")
        XCTAssertTrue(eventually { self.backend.openConnections == 0 && Self.openDescriptorCount() <= baseline },
                      "descriptors: \(Self.openDescriptorCount()) now, \(baseline) before")
    }

    func testConfigurationIsValidated() {
        let good = UpstreamConfiguration(baseURL: "http://127.0.0.1:1")
        XCTAssertNoThrow(try good.validate())
        var bad = good
        bad.baseURL = "ftp://x"
        XCTAssertThrowsError(try bad.validate())
        bad = good
        bad.baseURL = "http://"
        XCTAssertThrowsError(try bad.validate())
        bad = good
        bad.maxConnections = 0
        XCTAssertThrowsError(try bad.validate())
        bad = good
        bad.baseURL = "http://h/a?b"
        XCTAssertThrowsError(try bad.validate()) { error in
            XCTAssertEqual(error as? UpstreamError, .invalidConfiguration)
        }
    }

    // MARK: Helpers

    static func openDescriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    /// A port on 127.0.0.1 with nothing listening.
    static func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    struct SaturationFailed: Error, CustomStringConvertible {
        var description: String { "64 connects to a backlog-0 listener all completed: this kernel does not drop SYNs on a full accept queue" }
    }

    /// A listener with backlog 0 whose accept queue is filled by connections nobody accepts; throws
    /// if a further connect still completes.
    static func saturatedListener() throws -> (Int32, Int, [Int32]) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) + getsockname(listener, $0, &len) }
        }
        listen(listener, 0)
        var fillers: [Int32] = []
        func tryConnect() -> (Int32, Bool) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            _ = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            return (fd, poll(&pfd, 1, 200) == 1)
        }
        // Linux keeps backlog + 1 unaccepted connections and drops SYNs beyond; keep filling
        // (bounded) until a connect hangs, so the test never depends on the exact queue size.
        var hung = false
        for _ in 0..<64 {
            let (fd, connected) = tryConnect()
            fillers.append(fd)
            if !connected { hung = true; break }
        }
        let (probe, connected) = tryConnect()
        fillers.append(probe)
        if !hung || connected {
            fillers.forEach { _ = close($0) }
            close(listener)
            // Not a skip: without a hanging connect the connect timeout cannot be exercised, and
            // that must be seen, not passed over.
            throw SaturationFailed()
        }
        return (listener, Int(UInt16(bigEndian: addr.sin_port)), fillers)
    }

    /// A name other than `localhost` that /etc/hosts maps to 127.0.0.1.
    static func loopbackHostName() -> String? {
        guard let hosts = try? String(contentsOfFile: "/etc/hosts", encoding: .utf8) else { return nil }
        for line in hosts.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.first == "127.0.0.1" else { continue }
            if let name = fields.dropFirst().first(where: { $0 != "localhost" && !$0.hasPrefix("#") && !$0.contains(".localhost") }) {
                return String(name)
            }
        }
        return nil
    }
}
