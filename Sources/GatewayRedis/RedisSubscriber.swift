import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Listens on one Redis pub/sub channel and hands every message to `onMessage`.
///
/// A subscribed connection can do nothing else, and messages arrive one at a time and rarely, so
/// this is hiredis's plain blocking API on a thread of its own rather than a second state machine
/// on an event loop. It reconnects (and subscribes again) with the same backoff as
/// ``RedisConnection`` until ``stop()``.
///
/// Liveness (see ``RedisLiveness``): after `pingInterval` without a message it sends `PING`; when
/// that (or any reply) is not answered within `replyTimeout`, it logs one warning, drops the
/// connection and subscribes again on a new one. A silent partition is so noticed within about
/// `pingInterval + replyTimeout` (7 s by default) instead of TCP's ~15 minutes.
///
/// Messages published while it is not subscribed are lost: that is pub/sub's contract. So every
/// subscription after the first calls `onResubscribe`, and whoever keeps cached state derived
/// from the channel must treat it as "some invalidations may have been missed" (the gateway clears
/// its in-process tier); Redis entries still have a TTL.
public final class RedisSubscriber: Sendable {
    public let configuration: RedisConfiguration
    public let channel: String
    public let liveness: RedisLiveness
    /// Sent on each new connection before `SUBSCRIBE` (tracking's `CLIENT ID` and
    /// `CLIENT TRACKING`); a failure drops the connection and tries again after the backoff.
    private let prelude: (@Sendable (BlockingRedisConnection) -> Result<Void, RedisError>)?
    /// Each message's payload: a bulk string on a plain channel; an array of keys, or null, on
    /// `__redis__:invalidate`.
    private let onPayload: @Sendable (RedisReply) -> Void
    /// After each `SUBSCRIBE`, with how many there have been (1 for the first).
    private let onSubscribed: (@Sendable (Int) -> Void)?
    /// After a subscription in place was lost (not after ``stop()``).
    private let onLost: (@Sendable () -> Void)?
    private let logger: Logger

    private struct State {
        var started = false
        var stopped = false
        var fd: Int32 = -1
        var subscribed = false
        var subscriptions = 0
        var livenessFailures = 0
    }
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)
    /// Signalled by ``stop()`` to cut a backoff sleep short.
    private let wake = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - configuration: where to connect; `connectTimeout`, `reconnectBackoffMin/Max` apply
    ///     (`commandTimeout` does not: `liveness.replyTimeout` bounds every reply here).
    ///   - channel: the pub/sub channel to `SUBSCRIBE` to.
    ///   - liveness: ping interval and reply timeout. Default: 5 s and 2 s.
    ///   - logger: warnings for a lost or silent subscription (once per loss), info on subscribing.
    ///   - onResubscribe: called on the subscriber's thread after every `SUBSCRIBE` that is not the
    ///     first (that is, after a reconnect), once the subscription is in place and before any
    ///     message received on it. Messages may have been missed in between.
    ///   - onMessage: called on the subscriber's own thread with each message's payload, in order.
    public convenience init(
        configuration: RedisConfiguration, channel: String, liveness: RedisLiveness = RedisLiveness(),
        logger: Logger, onResubscribe: (@Sendable () -> Void)? = nil,
        onMessage: @escaping @Sendable ([UInt8]) -> Void
    ) {
        var onSubscribed: (@Sendable (Int) -> Void)?
        if let onResubscribe {
            onSubscribed = { count in if count > 1 { onResubscribe() } }
        }
        let onPayload: @Sendable (RedisReply) -> Void = { payload in
            if case .string(let bytes) = payload { onMessage(bytes) }
        }
        self.init(
            configuration: configuration, channel: channel, liveness: liveness, logger: logger, prelude: nil,
            onSubscribed: onSubscribed, onLost: nil, onPayload: onPayload)
    }

    init(
        configuration: RedisConfiguration, channel: String, liveness: RedisLiveness, logger: Logger,
        prelude: (@Sendable (BlockingRedisConnection) -> Result<Void, RedisError>)?,
        onSubscribed: (@Sendable (Int) -> Void)?, onLost: (@Sendable () -> Void)?,
        onPayload: @escaping @Sendable (RedisReply) -> Void
    ) {
        self.configuration = configuration
        self.channel = channel
        self.liveness = liveness
        self.logger = logger
        self.prelude = prelude
        self.onSubscribed = onSubscribed
        self.onLost = onLost
        self.onPayload = onPayload
    }

    /// Whether the subscription is in place now (for tests and health checks).
    public var isSubscribed: Bool { state.withLock { $0.subscribed } }

    /// How many times it has subscribed (1 + reconnects).
    public var subscriptionCount: Int { state.withLock { $0.subscriptions } }

    /// How many times it subscribed again after losing a subscription (`subscriptionCount - 1`,
    /// or 0): the number of `onResubscribe` calls, as a counter for metrics.
    public var resubscriptionCount: Int { state.withLock { max(0, $0.subscriptions - 1) } }

    /// How many times the connection was dropped because Redis did not answer within
    /// `liveness.replyTimeout` (a silent partition or a frozen server), as opposed to a closed one.
    public var livenessFailureCount: Int { state.withLock { $0.livenessFailures } }

    /// Starts the subscriber's thread. Call once.
    public func start() {
        let first: Bool = state.withLock { s in
            defer { s.started = true }
            return !s.started
        }
        precondition(first, "RedisSubscriber.start() called twice")
        // A queue of its own that this one long, mostly blocked, work item occupies for good.
        DispatchQueue(label: "gateway.redis-subscriber").async { [self] in
            run()
            finished.signal()
        }
    }

    /// Stops listening: unblocks the thread by shutting its socket down and waits for it.
    /// Returns at once if ``start()`` was never called.
    public func stop() {
        let (fd, started): (Int32, Bool) = state.withLock { s in
            s.stopped = true
            return (s.fd, s.started)
        }
        guard started else { return }
        if fd >= 0 { _ = shutdown(fd, Int32(SHUT_RDWR)) }
        wake.signal()
        finished.wait()
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    private func run() {
        var backoff = ReconnectBackoff(
            minimum: configuration.reconnectBackoffMin.clampedNanoseconds, maximum: configuration.reconnectBackoffMax.clampedNanoseconds)
        while !isStopped {
            if listenOnce() { backoff.reset() }
            if isStopped { return }
            _ = wake.wait(timeout: .now() + .nanoseconds(Int(clamping: backoff.nextDelay())))
        }
    }

    /// One connection's life. Returns true if it got as far as subscribing.
    private func listenOnce() -> Bool {
        let connection: BlockingRedisConnection
        switch BlockingRedisConnection.connect(configuration, replyTimeout: liveness.replyTimeout) {
        case .success(let made): connection = made
        case .failure(let error) where error.serverMessage != nil:
            HandshakeRefusalLog.shared.log(error, address: configuration.address, connection: "subscriber", logger: logger)
            return false
        case .failure(let error):
            // Debug only: while Redis is away this repeats every backoff; the loss was logged once.
            logger.debug("redis subscriber cannot connect", metadata: ["redis.error": "\(error)"])
            return false
        }
        defer {
            let lost: Bool = state.withLock { s in
                defer { s.fd = -1; s.subscribed = false }
                return s.subscribed && !s.stopped
            }
            if lost { onLost?() }
            // Closed (redisFree) only after stop() can no longer see its fd: ARC could otherwise end
            // the connection after its last use, and stop() would shut down a reused fd number.
            withExtendedLifetime(connection) {}
        }
        let stoppedMeanwhile: Bool = state.withLock { s in
            s.fd = connection.fd
            return s.stopped
        }
        if stoppedMeanwhile { return false }
        if let prelude, case .failure(let error) = prelude(connection) {
            logger.debug("redis subscriber cannot prepare its connection", metadata: ["redis.channel": "\(channel)", "redis.error": "\(error)"])
            return false
        }
        if case .failure(let error) = connection.command([Array("SUBSCRIBE".utf8), Array(channel.utf8)], timeout: liveness.replyTimeout) {
            logger.debug("redis subscriber cannot subscribe", metadata: ["redis.channel": "\(channel)", "redis.error": "\(error)"])
            return false
        }
        let count: Int = state.withLock { s in
            s.subscribed = true
            s.subscriptions += 1
            return s.subscriptions
        }
        logger.info("subscribed to invalidation channel", metadata: ["redis.channel": "\(channel)", "redis.subscriptions": "\(count)"])
        onSubscribed?(count)

        let pingInterval = liveness.pingInterval.clampedNanoseconds
        let replyTimeout = liveness.replyTimeout.clampedNanoseconds
        var lastHeard = DispatchTime.now().uptimeNanoseconds
        var pingSentAt: UInt64?
        while !isStopped {
            let deadline = pingSentAt.map { $0 &+ replyTimeout } ?? lastHeard &+ pingInterval
            switch connection.readReply(until: deadline) {
            case .failure(let error):
                if !isStopped {
                    logger.warning("invalidation channel lost, reconnecting", metadata: ["redis.channel": "\(channel)", "redis.error": "\(error)"])
                }
                return true
            case .success(nil):
                if pingSentAt != nil {
                    state.withLock { $0.livenessFailures += 1 }
                    logger.warning(
                        "invalidation channel silent, reconnecting",
                        metadata: ["redis.channel": "\(channel)", "redis.reply_timeout": "\(liveness.replyTimeout)"])
                    return true
                }
                if case .failure(let error) = connection.send([Array("PING".utf8)]) {
                    if !isStopped {
                        logger.warning("invalidation channel lost, reconnecting", metadata: ["redis.channel": "\(channel)", "redis.error": "\(error)"])
                    }
                    return true
                }
                pingSentAt = DispatchTime.now().uptimeNanoseconds
            case .success(let reply?):
                // Anything from the server proves it is there: a message as much as the pong.
                lastHeard = DispatchTime.now().uptimeNanoseconds
                pingSentAt = nil
                // ["message", channel, payload]; the pong (["pong", ""]) and confirmations are skipped.
                if case .array(let parts) = reply, parts.count == 3, case .string(let kind) = parts[0], kind == Array("message".utf8) {
                    onPayload(parts[2])
                }
            }
        }
        return true
    }
}
