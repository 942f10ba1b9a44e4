import GatewayTestSupport
import Dispatch
import Foundation
import GatewayRedis
import Logging
import XCTest

/// Base for tests against a real redis-server: one server, one loop queue, connections made on it.
class RedisTestCase: XCTestCase {
    var server: RedisServerProcess!
    let queue = DispatchQueue(label: "test.redis.loop")
    private var connections: [RedisConnection] = []
    /// Every message logged by connections from ``makeConnection(port:start:_:)``, in order.
    let logs = Locked<[String]>([])

    /// Arguments for the server started in `setUp`.
    var serverArguments: [String] { [] }

    override func setUpWithError() throws {
        try super.setUpWithError()
        server = try RedisServerProcess(extraArguments: serverArguments)
        try server.start()
    }

    override func tearDown() {
        let all = connections
        connections = []
        queue.sync { for connection in all { connection.close() } }
        server?.stop()
        server = nil
        super.tearDown()
    }

    /// A started connection to `server` (or `port`); closed in tearDown.
    func makeConnection(
        port: Int? = nil,
        start: Bool = true,
        _ configure: (inout RedisConfiguration) -> Void = { _ in }
    ) -> RedisConnection {
        var configuration = RedisConfiguration(port: port ?? server.port)
        configure(&configuration)
        let connection = RedisConnection(configuration: configuration, queue: queue, logger: makeLogger())
        connections.append(connection)
        if start { onQueue { connection.start() } }
        return connection
    }

    /// A logger that records into ``logs`` (and echoes to stderr when `REDIS_TEST_LOG` is set).
    func makeLogger() -> Logger {
        let logs = self.logs
        let echo = ProcessInfo.processInfo.environment["REDIS_TEST_LOG"] != nil
        var logger = Logger(label: "test.redis") { label in
            CapturingLogHandler(label: label, echo: echo) { message in logs.mutate { $0.append(message) } }
        }
        logger.logLevel = .trace
        return logger
    }

    func logCount(_ message: String) -> Int { logs.value.filter { $0 == message }.count }

    /// Runs `body` on the loop queue.
    func onQueue(_ body: @escaping () -> Void) {
        let box = Unchecked(body)
        queue.async { box.value() }
    }

    /// Runs `body` on the loop queue and waits for the value it passes to its callback.
    func call<T>(
        timeout: TimeInterval = 5,
        file: StaticString = #filePath, line: UInt = #line,
        _ body: @escaping (@escaping (T) -> Void) -> Void
    ) -> T? {
        let done = expectation(description: "callback")
        let result = Locked<T?>(nil)
        onQueue {
            body { value in
                result.value = value
                done.fulfill()
            }
        }
        wait(for: [done], timeout: timeout)
        return result.value
    }

    func get(_ connection: RedisConnection, _ key: [UInt8], timeout: TimeInterval = 5) -> Result<[UInt8]?, RedisError>? {
        call(timeout: timeout) { connection.get(key, completion: $0) }
    }

    /// A GET and how long the connection took to complete it, measured on the loop queue (so that
    /// the test thread's wake-up latency does not count).
    func timedGet(_ connection: RedisConnection, _ key: [UInt8]) -> (result: Result<[UInt8]?, RedisError>, seconds: Double)? {
        call { (done: @escaping ((Result<[UInt8]?, RedisError>, Double)) -> Void) in
            let start = DispatchTime.now().uptimeNanoseconds
            connection.get(key) { result in
                done((result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
            }
        }
    }

    func set(_ connection: RedisConnection, _ key: [UInt8], _ value: [UInt8], ttl: Int = 60_000) -> Result<Void, RedisError>? {
        call { connection.set(key, value, ttlMilliseconds: ttl, completion: $0) }
    }

    func send(_ connection: RedisConnection, _ args: [String]) -> Result<RedisReply, RedisError>? {
        call { connection.send(args.map { Array($0.utf8) }, completion: $0) }
    }

    /// Polls `isConnected` until it is true or `timeout` passes.
    func waitUntilConnected(_ connection: RedisConnection, timeout: TimeInterval = 3) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if queue.sync(execute: { connection.isConnected }) { return true }
            usleep(5_000)
        }
        return false
    }

    /// Polls (draining the loop queue) until `condition` holds or `timeout` passes. Dispatch sources
    /// finish cancelling asynchronously, so objects and fds they hold go a little after `close()`.
    func eventually(timeout: TimeInterval = 2, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            queue.sync {}
            if condition() { return true }
            usleep(2_000)
        } while Date() < deadline
        return condition()
    }

    /// Sends GETs until one succeeds; returns the seconds that took, or nil after `timeout`.
    func secondsUntilGetSucceeds(_ connection: RedisConnection, timeout: TimeInterval) -> TimeInterval? {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if case .success = get(connection, Array("probe".utf8), timeout: 2) {
                return Date().timeIntervalSince(start)
            }
            usleep(10_000)
        }
        return nil
    }
}

/// Hands each message (and its `redis.error`, if any) to `record`; echoes to stderr if asked.
struct CapturingLogHandler: LogHandler {
    let label: String
    let echo: Bool
    let record: @Sendable (String) -> Void
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    init(label: String, echo: Bool, record: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.echo = echo
        self.record = record
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        record("\(event.message)")
        if echo {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let text = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            FileHandle.standardError.write(Data("\(Date()) \(event.level) \(event.message) \(text)\n".utf8))
        }
    }
}

/// Moves a value to the loop queue and back; the tests' own synchronisation makes it safe.
struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A value shared between the test thread and the loop queue.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: Value
    init(_ value: Value) { _value = value }
    var value: Value {
        get { lock.withLock { _value } }
        set { lock.withLock { _value = newValue } }
    }
    func mutate<R>(_ body: (inout Value) -> R) -> R { lock.withLock { body(&_value) } }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
