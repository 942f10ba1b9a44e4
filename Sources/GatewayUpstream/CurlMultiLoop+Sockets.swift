internal import CCurl
import Dispatch
import GatewayIO
#if canImport(Glibc)
import Glibc
#endif

/// Sockets: libcurl opens and closes connection sockets through our callbacks and tells us through
/// `CURLMOPT_SOCKETFUNCTION` what to wait for on each. Every socket is watched in the loop's epoll
/// set (``ReadinessSet``), with its clients and its Redis connections: an upstream answer wakes
/// the loop, not a Dispatch thread of its own.
///
/// - A connection socket (opened by ``openSocket(family:type:protocol:)``) leaves the epoll set on
///   `CURL_POLL_REMOVE` and stays open, because the connection stays in libcurl's keep-alive cache
///   and comes back (out of the set, a hang-up of the idle connection cannot wake us at every turn).
///   ``closeSocket(_:)`` takes it out of the set, then closes it.
/// - Any other socket (the threaded resolver's socket pair, which libcurl closes itself, without our
///   callback) is "foreign": the set watches a `dup` of it, which is closed on `CURL_POLL_REMOVE`. If
///   libcurl reuses the number of a foreign socket it closed before telling us,
///   ``openSocket(family:type:protocol:)`` drops the stale entry.
extension CurlMultiLoop {
    /// `CURLMOPT_SOCKETFUNCTION`.
    func socketCallback(fd: Int32, what: Int32) {
        if what == CURL_POLL_REMOVE {
            guard let watch = sockets[fd] else { return }
            if watch.kind == .connection {
                watch.update(read: false, write: false, loop: self)
            } else {
                sockets[fd] = nil
                watch.cancel()
            }
            return
        }
        let watch: SocketWatch
        if let existing = sockets[fd] {
            watch = existing
        } else {
            watch = SocketWatch(fd: fd, kind: .foreign)
            sockets[fd] = watch
        }
        watch.update(read: what & CURL_POLL_IN != 0, write: what & CURL_POLL_OUT != 0, loop: self)
    }

    /// `CURLOPT_OPENSOCKETFUNCTION`: the `socket()` call libcurl would make, close-on-exec.
    func openSocket(family: Int32, type: Int32, protocol proto: Int32) -> Int32 {
        let fd = Syscall.socket(family, type, proto)
        guard fd >= 0 else { return CURL_SOCKET_BAD }
        if let stale = sockets.removeValue(forKey: fd) {
            // The number belongs to the new socket now: stop watching, never close it.
            stale.cancel(closingConnection: false)
        }
        sockets[fd] = SocketWatch(fd: fd, kind: .connection)
        return fd
    }

    /// `CURLOPT_CLOSESOCKETFUNCTION`, also called by `curl_multi_cleanup` for cached connections.
    func closeSocket(_ fd: Int32) -> Int32 {
        guard let watch = sockets.removeValue(forKey: fd) else {
            Syscall.close(fd)
            return 0
        }
        if watch.kind == .connection {
            watch.cancel()  // out of the set, then closed
        } else {
            watch.cancel()  // closes only its dup
            Syscall.close(fd)
        }
        return 0
    }
}

/// One socket's place in the loop's epoll set.
final class SocketWatch: ReadinessHandler {
    enum Kind { case connection, foreign }

    let fd: Int32
    let kind: Kind
    /// The descriptor in the set: `fd` for a connection, a dup for a foreign socket (made when it
    /// is first watched).
    private var watchedFD: Int32 = -1
    private var token: UInt64?
    private var events: UInt32 = 0
    /// While in the set: the set holds the watch and the watch its loop, so the loop lives while a
    /// socket of it is watched (until ``cancel(closingConnection:)`` or ``update(read:write:loop:)``
    /// takes it out).
    private var loop: CurlMultiLoop?

    init(fd: Int32, kind: Kind) {
        self.fd = fd
        self.kind = kind
        if kind == .connection { watchedFD = fd }
    }

    /// Watches for what libcurl waits for: in the set while it waits for anything, out otherwise.
    func update(read: Bool, write: Bool, loop: CurlMultiLoop) {
        let wanted = (read ? Epoll.in : 0) | (write ? Epoll.out : 0)
        guard wanted != events || (wanted != 0 && token == nil) else { return }
        events = wanted
        if wanted == 0 {
            if let token { loop.readiness.remove(watchedFD, token: token) }
            token = nil
            self.loop = nil
        } else if let token {
            loop.readiness.modify(watchedFD, token: token, events: wanted)
        } else {
            token = loop.readiness.add(descriptor(), events: wanted, handler: self)
            self.loop = token == nil ? nil : loop
        }
    }

    func handle(events: UInt32) {
        guard let loop else { return }
        var action: Int32 = 0
        if events & (Epoll.in | Epoll.hup) != 0 { action |= CURL_CSELECT_IN }
        if events & Epoll.out != 0 { action |= CURL_CSELECT_OUT }
        if events & Epoll.err != 0 { action |= CURL_CSELECT_ERR }
        loop.socketAction(fd, action)
    }

    /// Leaves the set and closes the watched descriptor (a connection's fd, or a foreign socket's
    /// dup).
    ///
    /// - Parameter closingConnection: `false` leaves a connection's fd open (its number was reused).
    func cancel(closingConnection: Bool = true) {
        if let token, let loop { loop.readiness.remove(watchedFD, token: token) }
        token = nil
        events = 0
        loop = nil
        let closing: Int32 = kind == .connection ? (closingConnection ? watchedFD : -1) : (watchedFD != fd ? watchedFD : -1)
        if closing >= 0 { Syscall.close(closing) }
    }

    private func descriptor() -> Int32 {
        if watchedFD < 0 {
            let copy = Syscall.dup(fd)
            watchedFD = copy >= 0 ? copy : fd  // without a dup, watch fd itself and never close it
        }
        return watchedFD
    }
}

/// The few system calls of this module; each retries `EINTR` where that is right.
enum Syscall {
    /// The corresponding C function is `socket`; the descriptor is close-on-exec.
    static func socket(_ family: Int32, _ type: Int32, _ proto: Int32) -> Int32 {
        Glibc.socket(family, type | Int32(SOCK_CLOEXEC.rawValue), proto)
    }

    /// The corresponding C function is `dup` (`fcntl(F_DUPFD_CLOEXEC)`).
    static func dup(_ fd: Int32) -> Int32 {
        while true {
            let r = fcntl(fd, F_DUPFD_CLOEXEC, 0)
            if r < 0 && errno == EINTR { continue }
            return r
        }
    }

    /// The corresponding C function is `close`. Never retried: on Linux the descriptor is gone even
    /// when `close` reports `EINTR`.
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }
}

// MARK: - C callbacks

/// `CURLMOPT_SOCKETFUNCTION`.
func curlSocketCallback(
    _ easy: UnsafeMutableRawPointer?, _ fd: curl_socket_t, _ what: Int32,
    _ userp: UnsafeMutableRawPointer?, _ socketp: UnsafeMutableRawPointer?
) -> Int32 {
    Unmanaged<CurlMultiLoop>.fromOpaque(userp!).takeUnretainedValue().socketCallback(fd: fd, what: what)
    return 0
}

/// `CURLOPT_OPENSOCKETFUNCTION`.
func curlOpenSocketCallback(
    _ clientp: UnsafeMutableRawPointer?, _ purpose: curlsocktype, _ address: UnsafeMutablePointer<curl_sockaddr>?
) -> curl_socket_t {
    guard let address else { return CURL_SOCKET_BAD }
    return Unmanaged<CurlMultiLoop>.fromOpaque(clientp!).takeUnretainedValue().openSocket(
        family: address.pointee.family, type: address.pointee.socktype, protocol: address.pointee.protocol)
}

/// `CURLOPT_CLOSESOCKETFUNCTION`.
func curlCloseSocketCallback(_ clientp: UnsafeMutableRawPointer?, _ fd: curl_socket_t) -> Int32 {
    Unmanaged<CurlMultiLoop>.fromOpaque(clientp!).takeUnretainedValue().closeSocket(fd)
}
