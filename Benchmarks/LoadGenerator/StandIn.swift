// STAND-IN for the real `LoadGenerator` (branch `loadgen`), so that the scenario runner builds
// and runs end to end before that lands. Same public API; a deliberately simple implementation:
// one thread per connection, blocking sockets, HTTP/1.1 keep-alive. Drop this file when merging.

import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

// MARK: - API

/// One request the generator sends.
public struct LoadRequest: Sendable {
    public var method: String
    public var target: String
    public var headers: [(String, String)]

    public init(method: String = "GET", target: String, headers: [(String, String)] = []) {
        self.method = method
        self.target = target
        self.headers = headers
    }
}

/// Closed loop: each connection sends its next request when the previous answer arrived.
/// Open loop: requests are due at a fixed rate whatever the answers do; latency counts from the
/// moment a request was due, so a queue in front of a slow server shows (no coordinated omission).
public enum LoadMode: Sendable {
    case closedLoop(connections: Int)
    case openLoop(connections: Int, ratePerSecond: Double)
}

public struct LoadSpec: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int
    public var mode: LoadMode
    public var duration: Duration
    public var maxRequests: Int?
    public var timeout: Duration = .seconds(10)
    public var request: @Sendable (Int) -> LoadRequest

    public init(host: String = "127.0.0.1", port: Int, mode: LoadMode, duration: Duration, maxRequests: Int? = nil,
                timeout: Duration = .seconds(10), request: @escaping @Sendable (Int) -> LoadRequest) {
        self.host = host
        self.port = port
        self.mode = mode
        self.duration = duration
        self.maxRequests = maxRequests
        self.timeout = timeout
        self.request = request
    }
}

public struct LoadProgress: Sendable {
    public var elapsedSeconds: Double
    public var requests: Int
    public var errors: Int
}

/// Latencies in microseconds.
public struct LatencySummary: Sendable, Codable {
    public var min, p50, p90, p99, p999, max, mean: Double
    /// (percentile, µs) points from 0 to 100, denser towards the tail: for percentile charts.
    public var distribution: [PercentilePoint]

    public struct PercentilePoint: Sendable, Codable {
        public var percentile: Double
        public var micros: Double
    }
}

public struct LoadResult: Sendable, Codable {
    /// Requests answered (any status). Failed and timed-out requests are counted apart.
    public var requests: Int
    public var errors: Int
    public var timeouts: Int
    public var statuses: [Int: Int]
    /// Counts of each `Cache-Status` response header value.
    public var cacheStatus: [String: Int]
    public var bytes: Int
    public var elapsedSeconds: Double
    public var requestsPerSecond: Double
    public var latency: LatencySummary
}

public enum LoadGenerator {
    public static func run(_ spec: LoadSpec, progress: (@Sendable (LoadProgress) -> Void)? = nil) throws -> LoadResult {
        stopRequested.store(false, ordering: .relaxed)
        let connections: Int
        let rate: Double?
        switch spec.mode {
        case .closedLoop(let c): connections = c; rate = nil
        case .openLoop(let c, let r): connections = c; rate = r
        }
        precondition(connections > 0, "connections must be positive")
        let start = monotonicNanos()
        let end = start + spec.duration.nanos
        let timeout = spec.timeout.nanos
        let next = Atomic<Int>(0)
        let collector = Collector()
        let group = DispatchGroup()
        for _ in 0..<connections {
            group.enter()
            let thread = Thread {
                var recorder = Recorder()
                let client = Client(host: spec.host, port: spec.port)
                while !stopRequested.load(ordering: .relaxed) {
                    let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    if let max = spec.maxRequests, i >= max { break }
                    var due = monotonicNanos()
                    if let rate {
                        due = start + UInt64(Double(i) * 1e9 / rate)
                        if due >= end { break }
                        sleepUntil(due)
                        if monotonicNanos() > due + timeout { recorder.timeouts += 1; continue }
                    } else if due >= end { break }
                    client.exchange(spec.request(i), started: due, deadline: due + timeout, into: &recorder)
                }
                client.close()
                collector.add(recorder)
                group.leave()
            }
            thread.stackSize = 256 * 1024
            thread.start()
        }
        if let progress {
            while group.wait(timeout: .now() + 1) == .timedOut {
                let snap = collector.snapshot
                progress(LoadProgress(elapsedSeconds: Double(monotonicNanos() - start) / 1e9, requests: snap.requests, errors: snap.errors))
            }
        } else {
            group.wait()
        }
        return collector.result(elapsedNanos: monotonicNanos() - start)
    }

    /// Opens `count` connections, then sends `request` on all of them at once (one thread, in a
    /// tight loop) and waits for every answer with poll(2); each latency runs from its own send.
    public static func burst(host: String, port: Int, count: Int, request: LoadRequest, timeout: Duration) throws -> LoadResult {
        stopRequested.store(false, ordering: .relaxed)
        let clients = (0..<count).map { _ in Client(host: host, port: port) }
        defer { for client in clients { client.close() } }
        for client in clients { try client.connectNow() }
        let bytes = Client.encode(request, host: host, port: port)
        var recorder = Recorder()
        let start = monotonicNanos()
        let deadline = start + timeout.nanos
        var sentAt = [UInt64](repeating: 0, count: count)
        var pending: [Int] = []
        for (i, client) in clients.enumerated() {
            sentAt[i] = monotonicNanos()
            do {
                try client.send(bytes, deadline: deadline)
                pending.append(i)
            } catch {
                recorder.errors += 1
            }
        }
        while !pending.isEmpty {
            let now = monotonicNanos()
            if now >= deadline { recorder.timeouts += pending.count; break }
            var fds = pending.map { pollfd(fd: clients[$0].fd, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(1000, (deadline - now) / 1_000_000 + 1)))
            if ready <= 0 { continue }
            var still: [Int] = []
            for (k, i) in pending.enumerated() {
                guard fds[k].revents != 0 else { still.append(i); continue }
                do {
                    let answer = try clients[i].readResponse(headOnly: request.method == "HEAD", deadline: deadline)
                    recorder.latencies.append(monotonicNanos() - sentAt[i])
                    recorder.statuses[answer.status, default: 0] += 1
                    if let cs = answer.cacheStatus { recorder.cacheStatus[cs, default: 0] += 1 }
                    recorder.bytes += answer.bytes
                } catch ExchangeError.timeout {
                    recorder.timeouts += 1
                } catch {
                    recorder.errors += 1
                }
                clients[i].close()
            }
            pending = still
        }
        let collector = Collector()
        collector.add(recorder)
        return collector.result(elapsedNanos: monotonicNanos() - start)
    }

    /// Asks a running `run` to stop sending (answers in flight still count).
    public static func requestStop() { stopRequested.store(true, ordering: .relaxed) }
}

private let stopRequested = Atomic<Bool>(false)

// MARK: - Recording

private struct Recorder {
    var latencies: [UInt64] = []  // nanoseconds
    var errors = 0
    var timeouts = 0
    var statuses: [Int: Int] = [:]
    var cacheStatus: [String: Int] = [:]
    var bytes = 0
}

private final class Collector: Sendable {
    private let state = Mutex(Recorder())

    func add(_ r: Recorder) {
        state.withLock { s in
            s.latencies.append(contentsOf: r.latencies)
            s.errors += r.errors
            s.timeouts += r.timeouts
            s.bytes += r.bytes
            s.statuses.merge(r.statuses, uniquingKeysWith: +)
            s.cacheStatus.merge(r.cacheStatus, uniquingKeysWith: +)
        }
    }

    var snapshot: (requests: Int, errors: Int) { state.withLock { ($0.latencies.count, $0.errors) } }

    func result(elapsedNanos: UInt64) -> LoadResult {
        state.withLock { s in
            let sorted = s.latencies.sorted()
            func at(_ p: Double) -> Double {
                guard !sorted.isEmpty else { return 0 }
                let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
                return Double(sorted[min(sorted.count - 1, max(0, rank))]) / 1000
            }
            var points: [LatencySummary.PercentilePoint] = []
            var j = 0.0
            while true {
                let p = 100 * (1 - pow(0.5, j / 5))
                if p > 99.999 { break }
                points.append(.init(percentile: p, micros: at(p)))
                j += 1
            }
            points.append(.init(percentile: 100, micros: at(100)))
            let mean = sorted.isEmpty ? 0 : Double(sorted.reduce(0, +)) / Double(sorted.count) / 1000
            let summary = LatencySummary(min: sorted.first.map { Double($0) / 1000 } ?? 0, p50: at(50), p90: at(90), p99: at(99),
                                         p999: at(99.9), max: at(100), mean: mean, distribution: points)
            let elapsed = Double(elapsedNanos) / 1e9
            return LoadResult(requests: sorted.count, errors: s.errors, timeouts: s.timeouts, statuses: s.statuses,
                              cacheStatus: s.cacheStatus, bytes: s.bytes, elapsedSeconds: elapsed,
                              requestsPerSecond: elapsed > 0 ? Double(sorted.count) / elapsed : 0, latency: summary)
        }
    }
}

// MARK: - A blocking HTTP/1.1 client connection

private enum ExchangeError: Error { case connect, io, closed, malformed, timeout }

/// One keep-alive connection, used by one thread.
private final class Client: @unchecked Sendable {
    let host: String
    let port: Int
    fileprivate var fd: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: 256 * 1024)
    private var start = 0
    private var end = 0

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    func connectNow() throws {
        close()
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw ExchangeError.connect }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { Glibc.close(s); throw ExchangeError.connect }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        fd = s
        start = 0
        end = 0
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    static func encode(_ request: LoadRequest, host: String, port: Int) -> [UInt8] {
        var head = "\(request.method) \(request.target) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: cachegateway-bench\r\n"
        for (name, value) in request.headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        return Array(head.utf8)
    }

    func exchange(_ request: LoadRequest, started: UInt64, deadline: UInt64, into recorder: inout Recorder) {
        let bytes = Client.encode(request, host: host, port: port)
        for attempt in 0..<2 {
            let reused = fd >= 0
            do {
                if fd < 0 { try connectNow() }
                try send(bytes, deadline: deadline)
                let answer = try readResponse(headOnly: request.method == "HEAD", deadline: deadline)
                recorder.latencies.append(monotonicNanos() - started)
                recorder.statuses[answer.status, default: 0] += 1
                if let cs = answer.cacheStatus { recorder.cacheStatus[cs, default: 0] += 1 }
                recorder.bytes += answer.bytes
                if !answer.keepAlive { close() }
                return
            } catch ExchangeError.timeout {
                close()
                recorder.timeouts += 1
                return
            } catch ExchangeError.closed where reused && attempt == 0 {
                close()  // the server closed an idle keep-alive connection: retry once on a new one
            } catch {
                close()
                recorder.errors += 1
                return
            }
        }
        recorder.errors += 1
    }

    fileprivate func send(_ bytes: [UInt8], deadline: UInt64) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw errno == EPIPE || errno == ECONNRESET ? ExchangeError.closed : ExchangeError.io
            }
            offset += n
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    private func fill(deadline: UInt64) throws -> Bool {
        if start > 0 && start == end { start = 0; end = 0 }
        if end == buffer.count {
            if start > 0 {
                buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
                end -= start
                start = 0
            } else {
                buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count))
            }
        }
        while true {
            let now = monotonicNanos()
            if now >= deadline { throw ExchangeError.timeout }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(min(UInt64(Int32.max), (deadline - now + 999_999) / 1_000_000))
            let ready = poll(&pfd, 1, ms)
            if ready < 0 { if errno == EINTR { continue }; throw ExchangeError.io }
            if ready == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + end, $0.count - end, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw errno == ECONNRESET ? ExchangeError.closed : ExchangeError.io
            }
            if n == 0 { return false }
            end += n
            return true
        }
    }

    fileprivate struct Answer { var status: Int; var cacheStatus: String?; var bytes: Int; var keepAlive: Bool }

    fileprivate func readResponse(headOnly: Bool, deadline: UInt64) throws -> Answer {
        var first = true
        // The head.
        var headEnd = -1
        var scanFrom = start
        while headEnd < 0 {
            if end - scanFrom >= 4 {
                for i in max(start, scanFrom)...(end - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
                    headEnd = i + 4
                    break
                }
                if headEnd >= 0 { break }
                scanFrom = end - 3
            }
            let before = start
            guard try fill(deadline: deadline) else { throw first ? ExchangeError.closed : ExchangeError.malformed }
            scanFrom -= before - start  // fill may have moved the data to the front
            first = false
        }
        let head = String(decoding: buffer[start..<headEnd], as: UTF8.self)
        start = headEnd
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: true).makeIterator()
        guard let statusLine = lines.next() else { throw ExchangeError.malformed }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw ExchangeError.malformed }
        var contentLength: Int? = nil
        var chunked = false
        var keepAlive = parts[0] == "HTTP/1.1"
        var cacheStatus: String? = nil
        while let line = lines.next() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch name {
            case "content-length": contentLength = Int(value)
            case "transfer-encoding": chunked = value.lowercased().contains("chunked")
            case "connection": keepAlive = !value.lowercased().contains("close")
            case "cache-status": cacheStatus = value
            default: break
            }
        }
        var bodyBytes = 0
        if headOnly || status == 204 || status == 304 || (100..<200).contains(status) {
        } else if chunked {
            bodyBytes = try readChunked(deadline: deadline)
        } else if let length = contentLength {
            try consume(length, deadline: deadline)
            bodyBytes = length
        } else {
            while try fill(deadline: deadline) { bodyBytes += end - start; start = end }
            bodyBytes += end - start
            start = end
            keepAlive = false
        }
        return Answer(status: status, cacheStatus: cacheStatus, bytes: bodyBytes, keepAlive: keepAlive)
    }

    private func consume(_ count: Int, deadline: UInt64) throws {
        var left = count
        while left > 0 {
            if start == end { guard try fill(deadline: deadline) else { throw ExchangeError.malformed } }
            let take = min(left, end - start)
            start += take
            left -= take
        }
    }

    private func readLine(deadline: UInt64) throws -> String {
        while true {
            if let nl = buffer[start..<end].firstIndex(of: 10) {
                let line = String(decoding: buffer[start..<nl], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                start = nl + 1
                return line
            }
            guard try fill(deadline: deadline) else { throw ExchangeError.malformed }
        }
    }

    private func readChunked(deadline: UInt64) throws -> Int {
        var total = 0
        while true {
            let sizeLine = try readLine(deadline: deadline)
            guard let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) else { throw ExchangeError.malformed }
            if size == 0 {
                while try !readLine(deadline: deadline).isEmpty {}
                return total
            }
            try consume(size, deadline: deadline)
            total += size
            _ = try readLine(deadline: deadline)
        }
    }
}

// MARK: - Time

private func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

private func sleepUntil(_ due: UInt64) {
    while true {
        let now = monotonicNanos()
        if now >= due { return }
        let left = due - now
        var ts = timespec(tv_sec: Int(left / 1_000_000_000), tv_nsec: Int(left % 1_000_000_000))
        nanosleep(&ts, nil)
    }
}

private extension Duration {
    var nanos: UInt64 {
        let (s, atto) = components
        return UInt64(max(0, s)) * 1_000_000_000 + UInt64(max(0, atto) / 1_000_000_000)
    }
}
