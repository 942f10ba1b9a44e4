import Dispatch
import GatewayIO
#if canImport(Glibc)
import Glibc
#endif

/// One serial queue and everything it owns: its connections, a read buffer they share, the
/// cached `Date` header, and (wired by the gateway) its own Redis and upstream clients.
///
/// Every descriptor of the loop (client connections, and the Redis connections the gateway
/// gives ``readiness``) is in one epoll set behind one Dispatch read source. A Dispatch source
/// per connection cost, per request, a wake-up of a Dispatch worker thread, an `ioctl(FIONREAD)`
/// and two `epoll_ctl` re-arms (measured: most of the server's CPU went to scheduler switches);
/// one source per loop turns that into one wake-up per batch of ready descriptors, and no
/// syscall per request beyond the reads and the writes.
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
    /// The loop's epoll set: give it to the loop's Redis connections, so that their replies wake
    /// the loop with its clients' requests rather than a thread of their own.
    public let readiness: ReadinessSet
    private var sweepTimer: DispatchSourceTimer?
    private var cachedDate: (second: Int, value: String) = (0, "")

    init(index: Int, label: String) {
        self.index = index
        self.queue = DispatchQueue(label: "\(label).loop\(index)", qos: .userInitiated)
        self.readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        self.readiness = ReadinessSet(queue: queue)
        queue.setSpecific(key: key, value: ObjectIdentifier(self))
    }

    deinit {
        readBuffer.deallocate()
    }

    /// True when the caller runs on this loop's queue.
    public var inEventLoop: Bool { DispatchQueue.getSpecific(key: key) == ObjectIdentifier(self) }

    /// Runs `work` on this loop: inline when already there, otherwise queued.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        if inEventLoop {
            work()
        } else {
            queue.async(execute: work)
            // The loop may be waiting for Redis answers in epoll_wait: this work should not wait too.
            readiness.wakeUp()
        }
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
        guard let token = readiness.add(connection.fd, events: events, handler: connection) else { return nil }
        connections[token] = connection
        return token
    }

    func watch(_ connection: Connection, token: UInt64, events: UInt32) {
        readiness.modify(connection.fd, token: token, events: events)
    }

    /// Removes the connection; its socket must still be open (closing it is the caller's next step).
    func unregister(_ connection: Connection, token: UInt64) {
        readiness.remove(connection.fd, token: token)
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
