#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which one, and the `errno` it left.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public var function: String
    public var errno: Int32
    /// A reason that is not an `errno`: `getaddrinfo`'s, or a timeout.
    public var detail: String?
    public init(_ function: String, errno: Int32) {
        self.function = function
        self.errno = errno
    }
    /// A failure whose reason is not an `errno`; `what` reads as the start of a sentence
    /// (`cannot resolve host "x"`).
    public init(_ what: String, detail: String) {
        self.function = what
        self.errno = 0
        self.detail = detail
    }
    /// Why, without the function: `Connection refused`, `Name or service not known`.
    public var reason: String { detail ?? String(cString: strerror(errno)) }
    public var description: String {
        if let detail { return "\(function): \(detail)" }
        return "\(function) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Every socket call the server makes, in one place: `errno` is read at once and `EINTR` retried,
/// so the rest of the module never touches either.
enum Syscall {
    enum IOResult: Equatable {
        case bytes(Int)
        case wouldBlock
        case eof
    }

    static func socket(family: Int32) throws(SystemError) -> Int32 {
        #if canImport(Glibc)
        let type = Int32(SOCK_STREAM.rawValue)
        #else
        let type = SOCK_STREAM
        #endif
        let fd = Glibc.socket(family, type, 0)
        if fd < 0 { throw SystemError("socket", errno: errno) }
        return fd
    }

    static func setNonBlocking(_ fd: Int32) throws(SystemError) {
        let flags = fcntl(fd, F_GETFL, 0)
        if flags < 0 { throw SystemError("fcntl(F_GETFL)", errno: errno) }
        if fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 { throw SystemError("fcntl(F_SETFL)", errno: errno) }
        // Close-on-exec, so the gateway's sockets do not leak into processes it might spawn.
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }

    static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(SystemError) {
        var v = value
        if setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) < 0 {
            throw SystemError("setsockopt", errno: errno)
        }
    }

    static func bind(_ fd: Int32, address: SocketAddress) throws(SystemError) {
        let rc = address.withSockAddr { Glibc.bind(fd, $0, $1) }
        if rc < 0 { throw SystemError("bind", errno: errno) }
    }

    static func listen(_ fd: Int32, backlog: Int32) throws(SystemError) {
        if Glibc.listen(fd, backlog) < 0 { throw SystemError("listen", errno: errno) }
    }

    /// Accepts one connection; nil when none is pending. The new socket is non-blocking.
    static func accept(_ fd: Int32) throws(SystemError) -> (fd: Int32, peer: SocketAddress)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(fd, $0, &length) }
            }
            if client >= 0 {
                do throws(SystemError) {
                    try setNonBlocking(client)
                } catch {
                    Glibc.close(client)
                    throw error
                }
                return (client, SocketAddress(storage: storage))
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return nil
            // The peer gave up between SYN and accept: not our error, try the next one.
            case ECONNABORTED, EPROTO: continue
            default: throw SystemError("accept", errno: errno)
            }
        }
    }

    static func localAddress(_ fd: Int32) throws(SystemError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        if rc < 0 { throw SystemError("getsockname", errno: errno) }
        return SocketAddress(storage: storage)
    }

    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .eof }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw SystemError("read", errno: errno)
            }
        }
    }

    static func writev(_ fd: Int32, _ iov: UnsafePointer<iovec>, count: Int32) throws(SystemError) -> IOResult {
        while true {
            let n = Glibc.writev(fd, iov, count)
            if n >= 0 { return .bytes(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw SystemError("writev", errno: errno)
            }
        }
    }

    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        while true {
            let n = Glibc.write(fd, bytes.baseAddress, bytes.count)
            if n < 0 && errno == EINTR { continue }
            return n
        }
    }

    static func shutdownWrite(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Wall-clock milliseconds since 1970 (`clock_gettime(CLOCK_REALTIME)`), for stored-at times
    /// and `Age`; DispatchTime is monotonic and unrelated to the calendar.
    static func wallClockMilliseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec / 1_000_000)
    }

    /// Opens `/dev/null` read-only and close-on-exec: a descriptor held in reserve, to be closed
    /// when the process runs out so that one more `accept` can succeed. -1 if it cannot be opened.
    static func openReserveDescriptor() -> Int32 {
        while true {
            let fd = Glibc.open("/dev/null", O_RDONLY | O_CLOEXEC)
            if fd < 0 && errno == EINTR { continue }
            return fd
        }
    }

    /// `getrlimit(RLIMIT_NOFILE)`; `Int.max` stands for `RLIM_INFINITY` (all ones, above `Int.max`).
    static func openFileLimit() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (Int.max, Int.max) }
        func value(_ v: rlim_t) -> Int { v > rlim_t(Int.max) ? Int.max : Int(v) }
        return (value(limit.rlim_cur), value(limit.rlim_max))
    }

    /// Raises the soft `RLIMIT_NOFILE` to the hard one (`setrlimit`); on failure leaves it as it was.
    static func raiseOpenFileLimit() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return openFileLimit() }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised)
        }
        return openFileLimit()
    }

    static func close(_ fd: Int32) {
        // Linux closes the descriptor even when close reports EINTR: never retry.
        _ = Glibc.close(fd)
    }

    /// `getaddrinfo` for a TCP `host` and `port`: the addresses in the resolver's order, or its
    /// reason (`gai_strerror`) for finding none.
    static func resolve(host: String, port: Int) -> Result<[SocketAddress], SystemError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        // No retry on EAI_AGAIN: a resolver that is down is worth reporting as such.
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0 else {
            let reason = rc == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(rc))
            return .failure(SystemError("cannot resolve host \"\(host)\"", detail: reason))
        }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var next = list
        while let info = next {
            if let address = info.pointee.ai_addr, info.pointee.ai_family == AF_INET || info.pointee.ai_family == AF_INET6 {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { target in
                    target.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(info.pointee.ai_addrlen)))
                }
                addresses.append(SocketAddress(storage: storage))
            }
            next = info.pointee.ai_next
        }
        if addresses.isEmpty { return .failure(SystemError("cannot resolve host \"\(host)\"", detail: "no IPv4 or IPv6 address")) }
        return .success(addresses)
    }

    /// A blocking TCP connect bounded by `milliseconds`: a non-blocking `connect`, then `poll`
    /// for writability and `SO_ERROR`. The socket is closed before returning.
    static func connectProbe(_ address: SocketAddress, milliseconds: Int32) throws(SystemError) {
        let fd = try socket(family: address.family)
        defer { close(fd) }
        try setNonBlocking(fd)
        var rc = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        if rc == 0 { return }
        guard errno == EINPROGRESS || errno == EINTR else { throw SystemError("connect", errno: errno) }
        var watched = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        repeat {
            rc = poll(&watched, 1, milliseconds)
        } while rc < 0 && errno == EINTR
        if rc < 0 { throw SystemError("poll", errno: errno) }
        if rc == 0 { throw SystemError("connect", detail: "no answer within \(milliseconds) ms") }
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) < 0 { throw SystemError("getsockopt", errno: errno) }
        if failure != 0 { throw SystemError("connect", errno: failure) }
    }
}

/// Process-wide descriptor limits, for the executable to set at start-up (a library should not).
public enum OpenFileLimit {
    /// The soft and hard `RLIMIT_NOFILE` (`getrlimit`); `Int.max` means unlimited.
    public static var current: (soft: Int, hard: Int) { Syscall.openFileLimit() }

    /// Raises the soft `RLIMIT_NOFILE` as far as the hard limit allows (`setrlimit`) and returns the
    /// limits then in force.
    @discardableResult
    public static func raiseToHardLimit() -> (soft: Int, hard: Int) { Syscall.raiseOpenFileLimit() }
}

/// Wall-clock time for modules that must not touch libc themselves.
public enum WallClock {
    /// Milliseconds since 1970.
    public static func nowMilliseconds() -> UInt64 { Syscall.wallClockMilliseconds() }
}

/// An IPv4 or IPv6 socket address.
public struct SocketAddress: Sendable, CustomStringConvertible {
    let storage: sockaddr_storage
    /// The numeric host, without brackets: formatted once, when the address is made (a client's
    /// is read at least twice per request, for `X-Forwarded-For` and the access log).
    public let host: String

    init(storage: sockaddr_storage) {
        self.storage = storage
        host = Self.numericHost(storage)
    }

    /// Parses a numeric host (`127.0.0.1`, `::1`, `0.0.0.0`) and a port; nil if the host is not numeric.
    public init?(host: String, port: Int) {
        var storage = sockaddr_storage()
        let h = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, h, &v4) == 1 {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    $0.pointee.sin_family = sa_family_t(AF_INET)
                    $0.pointee.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
                    $0.pointee.sin_addr = v4
                }
            }
        } else if inet_pton(AF_INET6, h, &v6) == 1 {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    $0.pointee.sin6_family = sa_family_t(AF_INET6)
                    $0.pointee.sin6_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
                    $0.pointee.sin6_addr = v6
                }
            }
        } else {
            return nil
        }
        self.storage = storage
        self.host = Self.numericHost(storage)
    }

    var family: Int32 { Int32(storage.ss_family) }

    public var port: Int {
        var s = storage
        return withUnsafePointer(to: &s) { p -> Int in
            if family == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    private static func numericHost(_ storage: sockaddr_storage) -> String {
        var s = storage
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        withUnsafePointer(to: &s) { p in
            if Int32(storage.ss_family) == AF_INET6 {
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    var a = $0.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
                }
            } else {
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    var a = $0.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
                }
            }
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var s = storage
        let length = family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
        return withUnsafePointer(to: &s) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(length)) }
        }
    }
}
