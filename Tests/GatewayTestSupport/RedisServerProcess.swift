import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real `redis-server` on 127.0.0.1 for tests: a free port, no persistence, `DEBUG` enabled.
///
/// Self-contained (Foundation + libc) so it can move to a shared test-support target.
/// Start with ``start()``; ``stop()`` and ``start()`` again reuse the same port (outage tests);
/// ``pause()``/``resume()`` send `SIGSTOP`/`SIGCONT` (timeout tests). Stopped on deinit.
/// Not thread-safe: use it from the test's own thread.
public final class RedisServerProcess {
    public enum Failure: Error, CustomStringConvertible {
        case notInstalled(String)
        case noFreePort(String)
        case didNotStart(port: Int, output: String)

        public var description: String {
            switch self {
            case .notInstalled(let path): "redis-server not found at \(path) (apt-get install redis-server)"
            case .noFreePort(let why): "no free port: \(why)"
            case .didNotStart(let port, let output): "redis-server did not accept (127.0.0.1:\(port) or its unix socket): \(output)"
            }
        }
    }

    public static let executable = "/usr/bin/redis-server"

    /// The port, fixed for the life of this object.
    public let port: Int
    private var process: Process?
    private let logURL: URL
    private let directory: URL
    private(set) var isPaused = false
    /// Extra `redis-server` arguments, e.g. `["--requirepass", "secret"]`.
    public let extraArguments: [String]
    /// With `unixSocketOnly`: the socket (`unixsocket`) it listens on instead of TCP (`port 0`).
    public let unixSocketPath: String?
    /// A Sentinel's config file (``sentinel(monitoring:name:quorum:)``): then it runs `--sentinel`.
    private var sentinelConfig: URL?

    public var pid: Int32? { process?.processIdentifier }
    public var isRunning: Bool { process?.isRunning ?? false }

    /// Picks a free port unless one is given (does not start the server).
    /// - Parameter unixSocketOnly: listen on `redis.sock` in the server's temporary directory
    ///   (``unixSocketPath``) and on no TCP port at all.
    public init(port: Int? = nil, extraArguments: [String] = [], unixSocketOnly: Bool = false) throws {
        self.extraArguments = extraArguments
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw Failure.notInstalled(Self.executable)
        }
        self.port = try port ?? Self.freePort()
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("redis-test-\(getpid())-\(self.port)-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        logURL = directory.appendingPathComponent("redis.log")
        unixSocketPath = unixSocketOnly ? directory.appendingPathComponent("redis.sock").path : nil
    }

    /// A `redis-sentinel` (`redis-server <file> --sentinel`) on a free port, watching the master
    /// on 127.0.0.1:`masterPort` under `name`, quick to decide: down after 500 ms, a failover
    /// retried after 2 s. Sentinel rewrites its config file, so each gets its own in its directory.
    /// - Parameter password: the Sentinel's own `requirepass` (clients must AUTH); nil for none.
    public static func sentinel(
        monitoring masterPort: Int, name: String = "mymaster", quorum: Int = 2, password: String? = nil
    ) throws -> RedisServerProcess {
        let sentinel = try RedisServerProcess()
        let file = sentinel.directory.appendingPathComponent("sentinel.conf")
        var text = """
            sentinel monitor \(name) 127.0.0.1 \(masterPort) \(quorum)
            sentinel down-after-milliseconds \(name) 500
            sentinel failover-timeout \(name) 2000
            sentinel parallel-syncs \(name) 1

            """
        if let password { text += "requirepass \(password)\n" }
        try text.write(to: file, atomically: true, encoding: .utf8)
        sentinel.sentinelConfig = file
        return sentinel
    }

    /// SIGKILL, by pid, and waits for the exit: a crash, nothing flushed or announced.
    public func sigkill() {
        guard let p = process else { return }
        process = nil
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        isPaused = false
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Starts redis-server and waits until it accepts connections.
    public func start(timeout: TimeInterval = 5) throws {
        precondition(process == nil, "already running")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.executable)
        let listening = unixSocketPath.map { ["--port", "0", "--unixsocket", $0, "--unixsocketperm", "700"] }
            ?? ["--bind", "127.0.0.1", "--port", "\(port)"]
        if let sentinelConfig {
            p.arguments = [sentinelConfig.path, "--sentinel", "--bind", "127.0.0.1", "--port", "\(port)",
                           "--dir", directory.path, "--daemonize", "no"] + extraArguments
        } else {
            p.arguments = listening + [
                "--save", "", "--appendonly", "no",
                "--enable-debug-command", "yes",
                "--dir", directory.path, "--daemonize", "no",
            ] + extraArguments
        }
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = log
        p.standardError = log
        try p.run()
        try? log.close()
        process = p
        isPaused = false
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if unixSocketPath.map(Self.accepts(unixSocket:)) ?? Self.accepts(port: port) { return }
            if !p.isRunning { break }
            usleep(10_000)
        }
        let output = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
        stop()
        throw Failure.didNotStart(port: port, output: String(output.suffix(2000)))
    }

    /// SIGTERM (SIGCONT first if paused), then waits for the process to exit (SIGKILL after 5 s).
    public func stop() {
        guard let p = process else { return }
        process = nil
        let pid = p.processIdentifier
        if p.isRunning {
            kill(pid, SIGTERM)
            kill(pid, SIGCONT)  // a stopped process only handles SIGTERM once continued
            let deadline = Date().addingTimeInterval(5)
            while p.isRunning && Date() < deadline { usleep(5_000) }
            if p.isRunning { kill(pid, SIGKILL) }
        }
        p.waitUntilExit()
        isPaused = false
    }

    /// SIGSTOP: the kernel still completes TCP connects, but nothing is answered.
    public func pause() {
        guard let pid, !isPaused else { return }
        kill(pid, SIGSTOP)
        isPaused = true
    }

    /// SIGCONT.
    public func resume() {
        guard let pid, isPaused else { return }
        kill(pid, SIGCONT)
        isPaused = false
    }

    /// Binds a TCP socket to 127.0.0.1:0, reads the port the kernel chose, and closes it.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure.noFreePort(String(cString: strerror(errno))) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw Failure.noFreePort(String(cString: strerror(errno))) }
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw Failure.noFreePort(String(cString: strerror(errno))) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Whether a TCP connect to 127.0.0.1:`port` succeeds.
    public static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

extension RedisServerProcess {
    /// Whether a connect to the unix socket at `path` succeeds.
    public static func accepts(unixSocket path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    /// Runs `redis-cli -p PORT --raw ARGS…` (`-s SOCKET` for a unix-socket-only server) and
    /// returns its output lines (for inspecting what the gateway stored: keys, values, TTLs).
    public func cli(_ arguments: String...) throws -> [String] { try cli(arguments) }

    public func cli(_ arguments: [String]) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        let target = unixSocketPath.map { ["-s", $0] } ?? ["-h", "127.0.0.1", "-p", String(port)]
        process.arguments = target + ["--raw"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    /// Every key, with its value, as raw bytes (via `--scan` and `GET`).
    public func dump() throws -> [(key: String, value: String)] {
        try cli("--scan").map { key in (key, try cli("GET", key).joined(separator: "\n")) }
    }
}
