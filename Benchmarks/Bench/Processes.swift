import Dispatch
import Foundation
import LoadGenerator

#if canImport(Glibc)
import Glibc
#endif

/// A failure the benchmark reports in one sentence and exits on.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Processes the benchmark started

/// Every process the benchmark started, by pid, so that an error or Ctrl-C stops exactly those.
final class ProcessRegistry: @unchecked Sendable {
    static let shared = ProcessRegistry()
    private let lock = NSLock()
    private var running: [Int32: ManagedProcess] = [:]
    private var signalSources: [DispatchSourceSignal] = []

    func add(_ p: ManagedProcess) { lock.withLock { running[p.pid] = p } }
    func remove(_ p: ManagedProcess) { _ = lock.withLock { running.removeValue(forKey: p.pid) } }

    /// Stops every process still registered, newest first.
    func stopAll() {
        let all = lock.withLock { running.values.sorted { $0.startedAt > $1.startedAt } }
        for p in all { p.stop() }
    }

    /// On SIGINT or SIGTERM: stop the load, stop what we started, exit 130.
    func stopEverythingOnSignals() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in
                LoadGenerator.requestStop()
                FileHandle.standardError.write(Data("\ninterrupted: stopping the processes the benchmark started\n".utf8))
                stopAll()
                exit(130)
            }
            source.resume()
            lock.withLock { signalSources.append(source) }
        }
    }
}

/// A child process started with `posix_spawn`, its output in a log file; stopped by its pid.
final class ManagedProcess: @unchecked Sendable {
    let name: String
    let pid: Int32
    let logPath: String
    let startedAt = Date()
    private let lock = NSLock()
    private var exitStatus: Int32?

    private init(name: String, pid: Int32, logPath: String) {
        self.name = name
        self.pid = pid
        self.logPath = logPath
    }

    /// Starts `executable` (a path, or a name looked up in PATH) with its stdout and stderr in `<logDir>/<name>.log`.
    static func start(name: String, executable: String, arguments: [String], logDir: String) throws -> ManagedProcess {
        let logPath = "\(logDir)/\(name).log"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, executable, &actions, nil, argv, environ)
        guard rc == 0 else {
            throw BenchError("cannot start \(name) (\(executable)): \(String(cString: strerror(rc)))")
        }
        let process = ManagedProcess(name: name, pid: pid, logPath: logPath)
        ProcessRegistry.shared.add(process)
        return process
    }

    /// Whether it has not exited (reaps it if it has).
    var isRunning: Bool {
        lock.withLock {
            if exitStatus != nil { return false }
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { exitStatus = status; return false }
            return true
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    func stop(grace: Double = 5) {
        defer { ProcessRegistry.shared.remove(self) }
        guard isRunning else { return }
        kill(pid, SIGTERM)
        // A paused process (`outage`) would hold SIGTERM until continued.
        kill(pid, SIGCONT)
        let deadline = Date().addingTimeInterval(grace)
        while isRunning && Date() < deadline { usleep(10_000) }
        if isRunning {
            kill(pid, SIGKILL)
            while isRunning { usleep(10_000) }
        }
    }

    /// Freezes it (SIGSTOP): its sockets stay open and the kernel still accepts connections on its
    /// listening socket, but nothing is answered: a hung backend.
    func pause() { kill(pid, SIGSTOP) }

    /// Lets it run again after ``pause()`` (SIGCONT).
    func resume() { kill(pid, SIGCONT) }

    /// The last lines of its log, for error messages.
    func logTail(_ lines: Int = 15) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Resident set size in KiB, from `VmRSS` in /proc/PID/status.
    var residentKiB: Int? { Self.residentKiB(pid: pid) }

    static func residentKiB(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    /// Waits until something accepts TCP connections on 127.0.0.1:`port`, or fails naming the process and its log.
    func waitUntilAccepting(port: Int, timeout: Double = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if Ports.accepts(port) { return }
            guard isRunning else {
                throw BenchError("\(name) exited before accepting connections on 127.0.0.1:\(port); its log (\(logPath)):\n\(logTail())")
            }
            usleep(20_000)
        }
        throw BenchError("\(name) did not accept connections on 127.0.0.1:\(port) within \(Int(timeout)) s; its log (\(logPath)):\n\(logTail())")
    }
}

// MARK: - Ports

enum Ports {
    /// A port on 127.0.0.1 that nothing listens on, below the ephemeral range (32768–60999), so
    /// that the load generator's own client ports cannot take it.
    static func free() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 20_000..<32_000)
            if canBind(port) && !accepts(port) { return port }
        }
        throw BenchError("no free port found on 127.0.0.1 between 20000 and 32000")
    }

    static func canBind(_ port: Int) -> Bool {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { return false }
        defer { close(s) }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = loopback(port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    static func accepts(_ port: Int) -> Bool {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { return false }
        defer { close(s) }
        var addr = loopback(port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    static func loopback(_ port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        return addr
    }
}

// MARK: - A one-shot HTTP client for control endpoints

enum ControlHTTP {
    /// Sends one request with `Connection: close` to 127.0.0.1:`port` and returns the status and body.
    static func request(port: Int, method: String = "GET", path: String, headers: [(String, String)] = [],
                        timeout: Double = 5) throws -> (status: Int, headers: [String: String], body: String) {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw BenchError("socket() failed") }
        defer { close(s) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = Ports.loopback(port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw BenchError("\(method) http://127.0.0.1:\(port)\(path): connection refused") }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\nContent-Length: 0\r\n"
        for (n, v) in headers { head += "\(n): \(v)\r\n" }
        head += "\r\n"
        _ = Array(head.utf8).withUnsafeBytes { send(s, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: chunk[0..<n])
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else {
            throw BenchError("\(method) http://127.0.0.1:\(port)\(path): no complete answer")
        }
        let lines = text[..<split.lowerBound].split(separator: "\r\n")
        let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, fields, String(text[split.upperBound...]))
    }
}

// MARK: - Binaries

enum Binaries {
    /// The folder of the running bench binary: the gateway and demo-monolith are built there too.
    static var buildFolder: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    /// `name` from the bench binary's build folder.
    static func sibling(_ name: String) throws -> String {
        let path = "\(buildFolder)/\(name)"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw BenchError("\(path) not found: build it next to the bench (swift build -c release --product \(name))")
        }
        return path
    }

    /// `name` looked up in PATH (and the sbin folders, where Debian puts nginx).
    static func inPath(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/local/sbin"] {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

// MARK: - The services

/// A demo monolith the benchmark started, with its call counter.
struct Backend {
    let process: ManagedProcess
    let port: Int

    static func start(delayMs: Int, bodySize: Int, concurrency: Int, logDir: String, name: String = "demo-monolith") throws -> Backend {
        let port = try Ports.free()
        let process = try ManagedProcess.start(
            name: name, executable: try Binaries.sibling("demo-monolith"),
            arguments: ["--port", "\(port)", "--delay", "\(delayMs)", "--body-size", "\(bodySize)", "--concurrency", "\(concurrency)"],
            logDir: logDir)
        try process.waitUntilAccepting(port: port)
        return Backend(process: process, port: port)
    }

    /// Calls per request target since the last reset, from `/__stats`.
    func stats() throws -> (total: Int, paths: [String: Int]) {
        let answer = try ControlHTTP.request(port: port, path: "/__stats")
        guard answer.status == 200,
              let object = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
              let total = object["total"] as? Int else {
            throw BenchError("demo-monolith /__stats answered \(answer.status): \(answer.body.prefix(200))")
        }
        return (total, object["paths"] as? [String: Int] ?? [:])
    }

    func reset() throws {
        let answer = try ControlHTTP.request(port: port, method: "POST", path: "/__reset")
        guard answer.status == 200 else { throw BenchError("demo-monolith /__reset answered \(answer.status)") }
    }
}

/// The redis-server of a run: started by the benchmark, or one already running (`--redis`).
struct RedisService {
    let process: ManagedProcess?
    let port: Int

    static func start(logDir: String) throws -> RedisService {
        guard let redis = Binaries.inPath("redis-server") else {
            throw BenchError("redis-server not found in PATH (apt-get install redis-server, or Benchmarks/run.sh installs it)")
        }
        let port = try Ports.free()
        let process = try ManagedProcess.start(
            name: "redis-server", executable: redis,
            arguments: ["--bind", "127.0.0.1", "--port", "\(port)", "--save", "", "--appendonly", "no", "--dir", logDir],
            logDir: logDir)
        try process.waitUntilAccepting(port: port)
        return RedisService(process: process, port: port)
    }
}

/// The gateway under test, started with a generated config.
struct GatewayService {
    let process: ManagedProcess
    let port: Int

    static func start(config: String, port: Int, logDir: String, name: String) throws -> GatewayService {
        let path = "\(logDir)/\(name).yaml"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let process = try ManagedProcess.start(
            name: name, executable: try Binaries.sibling("gateway"),
            arguments: ["serve", "--config", path, "--log-level", "warning"], logDir: logDir)
        try process.waitUntilAccepting(port: port)
        return GatewayService(process: process, port: port)
    }
}

/// nginx with proxy_cache, started in the foreground (`daemon off`) with a generated config.
struct NginxService {
    let process: ManagedProcess
    let port: Int

    static var executable: String? { Binaries.inPath("nginx") }

    /// `nginx -v`'s version number, e.g. "1.22.1".
    static func version(logDir: String) -> String? {
        guard let nginx = executable,
              let p = try? ManagedProcess.start(name: "nginx-version", executable: nginx, arguments: ["-v"], logDir: logDir)
        else { return nil }
        while p.isRunning { usleep(5_000) }
        ProcessRegistry.shared.remove(p)
        let line = p.logTail(3).split(separator: "\n").last { $0.contains("nginx/") }
        return line?.split(separator: "/").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    static func start(config: NginxConfig, logDir: String, name: String) throws -> NginxService {
        guard let nginx = executable else { throw BenchError("nginx not found (apt-get install nginx-light, or pass --no-nginx)") }
        try config.prepareFolders()
        let path = "\(config.prefix)/nginx.conf"
        try config.text.write(toFile: path, atomically: true, encoding: .utf8)
        let process = try ManagedProcess.start(
            name: name, executable: nginx,
            arguments: ["-p", config.prefix, "-c", path, "-e", "\(config.prefix)/error.log"], logDir: logDir)
        try process.waitUntilAccepting(port: config.port)
        return NginxService(process: process, port: config.port)
    }
}
