internal import CEpoll
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// One serial queue and everything it owns: its connections, a read buffer they share, the
/// cached `Date` header, and (wired by the gateway) its own Redis and upstream clients.
///
/// Connections are watched by one epoll set per loop, and that set by one Dispatch read source.
/// A Dispatch source per connection costs, per request, a wake-up of a Dispatch worker thread,
/// an `ioctl(FIONREAD)` and two `epoll_ctl` re-arms (measured: most of the server's CPU went to
/// scheduler switches); one source per loop turns that into one wake-up per batch of ready
/// connections, and no syscall per request beyond the read and the write.
///
/// Every property is touched only on `queue`; the class is `@unchecked Sendable` because
/// Dispatch, not the compiler, enforces that confinement.
public final class EventLoop: @unchecked Sendable {
    public let index: Int
    public let queue: DispatchQueue
    private let key = DispatchSpecificKey<ObjectIdentifier>()

    /// Shared by all connections on this loop: a read is consumed before the next one starts.
    let readBuffer: UnsafeMutableRawBufferPointer
    var connections: [UInt64: Connection] = [:]
    private var nextToken: UInt64 = 1
    private let epollFD: Int32
    private var epollSource: DispatchSourceRead?
    private let readyTokens = UnsafeMutablePointer<UInt64>.allocate(capacity: 256)
    private let readyEvents = UnsafeMutablePointer<UInt32>.allocate(capacity: 256)
    private var sweepTimer: DispatchSourceTimer?
    private var cachedDate: (second: Int, value: String) = (0, "")

    init(index: Int, label: String) {
        self.index = index
        self.queue = DispatchQueue(label: "\(label).loop\(index)", qos: .userInitiated)
        self.readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        self.epollFD = cg_epoll_create()
        precondition(epollFD >= 0, "epoll_create1 failed: errno \(errno)")
        queue.setSpecific(key: key, value: ObjectIdentifier(self))
        let source = DispatchSource.makeReadSource(fileDescriptor: epollFD, queue: queue)
        source.setEventHandler { [unowned self] in self.pollReady() }
        source.resume()
        epollSource = source
    }

    deinit {
        epollSource?.cancel()
        readBuffer.deallocate()
        readyTokens.deallocate()
        readyEvents.deallocate()
        Syscall.close(epollFD)
    }

    /// Handles every ready connection, in batches, without blocking.
    private func pollReady() {
        while true {
            let n = Int(cg_epoll_wait(epollFD, readyTokens, readyEvents, 256, 0))
            guard n > 0 else { return }
            for i in 0..<n {
                // A connection closed earlier in this batch is gone from the table: skip it.
                guard let connection = connections[readyTokens[i]] else { continue }
                connection.handle(events: readyEvents[i])
            }
            if n < 256 { return }
        }
    }

    /// True when the caller runs on this loop's queue.
    public var inEventLoop: Bool { DispatchQueue.getSpecific(key: key) == ObjectIdentifier(self) }

    /// Runs `work` on this loop: inline when already there, otherwise queued.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        if inEventLoop { work() } else { queue.async(execute: work) }
    }

    public func assertInEventLoop() {
        dispatchPrecondition(condition: .onQueue(queue))
    }

    /// Starts the timer that enforces connection timeouts; `interval` bounds their precision.
    func startSweeping(interval: DispatchTimeInterval) {
        queue.async { [self] in
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(5))
            timer.setEventHandler { [unowned self] in self.sweep() }
            timer.resume()
            sweepTimer = timer
        }
    }

    func stopSweeping() {
        assertInEventLoop()
        sweepTimer?.cancel()
        sweepTimer = nil
    }

    private func sweep() {
        let now = DispatchTime.now().uptimeNanoseconds
        // Collect first: closing mutates `connections`.
        var expired: [Connection] = []
        for connection in connections.values where connection.isExpired(now: now) {
            expired.append(connection)
        }
        for connection in expired { connection.timedOut() }
    }

    /// Adds the connection to the table and its socket to the epoll set; returns its token.
    func register(_ connection: Connection, events: UInt32) -> UInt64? {
        let token = nextToken
        nextToken += 1
        guard cg_epoll_add(epollFD, connection.fd, events, token) == 0 else { return nil }
        connections[token] = connection
        return token
    }

    func watch(_ connection: Connection, token: UInt64, events: UInt32) {
        _ = cg_epoll_modify(epollFD, connection.fd, events, token)
    }

    /// Removes the connection; its socket must still be open (closing it is the caller's next step).
    func unregister(_ connection: Connection, token: UInt64) {
        _ = cg_epoll_remove(epollFD, connection.fd)
        connections.removeValue(forKey: token)
    }

    /// The IMF-fixdate for the current second (RFC 9110 §5.6.7), formatted once per second.
    var httpDate: String {
        var now = time(nil)
        if now == cachedDate.second { return cachedDate.value }
        var tm = tm()
        gmtime_r(&now, &tm)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let value = "\(days[Int(tm.tm_wday)]), \(two(tm.tm_mday)) \(months[Int(tm.tm_mon)]) \(tm.tm_year + 1900) "
            + "\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)) GMT"
        cachedDate = (now, value)
        return value
    }
}
