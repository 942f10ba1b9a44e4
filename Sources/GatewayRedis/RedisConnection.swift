import Dispatch
import GatewayIO
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Redis client on one connection, in an epoll set on an owner queue (hiredis async API).
///
/// Made for one event loop: the connection belongs to a serial `queue`; every method must be called
/// on it, and every completion runs on it. There are no locks.
///
/// - Commands are binary-safe and pipelined: any number may be in flight; replies arrive in order.
/// - While no connection is ready, commands fail at once with ``RedisError/notConnected``; nothing
///   is queued for later.
/// - A command not answered within ``RedisConfiguration/commandTimeout`` fails with
///   ``RedisError/timeout``. Since a late reply could not be matched to its command, the whole
///   connection is then dropped: every command pending on it fails with `.timeout`.
/// - After ``start()``, the connection reconnects forever, with exponential backoff, until ``close()``.
///
/// A completion is never called before the method that took it returns, except by ``close()``.
/// Call ``close()`` before letting go of a started connection: until then the connection keeps
/// itself alive.
///
/// The process must not die of `SIGPIPE` (hiredis writes with `write(2)`): ``start()`` sets it to
/// ignored, as every server should.
public final class RedisConnection: @unchecked Sendable {
    public let configuration: RedisConfiguration
    /// The serial queue that owns this connection.
    public let queue: DispatchQueue
    /// The epoll set its socket is watched in: the owning event loop's, or one of its own.
    private let readiness: ReadinessSet

    private enum State {
        /// Before ``start()``.
        case idle
        /// TCP connect and handshake (`AUTH`, `SELECT` or `PING`) under way.
        case connecting(HiredisContext, deadline: UInt64)
        /// Handshake answered; user commands are written.
        case ready(HiredisContext)
        /// Waiting to try again.
        case waiting(until: UInt64)
        case closed
    }

    private var state: State = .idle
    private var backoff: ReconnectBackoff
    private let logger: Logger
    private let arguments = CommandArguments()
    private let commandTimeout: UInt64
    private let connectTimeout: UInt64
    /// One timer for the connection: connect deadline, oldest command's deadline, or reconnect time.
    private let timer: DispatchSourceTimer
    /// When the timer is set to fire (uptime ns), or nil when it is idle.
    private var timerDeadline: UInt64?
    /// Told of each reply's round trip (the metrics); set before ``start()``.
    public var commandObserver: (any RedisCommandObserver)?

    /// Creates a connection; nothing happens until ``start()``.
    ///
    /// - Parameters:
    ///   - configuration: where to connect, timeouts, backoff.
    ///   - queue: the serial queue that owns the connection; all calls and completions happen on it.
    ///   - readiness: the owning event loop's epoll set (on `queue`), so that replies are read in
    ///     the loop's own wake-ups and commands flushed at the end of its batches. Default: a set of
    ///     the connection's own.
    ///   - logger: receives connection state changes (never per-command lines). Default: discards.
    public init(
        configuration: RedisConfiguration,
        queue: DispatchQueue,
        readiness: ReadinessSet? = nil,
        logger: Logger = Logger(label: "gateway.redis", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        precondition(readiness.map { $0.queue === queue } ?? true, "a Redis connection's epoll set must be on its queue")
        self.configuration = configuration
        self.queue = queue
        self.readiness = readiness ?? ReadinessSet(queue: queue)
        var logger = logger
        logger[metadataKey: "redis.address"] = "\(configuration.address)"
        self.logger = logger
        self.commandTimeout = max(1, configuration.commandTimeout.clampedNanoseconds)
        self.connectTimeout = max(1, configuration.connectTimeout.clampedNanoseconds)
        self.backoff = ReconnectBackoff(
            minimum: max(1_000_000, configuration.reconnectBackoffMin.clampedNanoseconds),
            maximum: configuration.reconnectBackoffMax.clampedNanoseconds
        )
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { [weak self] in self?.timerFired() }
        timer.resume()  // resumed once and for all: a never-resumed source must not be released
    }

    deinit {
        timer.cancel()
    }

    // MARK: Public API

    /// Starts connecting; reconnects forever with backoff until ``close()``. Does nothing if already
    /// started or closed.
    public func start() {
        assertOnQueue()
        guard case .idle = state else { return }
        _ = ignoreSIGPIPEOnce
        connect()
    }

    /// Whether a connection is ready: commands sent now are written to Redis.
    public var isConnected: Bool {
        assertOnQueue()
        if case .ready = state { return true }
        return false
    }

    /// Why the connection is not ready, after it failed at least once (refused connect, `AUTH`
    /// refused, connection lost); nil while ready and before the first failure. For `/readyz`.
    public var lastFailure: String? {
        assertOnQueue()
        return failure
    }
    private var failure: String?

    /// Commands written and not yet answered.
    public var pendingCommandCount: Int {
        assertOnQueue()
        switch state {
        case .connecting(let context, _), .ready(let context): return context.pending.count
        case .idle, .waiting, .closed: return 0
        }
    }

    /// Sends a command given as binary-safe arguments, e.g. `[Array("INCR".utf8), key]`.
    ///
    /// A top-level error reply completes with `.failure(.server(message))`. Commands that change the
    /// connection's protocol state (`SUBSCRIBE` and friends, `MONITOR`, `HELLO`, `RESET`) are refused
    /// with ``RedisError/invalidCommand(_:)``; blocking commands longer than the command timeout
    /// time out like any other.
    public func send(_ args: [[UInt8]], completion: @escaping (Result<RedisReply, RedisError>) -> Void) {
        assertOnQueue()
        arguments.reset()
        for arg in args { arguments.append(arg) }
        if let refusal = Self.refusal(of: arguments) {
            failLater(.reply(completion), refusal)
            return
        }
        write(.reply(completion))
    }

    /// `GET key`: the value, or `nil` when the key does not exist.
    public func get(_ key: [UInt8], completion: @escaping (Result<[UInt8]?, RedisError>) -> Void) {
        assertOnQueue()
        arguments.reset()
        arguments.append("GET")
        arguments.append(key)
        write(.bulkString(completion))
    }

    /// `SET key value PX ttlMilliseconds`.
    ///
    /// - Parameter ttlMilliseconds: time to live, at least 1; otherwise the command fails with
    ///   ``RedisError/invalidCommand(_:)`` without being sent.
    public func set(
        _ key: [UInt8], _ value: [UInt8], ttlMilliseconds: Int,
        completion: @escaping (Result<Void, RedisError>) -> Void
    ) {
        assertOnQueue()
        guard ttlMilliseconds > 0 else {
            failLater(.ok(completion), .invalidCommand("TTL must be at least 1 ms, got \(ttlMilliseconds)"))
            return
        }
        arguments.reset()
        arguments.append("SET")
        arguments.append(key)
        arguments.append(value)
        arguments.append("PX")
        arguments.append(decimal: ttlMilliseconds)
        write(.ok(completion))
    }

    /// Closes the connection and stops reconnecting. Every pending command fails with
    /// ``RedisError/closed`` before this returns (when called from inside a completion: right after
    /// that completion returns). Later commands fail with `.closed`. Idempotent.
    public func close() {
        assertOnQueue()
        let previous = state
        state = .closed
        timer.cancel()
        timerDeadline = nil
        switch previous {
        case .connecting(let context, _), .ready(let context):
            logger.info("redis.closed")
            context.abort(with: .closed)
        case .idle, .waiting, .closed:
            break
        }
    }

    /// A caller's command got its reply: its round trip is the time since it was written, which is
    /// its deadline less the command timeout.
    func contextDidReply(to command: PendingCommand) {
        guard let commandObserver else { return }
        let kind: RedisCommandKind
        switch command.completion {
        case .bulkString: kind = .get
        case .ok: kind = .set
        case .reply, .handshake: kind = .other
        }
        let written = command.deadline &- commandTimeout
        commandObserver.redisReplied(kind, nanoseconds: DispatchTime.now().uptimeNanoseconds &- written)
    }

    // MARK: Writing commands

    /// Writes the command in `arguments`, or fails it on the next turn of the queue.
    private func write(_ completion: PendingCommand.Completion) {
        guard case .ready(let context) = state else {
            if case .closed = state { failLater(completion, .closed) } else { failLater(completion, .notConnected) }
            return
        }
        let deadline = DispatchTime.now().uptimeNanoseconds &+ commandTimeout
        guard context.enqueue(arguments, PendingCommand(deadline: deadline, completion: completion)) else {
            failLater(completion, .notConnected)
            return
        }
        // The timer always fires no later than the oldest pending command's deadline; it only needs
        // setting when this command is the only one pending.
        if timerDeadline.map({ $0 > deadline }) ?? true { armTimer(at: deadline) }
    }

    /// Completes on the next turn of the queue, so that no completion runs inside the call that took it.
    private func failLater(_ completion: PendingCommand.Completion, _ error: RedisError) {
        let box = UncheckedSendable(completion)
        queue.async { box.value.fail(error) }
    }

    /// hiredis 0.14 matches one reply to each command; these change what the server sends back
    /// (push messages, a different protocol) or undo the handshake.
    private static let refusedCommands: [StaticString] = [
        "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
        "MONITOR", "HELLO", "RESET",
    ]

    private static func refusal(of arguments: CommandArguments) -> RedisError? {
        if arguments.count == 0 { return .invalidCommand("no arguments") }
        for name in refusedCommands where arguments.firstArgumentEquals(name) {
            return .invalidCommand("\(name) is not supported on a shared connection")
        }
        return nil
    }

    // MARK: Connecting (the rest of the state machine)

    private func connect() {
        switch HiredisContext.connect(owner: self, configuration: configuration, readiness: readiness) {
        case .failure(let failure):
            connectFailed(reason: failure.reason)
        case .success(let context):
            let deadline = DispatchTime.now().uptimeNanoseconds &+ connectTimeout
            state = .connecting(context, deadline: deadline)
            armTimer(at: deadline)
        }
    }

    /// TCP connected: send the handshake. Called inside hiredis's onConnect.
    func contextDidConnect(_ context: HiredisContext) {
        guard case .connecting(let current, let deadline) = state, current === context else { return }
        if let password = configuration.password {
            arguments.reset()
            arguments.append("AUTH")
            if let username = configuration.username { arguments.append(Array(username.utf8)) }
            arguments.append(Array(password.utf8))
            _ = context.enqueue(arguments, PendingCommand(deadline: deadline, completion: .handshake(isLast: false)))
        }
        if configuration.database != 0 {
            arguments.reset()
            arguments.append("SELECT")
            arguments.append(decimal: configuration.database)
            _ = context.enqueue(arguments, PendingCommand(deadline: deadline, completion: .handshake(isLast: false)))
        }
        // The last step proves the server answers (a paused server still completes TCP connects).
        arguments.reset()
        arguments.append("PING")
        // When the context is already ending, hiredis tells us through contextDidEnd.
        _ = context.enqueue(arguments, PendingCommand(deadline: deadline, completion: .handshake(isLast: true)))
    }

    /// The handshake's last reply arrived: commands may be written.
    func contextBecameReady(_ context: HiredisContext) {
        guard case .connecting(let current, _) = state, current === context else { return }
        state = .ready(context)
        failure = nil
        backoff.reset()
        logger.info("redis.connected")
    }

    /// `AUTH` or `SELECT` was refused: drop the connection and try again later. Retrying goes on
    /// (the server's settings may be fixed meanwhile), but the line is logged once a minute.
    func contextHandshakeFailed(_ context: HiredisContext, message: String) {
        guard case .connecting(let current, _) = state, current === context else { return }
        HandshakeRefusalLog.shared.log(.server(message), address: configuration.address, connection: "cache", logger: logger)
        failure = "handshake refused: \(message)"
        scheduleReconnect()
        context.abort(with: .disconnected)
    }

    /// hiredis ended the context on its own: refused or failed connect, EOF, I/O error.
    func contextDidEnd(_ context: HiredisContext, reason: String?) {
        switch state {
        case .connecting(let current, _) where current === context:
            connectFailed(reason: reason ?? "connection closed")
        case .ready(let current) where current === context:
            logger.warning("redis.connection_lost", metadata: ["redis.error": "\(reason ?? "connection closed")"])
            failure = "connection lost: \(reason ?? "connection closed")"
            scheduleReconnect()
        default:
            break  // a context we already left
        }
    }

    private func connectFailed(reason: String) {
        failure = "connect failed: \(reason)"
        // Loud on the first failure of a series, quiet while Redis stays away.
        if backoff.failures == 0 {
            logger.warning("redis.connect_failed", metadata: ["redis.error": "\(reason)"])
        } else {
            logger.debug("redis.connect_failed", metadata: ["redis.error": "\(reason)"])
        }
        scheduleReconnect()
    }

    private func scheduleReconnect() {
        let delay = backoff.nextDelay()
        let until = DispatchTime.now().uptimeNanoseconds &+ delay
        state = .waiting(until: until)
        armTimer(at: until)
        logger.trace("redis.reconnect_scheduled", metadata: ["redis.retry_in_ms": "\(delay / 1_000_000)"])
    }

    // MARK: Timer

    private func armTimer(at deadline: UInt64) {
        timerDeadline = deadline
        timer.schedule(deadline: DispatchTime(uptimeNanoseconds: deadline), leeway: .milliseconds(1))
    }

    private func timerFired() {
        timerDeadline = nil
        let now = DispatchTime.now().uptimeNanoseconds
        switch state {
        case .connecting(let context, let deadline):
            if now >= deadline {
                connectFailed(reason: "connect timeout")  // moves state on first
                context.abort(with: .timeout)
            } else {
                armTimer(at: deadline)
            }
        case .ready(let context):
            guard var oldest = context.pending.first?.deadline else { return }
            if now >= oldest {
                // An answer that is already here is not late: a loop busy with a long batch (or a
                // stalled machine) can fire this timer before it reads the socket again.
                context.readWhatHasArrived()
                guard case .ready(let current) = state, current === context else { return }
                guard let next = context.pending.first?.deadline else { return }
                oldest = next
            }
            if now >= oldest {
                logger.warning(
                    "redis.command_timeout",
                    metadata: ["redis.pending": "\(context.pending.count)"]
                )
                scheduleReconnect()  // moves state on first: completions see .waiting
                context.abort(with: .timeout)
            } else {
                armTimer(at: oldest)
            }
        case .waiting(let until):
            if now >= until { connect() } else { armTimer(at: until) }
        case .idle, .closed:
            break
        }
    }

    @inline(__always)
    private func assertOnQueue() {
        #if DEBUG
        dispatchPrecondition(condition: .onQueue(queue))
        #endif
    }
}

/// Carries a value across `queue.async` to the same queue it came from.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// hiredis writes with `write(2)`: a write to a closed peer must fail with EPIPE, not kill the process.
private let ignoreSIGPIPEOnce: Void = {
    _ = signal(SIGPIPE, SIG_IGN)
}()
