import CLoadGen
#if canImport(Glibc)
import Glibc
#endif

/// Every system call the generator makes, in one place: `errno` is read at once and `EINTR`
/// retried, so the engine never touches either.
enum Sys {
    enum IO {
        case bytes(Int)
        case wouldBlock
        case eof
        case failed(Int32)
    }

    enum Connect {
        /// Connected at once (it happens on loopback).
        case connected
        /// Wait for the socket to become writable, then ask ``connectError(_:)``.
        case inProgress
        case failed(Int32)
    }

    /// The monotonic clock in nanoseconds (`clock_gettime(CLOCK_MONOTONIC)`, a vDSO call).
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// Resolves `host` once (`getaddrinfo`, numeric or a name), first address wins.
    static func resolve(host: String, port: Int) throws(LoadError) -> SocketAddress {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(bare, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw LoadError("cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var address = SocketAddress()
        withUnsafeMutableBytes(of: &address.storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(first.pointee.ai_addrlen)))
        }
        address.length = first.pointee.ai_addrlen
        return address
    }

    /// A non-blocking TCP socket with Nagle off, connecting to `address` (`socket` + `connect`).
    static func connect(to address: SocketAddress) -> (fd: Int32, Connect) {
        let fd = lg_socket_nonblocking(Int32(address.storage.ss_family))
        if fd < 0 { return (-1, .failed(errno)) }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = address.storage
        while true {
            let rc = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
            }
            if rc == 0 { return (fd, .connected) }
            switch errno {
            case EINTR: continue
            case EINPROGRESS: return (fd, .inProgress)
            default: return (fd, .failed(errno))
            }
        }
    }

    /// The outcome of a connect that was in progress (`getsockopt(SO_ERROR)`); 0 when connected.
    static func connectError(_ fd: Int32) -> Int32 {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0 { return errno }
        return error
    }

    /// `send` with `MSG_NOSIGNAL` (a closed peer is an error, not a SIGPIPE).
    @inline(__always)
    static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> IO {
        while true {
            let n = Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .bytes(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(errno)
            }
        }
    }

    @inline(__always)
    static func recv(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> IO {
        while true {
            let n = Glibc.recv(fd, buffer.baseAddress, buffer.count, 0)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .eof }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: return .failed(errno)
            }
        }
    }

    /// Closes a socket. `abort` resets it (`SO_LINGER` 0) instead of the orderly close, so that
    /// connections we give up on (timeouts, errors) leave no TIME_WAIT behind to use up ports.
    static func close(_ fd: Int32, abort: Bool = false) {
        if abort {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        // Linux closes the descriptor even when close reports EINTR: never retry.
        _ = Glibc.close(fd)
    }

    static func errorName(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Raises the soft limit on open files to `needed` (at most the hard limit), so that a run
    /// with many connections does not fail on the common default of 1024 (`setrlimit`).
    static func raiseOpenFileLimit(to needed: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(needed) else { return }
        limit.rlim_cur = Swift.min(limit.rlim_max, rlim_t(needed))
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// A resolved socket address.
struct SocketAddress: Sendable {
    var storage = sockaddr_storage()
    var length = socklen_t(0)
}

/// An epoll instance (the C shim keeps `struct epoll_event`, which is packed, out of Swift).
struct Epoll {
    let fd: Int32
    private let events: UnsafeMutablePointer<lg_event>
    let capacity = 256

    init() throws(LoadError) {
        fd = lg_epoll_create()
        if fd < 0 { throw LoadError("epoll_create1 failed: \(Sys.errorName(errno))") }
        events = .allocate(capacity: capacity)
    }

    func close() {
        Glibc.close(fd)
        events.deallocate()
    }

    /// Registers `socket` for `interest` (`LG_EV_*` bits), level-triggered (`epoll_ctl(ADD)`).
    func add(_ socket: Int32, interest: UInt32, data: UInt64) {
        _ = lg_epoll_add(fd, socket, interest, data)
    }

    /// `epoll_ctl(MOD)`.
    func modify(_ socket: Int32, interest: UInt32, data: UInt64) {
        _ = lg_epoll_modify(fd, socket, interest, data)
    }

    /// Waits up to `timeoutNanoseconds` and returns the ready events (valid until the next wait).
    func wait(timeoutNanoseconds: Int64) -> UnsafeBufferPointer<lg_event> {
        let n = lg_epoll_wait(fd, events, Int32(capacity), timeoutNanoseconds)
        return UnsafeBufferPointer(start: events, count: n > 0 ? Int(n) : 0)
    }
}
