internal import CCurl
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Sockets: libcurl opens and closes connection sockets through our callbacks and tells us through
/// `CURLMOPT_SOCKETFUNCTION` what to wait for on each.
///
/// - A connection socket (opened by ``openSocket(family:type:protocol:)``) gets lazily created read and
///   write sources; `CURL_POLL_REMOVE` only suspends them, because the connection stays in libcurl's
///   keep-alive cache and comes back. ``closeSocket(_:)`` cancels both sources and closes the fd in the
///   last cancel handler, so Dispatch never watches a closed (or reused) descriptor.
/// - Any other socket (the threaded resolver's socket pair, which libcurl closes itself, without our
///   callback) is "foreign": its sources watch a `dup` of it, are cancelled on `CURL_POLL_REMOVE`, and
///   the dup is closed in the last cancel handler. If libcurl reuses the number of a foreign socket it
///   closed before telling us, ``openSocket(family:type:protocol:)`` drops the stale entry.
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
            watch.cancel()  // closes fd once both sources are gone
        } else {
            watch.cancel()  // closes only its dup
            Syscall.close(fd)
        }
        return 0
    }
}

/// The read and write sources of one socket.
final class SocketWatch {
    enum Kind { case connection, foreign }

    let fd: Int32
    let kind: Kind
    /// The descriptor the sources watch: `fd` for a connection, a dup for a foreign socket (made with
    /// the first source).
    private var watchedFD: Int32 = -1
    private var readSource: DispatchSourceRead?
    private var writeSource: DispatchSourceWrite?
    private var readActive = false
    private var writeActive = false

    init(fd: Int32, kind: Kind) {
        self.fd = fd
        self.kind = kind
        if kind == .connection { watchedFD = fd }
    }

    /// Resumes or suspends the two sources to match what libcurl waits for, creating them lazily.
    func update(read: Bool, write: Bool, loop: CurlMultiLoop) {
        if read && !readActive {
            if readSource == nil {
                let source = DispatchSource.makeReadSource(fileDescriptor: descriptor(), queue: loop.queue)
                let fd = self.fd
                source.setEventHandler { loop.socketAction(fd, CURL_CSELECT_IN) }
                readSource = source
            }
            readSource!.resume()
            readActive = true
        } else if !read && readActive {
            readSource!.suspend()
            readActive = false
        }
        if write && !writeActive {
            if writeSource == nil {
                let source = DispatchSource.makeWriteSource(fileDescriptor: descriptor(), queue: loop.queue)
                let fd = self.fd
                source.setEventHandler { loop.socketAction(fd, CURL_CSELECT_OUT) }
                writeSource = source
            }
            writeSource!.resume()
            writeActive = true
        } else if !write && writeActive {
            writeSource!.suspend()
            writeActive = false
        }
    }

    /// Cancels both sources and closes the watched descriptor in the last cancel handler (a connection's
    /// fd, or a foreign socket's dup). A source is resumed after `cancel()` if it was suspended: its
    /// cancel handler runs only when resumed, and a suspended source must never be released.
    ///
    /// - Parameter closingConnection: `false` leaves a connection's fd open (its number was reused).
    func cancel(closingConnection: Bool = true) {
        let closing: Int32 = kind == .connection ? (closingConnection ? watchedFD : -1) : (watchedFD != fd ? watchedFD : -1)
        let sources: [(DispatchSourceProtocol, Bool)] =
            [readSource.map { ($0 as DispatchSourceProtocol, readActive) },
             writeSource.map { ($0 as DispatchSourceProtocol, writeActive) }].compactMap { $0 }
        readSource = nil
        writeSource = nil
        readActive = false
        writeActive = false
        guard !sources.isEmpty else {
            if closing >= 0 { Syscall.close(closing) }
            return
        }
        let remaining = Countdown(sources.count)
        for (source, active) in sources {
            source.setCancelHandler {
                if remaining.tick(), closing >= 0 { Syscall.close(closing) }
            }
            source.cancel()
            if !active { source.resume() }
        }
    }

    private func descriptor() -> Int32 {
        if watchedFD < 0 {
            let copy = Syscall.dup(fd)
            watchedFD = copy >= 0 ? copy : fd  // without a dup, watch fd itself and never close it
        }
        return watchedFD
    }
}

/// Counts cancel handlers down; touched only on the loop's queue.
private final class Countdown {
    private var left: Int
    init(_ count: Int) { left = count }
    /// - Returns: `true` for the last tick.
    func tick() -> Bool {
        left -= 1
        return left == 0
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
