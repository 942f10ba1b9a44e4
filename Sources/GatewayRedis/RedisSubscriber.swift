internal import CHiredis
import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Listens on one Redis pub/sub channel and hands every message to `onMessage`.
///
/// A subscribed connection can do nothing else, and messages arrive one at a time and rarely, so
/// this is hiredis's plain blocking API on a thread of its own rather than a second state machine
/// on an event loop. It reconnects (and subscribes again) with the same backoff as
/// ``RedisConnection`` until ``stop()``. Messages published while it is disconnected are lost:
/// that is pub/sub's contract, which is why cached entries still have a TTL.
public final class RedisSubscriber: Sendable {
    public let configuration: RedisConfiguration
    public let channel: String
    private let onMessage: @Sendable ([UInt8]) -> Void
    private let logger: Logger

    private struct State {
        var stopped = false
        var fd: Int32 = -1
        var subscribed = false
        var subscriptions = 0
    }
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - onMessage: called on the subscriber's own thread with each message's payload.
    public init(
        configuration: RedisConfiguration, channel: String, logger: Logger,
        onMessage: @escaping @Sendable ([UInt8]) -> Void
    ) {
        self.configuration = configuration
        self.channel = channel
        self.logger = logger
        self.onMessage = onMessage
    }

    /// Whether the subscription is in place now (for tests and health checks).
    public var isSubscribed: Bool { state.withLock { $0.subscribed } }

    /// How many times it has subscribed (1 + reconnects).
    public var subscriptionCount: Int { state.withLock { $0.subscriptions } }

    public func start() {
        // A queue of its own that this one long, mostly blocked, work item occupies for good.
        DispatchQueue(label: "gateway.redis-subscriber").async { [self] in
            run()
            finished.signal()
        }
    }

    /// Stops listening: unblocks the thread by shutting its socket down and waits for it.
    public func stop() {
        let fd: Int32 = state.withLock { s in
            s.stopped = true
            return s.fd
        }
        if fd >= 0 { _ = shutdown(fd, Int32(SHUT_RDWR)) }
        finished.wait()
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    private func run() {
        var backoff = configuration.reconnectBackoffMin
        while !isStopped {
            if listenOnce() { backoff = configuration.reconnectBackoffMin }
            if isStopped { return }
            // Sleep in small steps so that stop() is not held up by a long backoff.
            var left = backoff
            while left > .zero && !isStopped {
                let step = min(left, .milliseconds(50))
                usleep(UInt32(step.components.seconds * 1_000_000 + step.components.attoseconds / 1_000_000_000_000))
                left -= step
            }
            backoff = min(backoff * 2, configuration.reconnectBackoffMax)
        }
    }

    /// One connection's life. Returns true if it got as far as subscribing.
    private func listenOnce() -> Bool {
        let (seconds, attoseconds) = configuration.connectTimeout.components
        let timeout = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        guard let context = redisConnectWithTimeout(configuration.host, Int32(configuration.port), timeout) else { return false }
        defer {
            state.withLock { s in
                s.fd = -1
                s.subscribed = false
            }
            redisFree(context)
        }
        if context.pointee.err != 0 {
            let message = withUnsafeBytes(of: context.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            logger.debug("redis subscriber cannot connect", metadata: ["error": "\(message)"])
            return false
        }
        // The connect timeout also became the read timeout; a quiet channel must not look dead.
        _ = redisSetTimeout(context, timeval(tv_sec: 0, tv_usec: 0))
        let fd = context.pointee.fd
        let stoppedMeanwhile: Bool = state.withLock { s in
            s.fd = fd
            return s.stopped
        }
        if stoppedMeanwhile { return false }
        if let password = configuration.password {
            var auth = ["AUTH"]
            if let user = configuration.username { auth.append(user) }
            auth.append(password)
            guard command(context, auth) else { return false }
        }
        guard command(context, ["SUBSCRIBE", channel]) else { return false }
        state.withLock { s in
            s.subscribed = true
            s.subscriptions += 1
        }
        logger.info("subscribed to invalidation channel", metadata: ["redis.channel": "\(channel)"])
        while !isStopped {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                if !isStopped { logger.warning("invalidation channel lost, reconnecting", metadata: ["redis.channel": "\(channel)"]) }
                return true
            }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            // ["message", channel, payload]; anything else (subscribe confirmations) is skipped.
            if reply.pointee.type == REDIS_REPLY_ARRAY, reply.pointee.elements == 3,
                let element = reply.pointee.element, let kind = element[0], let payload = element[2],
                String(cString: kind.pointee.str) == "message"
            {
                let bytes = Array(UnsafeRawBufferPointer(start: payload.pointee.str, count: Int(payload.pointee.len)))
                freeReplyObject(raw)
                onMessage(bytes)
            } else {
                freeReplyObject(raw)
            }
        }
        return true
    }

    /// Sends one command and reads its reply; false on an error reply or a broken connection.
    private func command(_ context: UnsafeMutablePointer<redisContext>, _ arguments: [String]) -> Bool {
        var pointers: [UnsafePointer<CChar>?] = []
        var lengths: [Int] = []
        let storage = arguments.map { strdup($0) }
        defer { storage.forEach { free($0) } }
        for (argument, pointer) in zip(arguments, storage) {
            pointers.append(UnsafePointer(pointer))
            lengths.append(argument.utf8.count)
        }
        guard let raw = redisCommandArgv(context, Int32(arguments.count), &pointers, &lengths) else { return false }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        let ok = reply.pointee.type != REDIS_REPLY_ERROR
        if !ok { logger.warning("redis subscriber command failed", metadata: ["command": "\(arguments[0])"]) }
        freeReplyObject(raw)
        return ok
    }
}
