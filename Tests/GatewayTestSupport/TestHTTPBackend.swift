import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 server for tests, on blocking POSIX sockets with one thread per connection.
///
/// Binds 127.0.0.1 on an ephemeral port, keeps connections alive, disables Nagle, and can misbehave on
/// purpose per path (see ``Behaviour``). It counts accepted connections (and the most open at once),
/// requests per path (and the most being answered at once), and records the last request. Independent of any test case, so it can move to a
/// shared test-support target.
public final class TestHTTPBackend: @unchecked Sendable {
    public struct RecordedRequest: Sendable {
        public var method: String
        /// The request target exactly as received.
        public var target: String
        /// The target up to `?`.
        public var path: String
        /// Header values decoded as UTF-8 (invalid sequences repaired); ``rawHead`` has the bytes.
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]
        /// The request line and header lines exactly as received, up to the empty line (excluded).
        public var rawHead: [UInt8] = []

        /// The first value of a header field (case-insensitive name).
        public func header(_ name: String) -> String? { headerValues(name).first }
        public func headerValues(_ name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        }
    }

    public enum Framing: Sendable {
        case contentLength
        case chunked
        /// No length; the body ends when the server closes the connection.
        case closeDelimited
    }

    public indirect enum Behaviour: Sendable {
        /// A normal response. For HEAD the body is left out (its length still announced).
        case respond(status: Int, headers: [(name: String, value: String)], body: [UInt8], framing: Framing)
        /// 200 with the request body as the body, and `X-Echo-Method` / `X-Echo-Target` headers.
        case echo
        /// Waits, then behaves as given.
        case delayed(TimeInterval, Behaviour)
        /// Sends the status line and part of a header field, then closes.
        case closeMidHeaders
        /// Announces `contentLength` bytes, sends `sentBytes` of them, then closes.
        case closeMidBody(contentLength: Int, sentBytes: Int)
        /// A chunked body with a bad chunk-size line, then close.
        case brokenChunked
        /// A chunked body that stops before its last chunk, then close.
        case chunkedCutShort
        /// Reads the request and never answers (until the client closes or the server stops).
        case neverAnswer
        /// Sends these bytes verbatim, then closes the connection or keeps it.
        case raw([UInt8], close: Bool)
        /// Decides from the request (e.g. answer with its Authorization header).
        case perRequest(@Sendable (RecordedRequest) -> Behaviour)

        public static func ok(_ body: String, headers: [(name: String, value: String)] = [], framing: Framing = .contentLength) -> Behaviour {
            .respond(status: 200, headers: headers, body: Array(body.utf8), framing: framing)
        }
    }

    public let port: Int
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    private let listenFD: Int32
    private let lock = NSLock()
    private var behaviours: [String: Behaviour] = [:]
    private var defaultBehaviour: Behaviour
    private var counts: [String: Int] = [:]
    private var _acceptedConnections = 0
    private var _maxOpenConnections = 0
    private var _activeRequests = 0
    private var _maxConcurrentRequests = 0
    private var _lastRequest: RecordedRequest?
    private var openFDs: Set<Int32> = []
    private var stopped = false
    private let threads = DispatchGroup()

    /// Starts listening and accepting at once.
    public init(defaultBehaviour: Behaviour = .ok("ok")) throws {
        signal(SIGPIPE, SIG_IGN)
        self.defaultBehaviour = defaultBehaviour
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard bound == 0, listen(fd, 512) == 0 else {
            let e = errno
            close(fd)
            throw POSIXError(.init(rawValue: e) ?? .EIO)
        }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        listenFD = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        threads.enter()
        Thread { [self] in
            acceptLoop()
            threads.leave()
        }.start()
    }

    deinit { stop() }

    // MARK: Behaviour and statistics

    public func setBehaviour(_ behaviour: Behaviour, forPath path: String) {
        lock.withLock { behaviours[path] = behaviour }
    }

    /// Requests received for `path` (the target up to `?`).
    public func requestCount(forPath path: String) -> Int { lock.withLock { counts[path, default: 0] } }
    public var totalRequests: Int { lock.withLock { counts.values.reduce(0, +) } }
    public var acceptedConnections: Int { lock.withLock { _acceptedConnections } }
    /// The most connections open at the same time so far.
    public var maxOpenConnections: Int { lock.withLock { _maxOpenConnections } }
    public var openConnections: Int { lock.withLock { openFDs.count } }
    /// The most requests read and not yet answered at the same time so far (idle keep-alive
    /// connections do not count, unlike in ``maxOpenConnections``).
    public var maxConcurrentRequests: Int { lock.withLock { _maxConcurrentRequests } }
    public var lastRequest: RecordedRequest? { lock.withLock { _lastRequest } }

    /// Stops accepting, cuts every open connection and waits (up to 5 s) for the threads to end.
    public func stop() {
        let first: Bool = lock.withLock {
            guard !stopped else { return false }
            stopped = true
            for fd in openFDs { shutdown(fd, Int32(SHUT_RDWR)) }
            shutdown(listenFD, Int32(SHUT_RDWR))
            return true
        }
        if first { _ = threads.wait(timeout: .now() + 5) }
    }

    // MARK: Serving

    private func acceptLoop() {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                break
            }
            let accepted: Bool = lock.withLock {
                guard !stopped else { return false }
                _acceptedConnections += 1
                openFDs.insert(fd)
                _maxOpenConnections = max(_maxOpenConnections, openFDs.count)
                return true
            }
            guard accepted else {
                close(fd)
                break
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            threads.enter()
            Thread { [self] in
                serve(fd)
                lock.withLock { _ = openFDs.remove(fd) }
                close(fd)
                threads.leave()
            }.start()
        }
        close(listenFD)
    }

    private func serve(_ fd: Int32) {
        var buffer: [UInt8] = []
        var answering = false
        while let request = readRequest(fd, &buffer) {
            let behaviour: Behaviour = lock.withLock {
                counts[request.path, default: 0] += 1
                _lastRequest = request
                _activeRequests += 1
                _maxConcurrentRequests = max(_maxConcurrentRequests, _activeRequests)
                return behaviours[request.path] ?? defaultBehaviour
            }
            answering = false
            let keepOpen = perform(behaviour, for: request, on: fd, buffer: &buffer, answering: &answering)
            if !answering { lock.withLock { _activeRequests -= 1 } }
            guard keepOpen else { return }
            if request.header("Connection")?.lowercased() == "close" { return }
        }
    }

    /// - Returns: whether the connection stays open.
    /// - Parameter answering: set once the response is being written (the request no longer counts as active).
    private func perform(_ behaviour: Behaviour, for request: RecordedRequest, on fd: Int32, buffer: inout [UInt8],
                         answering: inout Bool) -> Bool {
        switch behaviour {
        case let .respond(status, headers, body, framing):
            var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
            for (name, value) in headers { head += "\(name): \(value)\r\n" }
            let sendBody = request.method != "HEAD" && status != 204 && status != 304
            var payload: [UInt8] = []
            switch framing {
            case .contentLength:
                head += "Content-Length: \(body.count)\r\n\r\n"
                if sendBody { payload = body }
            case .chunked:
                head += "Transfer-Encoding: chunked\r\n\r\n"
                if sendBody {
                    // Two chunks (when there is more than a byte), then the last chunk.
                    let cut = body.count / 2
                    for part in [body[..<cut], body[cut...]] where !part.isEmpty {
                        payload += Array(String(part.count, radix: 16).utf8) + [13, 10] + part + [13, 10]
                    }
                    payload += Array("0\r\n\r\n".utf8)
                }
            case .closeDelimited:
                head += "Connection: close\r\n\r\n"
                if sendBody { payload = body }
            }
            // No longer at work once the answer is on its way: the client may start its next
            // request the moment it reads this one, before this thread is scheduled again.
            answering = true
            lock.withLock { _activeRequests -= 1 }
            guard write(fd, Array(head.utf8) + payload) else { return false }
            return framing != .closeDelimited
        case .echo:
            return perform(.respond(status: 200,
                                    headers: [("X-Echo-Method", request.method), ("X-Echo-Target", request.target)],
                                    body: request.body, framing: .contentLength),
                           for: request, on: fd, buffer: &buffer, answering: &answering)
        case let .delayed(seconds, next):
            Thread.sleep(forTimeInterval: seconds)
            return perform(next, for: request, on: fd, buffer: &buffer, answering: &answering)
        case .closeMidHeaders:
            _ = write(fd, Array("HTTP/1.1 200 OK\r\nContent-Type: text/pl".utf8))
            return false
        case let .closeMidBody(contentLength, sentBytes):
            _ = write(fd, Array("HTTP/1.1 200 OK\r\nContent-Length: \(contentLength)\r\n\r\n".utf8)
                + [UInt8](repeating: UInt8(ascii: "x"), count: sentBytes))
            return false
        case .brokenChunked:
            _ = write(fd, Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ-not-hex\r\nxx\r\n".utf8))
            return false
        case .chunkedCutShort:
            _ = write(fd, Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".utf8))
            return false
        case .neverAnswer:
            var scratch = [UInt8](repeating: 0, count: 4096)
            while recv(fd, &scratch, scratch.count, 0) > 0 {}
            return false
        case let .raw(bytes, close):
            guard write(fd, bytes) else { return false }
            return !close
        case let .perRequest(decide):
            return perform(decide(request), for: request, on: fd, buffer: &buffer, answering: &answering)
        }
    }

    /// Reads one request (head and `Content-Length` body); `nil` at EOF, on error or on bad input.
    private func readRequest(_ fd: Int32, _ buffer: inout [UInt8]) -> RecordedRequest? {
        var searchFrom = 0
        var headEnd: Int?
        while headEnd == nil {
            if buffer.count >= 4 {
                var i = max(0, searchFrom - 3)
                while i + 3 < buffer.count {
                    if buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
                        headEnd = i
                        break
                    }
                    i += 1
                }
                searchFrom = buffer.count
            }
            if headEnd == nil && !fill(fd, &buffer) { return nil }
        }
        let head = String(decoding: buffer[..<headEnd!], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3 else { return nil }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        let rawHead = Array(buffer[..<headEnd!])
        buffer.removeFirst(headEnd! + 4)
        var request = RecordedRequest(
            method: String(requestLine[0]), target: String(requestLine[1]),
            path: String(requestLine[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]),
            headers: headers, body: [], rawHead: rawHead)
        if request.header("Transfer-Encoding") != nil { return nil }  // not needed by these tests
        let length = Int(request.header("Content-Length") ?? "0") ?? -1
        guard length >= 0 else { return nil }
        while buffer.count < length {
            if !fill(fd, &buffer) { return nil }
        }
        request.body = Array(buffer[..<length])
        buffer.removeFirst(length)
        return request
    }

    private func fill(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n > 0 {
                buffer += chunk[..<n]
                return true
            }
            if n < 0 && errno == EINTR { continue }
            return false
        }
    }

    private func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 302: "Found"
        case 304: "Not Modified"
        case 404: "Not Found"
        default: "Status"
        }
    }
}
