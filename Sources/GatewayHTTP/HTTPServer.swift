import Dispatch
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the server needs to know; defaults and units documented on each field.
public struct HTTPServerConfiguration: Sendable {
    /// Host to bind: numeric (`127.0.0.1`, `0.0.0.0`, `::1`, `::`) or a name resolved at
    /// ``HTTPServer/start()`` (see ``SocketAddress/resolve(host:port:)``).
    public var host: String = "127.0.0.1"
    /// Port to bind; 0 picks a free one (see `HTTPServer.localAddress`).
    public var port: Int = 8080
    /// Serial event loops; each connection stays on one.
    public var eventLoops: Int = 2
    /// Open client connections at once; beyond it new ones get a 503 and are closed.
    public var maxConnections: Int = 10_000
    /// Requests on one connection before the server answers with `Connection: close`.
    public var maxRequestsPerConnection: Int = 10_000
    /// The whole request head must arrive within this, counted from its first byte (slowloris defence).
    public var headerTimeout: Duration = .seconds(10)
    /// A keep-alive connection with no request in progress is closed after this. Also bounds how
    /// long a response may wait for the client to read it.
    public var idleTimeout: Duration = .seconds(60)
    /// Longest gap between two reads of a request body.
    public var bodyTimeout: Duration = .seconds(30)
    public var parserLimits = HTTPParserLimits()
    /// listen(2) backlog.
    public var backlog: Int32 = 1024

    public init() {}
}

/// Context of one request, valid on its event loop.
public struct HTTPRequestContext: Sendable {
    /// The loop the connection lives on; the handler may keep per-loop state keyed by `loop.index`.
    public let loop: EventLoop
    /// The client's address (for `X-Forwarded-For`).
    public let peer: SocketAddress
}

/// Answers one request. Call it exactly once, from any thread; later calls are ignored, and so
/// are calls after the client went away.
public struct HTTPResponder: Sendable {
    let connection: Connection
    let sequence: Int

    public func respond(_ response: HTTPResponse) {
        let connection = self.connection
        let sequence = self.sequence
        connection.loop.execute { connection.complete(sequence: sequence, response: response) }
    }
}

/// Handles requests. `handle` is called on the connection's event loop and must not block it.
public protocol HTTPHandler: Sendable {
    func handle(_ request: HTTPRequest, context: HTTPRequestContext, responder: HTTPResponder)
    /// The connection answered a request it could not parse (400, 413, 414, 431, 501, 505...)
    /// itself, before any `handle`; called on its event loop, for the handler's log and metrics.
    /// `reason` is the parser's fixed text, never bytes of the request (they may hold credentials).
    func rejected(status: Int, reason: String, context: HTTPRequestContext)
}

extension HTTPHandler {
    public func rejected(status: Int, reason: String, context: HTTPRequestContext) {}
}

/// The HTTP/1.1 server: a non-blocking listener and a fixed set of event loops.
public final class HTTPServer: @unchecked Sendable {
    public let configuration: HTTPServerConfiguration
    let handler: any HTTPHandler
    public let loops: [EventLoop]
    let logger: Logger

    private let openConnections = Atomic<Int>(0)
    private let draining = Atomic<Bool>(false)
    private let acceptLoop: EventLoop
    // Touched only on `acceptLoop.queue`.
    private var listenFD: Int32 = -1
    private var listenSource: DispatchSourceRead?
    private var nextLoop = 0
    /// Out of descriptors, the listener is suspended for a moment instead of failing `accept` in
    /// a busy loop (its read source is level-triggered and fires again at once).
    private var acceptPaused = false
    /// Held open to be closed when descriptors run out, so one more client can be accepted and
    /// told 503 instead of waiting unanswered; -1 while it cannot be re-opened.
    private var reserveFD: Int32 = -1
    /// Uptime of the last accept-failure warning; they are rate-limited.
    private var lastAcceptWarning: UInt64?
    private var drainWaiters: [@Sendable () -> Void] = []
    public private(set) var localAddress: SocketAddress?

    /// - Parameters:
    ///   - logger: For what the server cannot tell a client: accept failures (rate-limited).
    public init(
        configuration: HTTPServerConfiguration, handler: any HTTPHandler,
        logger: Logger = Logger(label: "gateway.http", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
        let count = max(1, configuration.eventLoops)
        self.loops = (0..<count).map { EventLoop(index: $0, label: "gateway") }
        self.acceptLoop = loops[0]
    }

    /// The number of open client connections.
    public var connectionCount: Int { openConnections.load(ordering: .relaxed) }
    var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Binds, listens and starts accepting. Throws if the address cannot be bound.
    public func start() throws(SystemError) {
        let address = try SocketAddress.resolve(host: configuration.host, port: configuration.port)
        let fd = try Syscall.socket(family: address.family)
        do throws(SystemError) {
            try Syscall.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
            try Syscall.setNonBlocking(fd)
            try Syscall.bind(fd, address: address)
            try Syscall.listen(fd, backlog: configuration.backlog)
            localAddress = try Syscall.localAddress(fd)
        } catch {
            Syscall.close(fd)
            throw error
        }
        let tick = Self.sweepInterval(configuration)
        for loop in loops { loop.startSweeping(interval: tick) }
        acceptLoop.queue.sync {
            listenFD = fd
            reserveFD = Syscall.openReserveDescriptor()
            let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: acceptLoop.queue)
            source.setEventHandler { [unowned self] in self.acceptAll() }
            source.setCancelHandler { Syscall.close(fd) }
            source.resume()
            listenSource = source
        }
    }

    /// Timeouts are checked by a periodic sweep; a quarter of the shortest one keeps them precise.
    static func sweepInterval(_ c: HTTPServerConfiguration) -> DispatchTimeInterval {
        let shortest = min(c.headerTimeout, c.idleTimeout, c.bodyTimeout).nanoseconds
        let tick = min(max(shortest / 4, 10_000_000), 1_000_000_000)
        return .nanoseconds(Int(tick))
    }

    private func acceptAll() {
        while true {
            let accepted: (fd: Int32, peer: SocketAddress)?
            do throws(SystemError) {
                accepted = try Syscall.accept(listenFD)
            } catch {
                acceptFailed(error)
                return
            }
            guard let (fd, peer) = accepted else { return }
            if openConnections.load(ordering: .relaxed) >= configuration.maxConnections || isDraining {
                refuse(fd)
                continue
            }
            openConnections.add(1, ordering: .relaxed)
            try? Syscall.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
            let loop = loops[nextLoop]
            nextLoop = (nextLoop + 1) % loops.count
            loop.execute { [self] in
                Connection(fd: fd, peer: peer, loop: loop, server: self).start()
            }
        }
    }

    /// Over the connection limit: a short 503, best effort, and close. The others keep being served.
    private func refuse(_ fd: Int32, reason: String = "too many connections") {
        let response = Array(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: \(reason.utf8.count)\r\nConnection: close\r\nRetry-After: 1\r\n\r\n\(reason)".utf8)
        _ = response.withUnsafeBytes { Syscall.write(fd, $0) }
        Syscall.shutdownWrite(fd)
        Syscall.close(fd)
    }

    /// What nginx and libuv do when `accept` fails: out of descriptors, spend the reserve one to
    /// tell the waiting clients 503 rather than leave them hanging; in every case say so (at most
    /// once per `acceptWarningInterval`) and stop accepting for `acceptPauseMilliseconds`, as the
    /// listening socket stays readable and would otherwise spin the loop.
    private func acceptFailed(_ error: SystemError) {
        let outOfDescriptors = error.errno == EMFILE || error.errno == ENFILE
        var refused = 0
        if outOfDescriptors && reserveFD >= 0 {
            Syscall.close(reserveFD)
            reserveFD = -1
            // Each refused client gives its descriptor back before the next accept; bounded so a
            // flood cannot hold the loop.
            while refused < 64, let (fd, _) = (try? Syscall.accept(listenFD)) ?? nil {
                refuse(fd, reason: "server out of file descriptors")
                refused += 1
            }
            reserveFD = Syscall.openReserveDescriptor()
        }
        let now = DispatchTime.now().uptimeNanoseconds
        if lastAcceptWarning.map({ now - $0 >= Self.acceptWarningInterval }) ?? true {
            lastAcceptWarning = now
            let limit = Syscall.openFileLimit().soft
            logger.warning(
                outOfDescriptors ? "out of file descriptors, answering 503 and pausing accepts" : "accept failed, pausing accepts",
                metadata: [
                    "error": "\(error)",
                    "fd.limit": "\(limit == Int.max ? "unlimited" : "\(limit)")",
                    "connections.open": "\(connectionCount)",
                    "connections.refused": "\(refused)",
                    "pause_ms": "\(Self.acceptPauseMilliseconds)",
                ])
        }
        pauseAccepting()
    }

    static let acceptPauseMilliseconds = 100
    static let acceptWarningInterval: UInt64 = 10_000_000_000

    private func pauseAccepting() {
        guard !acceptPaused, let listenSource else { return }
        acceptPaused = true
        listenSource.suspend()
        acceptLoop.queue.asyncAfter(deadline: .now() + .milliseconds(Self.acceptPauseMilliseconds)) { [self] in
            resumeAccepting()
        }
    }

    private func resumeAccepting() {
        guard acceptPaused else { return }
        acceptPaused = false
        if reserveFD < 0 { reserveFD = Syscall.openReserveDescriptor() }
        listenSource?.resume()
    }

    func connectionClosed(_ connection: Connection) {
        let left = openConnections.subtract(1, ordering: .relaxed).newValue
        if left == 0 && isDraining { notifyDrained() }
    }

    /// Stops accepting, lets in-flight requests finish and closes idle connections; calls
    /// `completion` once every connection is gone or `timeout` has passed (then the rest are closed).
    public func shutdown(drainTimeout timeout: Duration, completion: @escaping @Sendable () -> Void) {
        acceptLoop.queue.async { [self] in
            draining.store(true, ordering: .relaxed)
            listenSource?.cancel()
            // A suspended source must be resumed to be released (libdispatch traps otherwise).
            if acceptPaused { listenSource?.resume() }
            acceptPaused = false
            listenSource = nil
            if reserveFD >= 0 { Syscall.close(reserveFD) }
            reserveFD = -1
            drainWaiters.append(completion)
            for loop in loops {
                loop.execute {
                    for connection in Array(loop.connections.values) { connection.drain() }
                }
            }
            if openConnections.load(ordering: .relaxed) == 0 { notifyDrained() }
            acceptLoop.queue.asyncAfter(deadline: .now() + .nanoseconds(Int(timeout.nanoseconds))) { [self] in
                guard !drainWaiters.isEmpty else { return }
                for loop in loops {
                    loop.execute {
                        for connection in Array(loop.connections.values) { connection.close() }
                    }
                }
                // Closing is asynchronous per loop; report once those closes ran.
                let group = DispatchGroup()
                for loop in loops { loop.queue.async(group: group) {} }
                group.notify(queue: acceptLoop.queue) { self.notifyDrained() }
            }
        }
    }

    private func notifyDrained() {
        acceptLoop.execute { [self] in
            let waiters = drainWaiters
            drainWaiters.removeAll()
            for loop in loops { loop.execute { loop.stopSweeping() } }
            for waiter in waiters { waiter() }
        }
    }
}
