import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a Redis stream as one consumer of a consumer group and hands each entry to a handler,
/// acknowledging (`XACK`) what the handler reports done: at-least-once delivery, as Celery's
/// `acks_late`.
///
/// Like ``RedisSubscriber``, it is hiredis's blocking API on a thread of its own (an `XREADGROUP …
/// BLOCK` connection can do nothing else while it waits), with the same reconnect backoff and the
/// liveness of ``RedisLiveness``: every reply, `XREADGROUP`'s included, is awaited at most its
/// `BLOCK` time plus `replyTimeout`, then the connection is logged once as lost and made again.
///
/// On every connect it creates the group (`XGROUP CREATE <stream> <group> <start> MKSTREAM`; an
/// existing group, `BUSYGROUP`, is fine; see ``Configuration/newGroupStart`` for `$` and `0`). Then,
/// in this order:
/// 1. its own pending entries (`XREADGROUP GROUP g c COUNT n STREAMS s 0`, paging until empty):
///    read before a crash or a lost connection and never acknowledged;
/// 2. `XAUTOCLAIM s g c <claimIdle> <cursor> COUNT n`: entries other (dead) consumers left pending,
///    now and every ``Configuration/claimInterval``;
/// 3. new entries, `XREADGROUP … BLOCK <block> STREAMS s >`, in a loop, with the group's lag read
///    by `XINFO GROUPS` every ``Configuration/lagPollInterval`` and step 1 again
///    ``Configuration/retryDelay`` after an entry was answered ``Outcome/retry``.
///
/// Entries are handled one at a time, in the order read: the next entry's handler is called only
/// after the previous one completed, so events apply in stream order (an entry that is retried is
/// applied later, after those behind it). Threading: the handler is called on the consumer's
/// thread; its completion may be called on any thread, at once or later. The consumer thread
/// waits for it and sends the `XACK` itself on its one connection, so no second connection and no
/// lock around hiredis are needed. A completion called twice, or after ``Configuration/handlerTimeout``
/// or ``stop()``, is ignored. Delivery is at least once: an entry whose `XACK` was lost with the
/// connection is handled again, so handlers must be idempotent (an invalidation is).
public final class RedisStreamConsumer: Sendable {
    /// Applies one entry: its ID, its fields in stream order, and the completion to call once with
    /// the outcome (on any thread).
    public typealias Handler = @Sendable (
        _ id: String, _ fields: [(String, [UInt8])], _ completion: @escaping @Sendable (Outcome) -> Void
    ) -> Void

    public let redis: RedisConfiguration
    public let configuration: Configuration
    public let liveness: RedisLiveness
    private let handler: Handler
    private let logger: Logger

    private struct State {
        var started = false
        var stopped = false
        var fd: Int32 = -1
        var snapshot = Snapshot()
        /// The entry whose handler runs now: completions carrying another token are stale.
        var token: UInt64 = 0
        var outcome: Outcome?
    }
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)
    /// Wakes the consumer thread: a completion arrived, or ``stop()`` was called.
    private let wake = DispatchSemaphore(value: 0)

    /// Why a connection's loop ends.
    private enum Interrupt: Error {
        case redis(RedisError)
        case stopped
    }

    /// - Parameters:
    ///   - redis: where to connect; `host`, `port`, `database`, `username`, `password`,
    ///     `connectTimeout` and `reconnectBackoffMin/Max` apply (`commandTimeout` does not:
    ///     `liveness.replyTimeout` bounds every reply here).
    ///   - configuration: stream, group, consumer name, batch size and timings.
    ///   - liveness: only `replyTimeout` is used (the `XREADGROUP` round trip every `block` is
    ///     this connection's ping).
    ///   - logger: a warning once per lost connection, per poison entry and per timed-out handler;
    ///     info on each connection set up.
    ///   - handler: applies an entry; called on the consumer's thread, one entry at a time.
    public init(
        redis: RedisConfiguration, configuration: Configuration, liveness: RedisLiveness = RedisLiveness(),
        logger: Logger, handler: @escaping Handler
    ) {
        self.redis = redis
        self.configuration = configuration
        self.liveness = liveness
        self.logger = logger
        self.handler = handler
    }

    /// The counters now (a copy; cheap, safe from any thread).
    public var snapshot: Snapshot { state.withLock { $0.snapshot } }

    /// Starts the consumer's thread. Call once.
    public func start() {
        let first: Bool = state.withLock { s in
            defer { s.started = true }
            return !s.started
        }
        precondition(first, "RedisStreamConsumer.start() called twice")
        // A queue of its own that this one long, mostly blocked, work item occupies for good.
        DispatchQueue(label: "gateway.redis-stream-consumer").async { [self] in
            run()
            finished.signal()
        }
    }

    /// Stops consuming and waits for the thread: shuts the socket down (which ends a blocked
    /// `XREADGROUP`) and stops waiting for a handler. An entry whose handler has not completed
    /// stays pending, to be read again by the next consumer of this name (or claimed by another).
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

    private func update(_ body: (inout Snapshot) -> Void) { state.withLock { body(&$0.snapshot) } }

    private var metadata: Logger.Metadata {
        ["redis.stream": "\(configuration.stream)", "redis.group": "\(configuration.group)", "redis.consumer": "\(configuration.consumer)"]
    }

    // MARK: Connections

    private func run() {
        var backoff = ReconnectBackoff(minimum: redis.reconnectBackoffMin.clampedNanoseconds, maximum: redis.reconnectBackoffMax.clampedNanoseconds)
        var groupSetUp = false
        while !isStopped {
            if consumeOnce(groupSetUp: &groupSetUp) { backoff.reset() }
            if isStopped { return }
            _ = wake.wait(timeout: .now() + .nanoseconds(Int(clamping: backoff.nextDelay())))
        }
    }

    /// One connection's life. Returns true if the group was set up on it.
    private func consumeOnce(groupSetUp: inout Bool) -> Bool {
        let connection: BlockingRedisConnection
        // On a cluster, the master of the stream's slot, found again on every connect: a
        // `-MOVED` (the slot was resharded) ends the connection like any error, and the next one
        // goes to the new owner.
        let target = redis.locatingClusterNode(owning: Array(configuration.stream.utf8), replyTimeout: liveness.replyTimeout)
        switch target.flatMap({ BlockingRedisConnection.connect($0, replyTimeout: liveness.replyTimeout) }) {
        case .success(let made): connection = made
        case .failure(let error) where error.serverMessage != nil:
            HandshakeRefusalLog.shared.log(error, address: redis.address, connection: "stream consumer", logger: logger)
            return false
        case .failure(let error):
            // Debug only: while Redis is away this repeats every backoff; the loss was logged once.
            logger.debug("redis stream consumer cannot connect", metadata: metadata.merging(["redis.error": "\(error)"]) { $1 })
            return false
        }
        defer {
            state.withLock { s in
                s.fd = -1
                s.snapshot.isConnected = false
            }
            // Closed (redisFree) only after stop() can no longer see its fd: ARC could otherwise end
            // the connection after its last use, and stop() would shut down a reused fd number.
            withExtendedLifetime(connection) {}
        }
        let stoppedMeanwhile: Bool = state.withLock { s in
            s.fd = connection.fd
            return s.stopped
        }
        if stoppedMeanwhile { return false }
        do throws(Interrupt) {
            try createGroup(on: connection, start: groupSetUp ? "0" : configuration.newGroupStart)
        } catch {
            if case .redis(let error) = error {
                logger.debug("redis stream consumer cannot create its group", metadata: metadata.merging(["redis.error": "\(error)"]) { $1 })
            }
            return false
        }
        groupSetUp = true
        let connections: Int = state.withLock { s in
            s.snapshot.connections += 1
            s.snapshot.isConnected = true
            return s.snapshot.connections
        }
        logger.info("stream consumer ready", metadata: metadata.merging(["redis.connections": "\(connections)"]) { $1 })
        do throws(Interrupt) {
            try consume(on: connection)
        } catch {
            if case .redis(let error) = error, !isStopped {
                logger.warning("stream consumer connection lost, reconnecting", metadata: metadata.merging(["redis.error": "\(error)"]) { $1 })
            }
        }
        return true
    }

    /// `XGROUP CREATE <stream> <group> <start> MKSTREAM`; `BUSYGROUP` (it exists) is success.
    private func createGroup(on connection: BlockingRedisConnection, start: String) throws(Interrupt) {
        let c = configuration
        switch connection.command(argv("XGROUP", "CREATE", c.stream, c.group, start, "MKSTREAM"), timeout: liveness.replyTimeout) {
        case .success:
            logger.info("stream consumer group created", metadata: metadata.merging(["redis.group.start": "\(start)"]) { $1 })
        case .failure(let error) where error.serverMessage?.hasPrefix("BUSYGROUP") == true:
            return
        case .failure(let error):
            throw .redis(error)
        }
    }

    // MARK: The loop

    private func consume(on connection: BlockingRedisConnection) throws(Interrupt) {
        let c = configuration
        let count = String(max(1, c.batchSize))
        var now = DispatchTime.now().uptimeNanoseconds
        // After a (re)connect: own pending entries first, then claims, then lag, then new entries.
        var pendingDue: UInt64? = now
        var claimDue = now
        var claimCursor = "0-0"
        var lagDue = now
        while true {
            if isStopped { throw .stopped }
            now = DispatchTime.now().uptimeNanoseconds
            if let due = pendingDue, now >= due {
                pendingDue = nil
                if try readOwnPending(on: connection, count: count) { pendingDue = retryTime() }
            }
            now = DispatchTime.now().uptimeNanoseconds
            if now >= claimDue {
                let (next, retried) = try claim(on: connection, cursor: claimCursor, count: count)
                claimCursor = next
                // A cursor other than 0-0 means more candidates: go on at once (after new entries).
                claimDue = next == "0-0" ? DispatchTime.now().uptimeNanoseconds &+ c.claimInterval.clampedNanoseconds : 0
                if retried, pendingDue == nil { pendingDue = retryTime() }
            }
            now = DispatchTime.now().uptimeNanoseconds
            if now >= lagDue {
                try pollLag(on: connection)
                lagDue = DispatchTime.now().uptimeNanoseconds &+ c.lagPollInterval.clampedNanoseconds
            }
            // Block for new entries, but not past the next timed step.
            now = DispatchTime.now().uptimeNanoseconds
            let nextDue = min(pendingDue ?? .max, claimDue, lagDue)
            let wait = min(c.block.clampedNanoseconds, nextDue > now ? nextDue - now : 0)
            let blockMilliseconds = max(1, wait / 1_000_000)  // BLOCK 0 would mean forever
            try send(connection, argv("XREADGROUP", "GROUP", c.group, c.consumer, "COUNT", count, "BLOCK", String(blockMilliseconds), "STREAMS", c.stream, ">"))
            let deadline = DispatchTime.now().uptimeNanoseconds &+ blockMilliseconds * 1_000_000 &+ liveness.replyTimeout.clampedNanoseconds
            let reply = try awaitReply(connection, until: deadline)
            guard let entries = StreamReplies.entries(fromReadGroup: reply) else { throw .redis(.protocolError("XREADGROUP reply")) }
            if try handle(entries, on: connection), pendingDue == nil { pendingDue = retryTime() }
        }
    }

    private func retryTime() -> UInt64 { DispatchTime.now().uptimeNanoseconds &+ configuration.retryDelay.clampedNanoseconds }

    /// Reads and handles this consumer's pending entries, paging by ID until none is left.
    /// Returns whether one was answered ``Outcome/retry``.
    private func readOwnPending(on connection: BlockingRedisConnection, count: String) throws(Interrupt) -> Bool {
        let c = configuration
        var cursor = "0"
        var retried = false
        while true {
            let reply = try command(connection, argv("XREADGROUP", "GROUP", c.group, c.consumer, "COUNT", count, "STREAMS", c.stream, cursor))
            guard let entries = StreamReplies.entries(fromReadGroup: reply) else { throw .redis(.protocolError("XREADGROUP reply")) }
            guard let last = entries.last else { return retried }
            if try handle(entries, on: connection) { retried = true }
            cursor = last.id
        }
    }

    /// One `XAUTOCLAIM` page; returns the next cursor and whether an entry was retried.
    private func claim(on connection: BlockingRedisConnection, cursor: String, count: String) throws(Interrupt) -> (String, Bool) {
        let c = configuration
        let idle = String(c.claimIdle.clampedNanoseconds / 1_000_000)
        let reply = try command(connection, argv("XAUTOCLAIM", c.stream, c.group, c.consumer, idle, cursor, "COUNT", count))
        guard let claimed = StreamReplies.claimed(fromAutoClaim: reply) else { throw .redis(.protocolError("XAUTOCLAIM reply")) }
        update { s in
            s.claimed += claimed.entries.count
            s.deleted += claimed.deleted
        }
        if !claimed.entries.isEmpty {
            logger.info("stream entries claimed from other consumers", metadata: metadata.merging(["redis.stream.claimed": "\(claimed.entries.count)"]) { $1 })
        }
        return (claimed.cursor, try handle(claimed.entries, on: connection))
    }

    /// `XINFO GROUPS <stream>` → ``Snapshot/lag``. An error reply is not the connection's fault:
    /// the lag stays as it was.
    private func pollLag(on connection: BlockingRedisConnection) throws(Interrupt) {
        switch connection.command(argv("XINFO", "GROUPS", configuration.stream), timeout: liveness.replyTimeout) {
        case .success(let reply):
            if let lag = StreamReplies.lag(fromInfoGroups: reply, group: configuration.group) { update { $0.lag = lag } }
        case .failure(let error) where error.serverMessage != nil:
            logger.debug("stream lag unavailable", metadata: metadata.merging(["redis.error": "\(error)"]) { $1 })
        case .failure(let error):
            throw .redis(error)
        }
    }

    // MARK: Entries

    /// Hands entries to the handler one by one and acknowledges as it answers. Returns whether one
    /// was answered ``Outcome/retry``.
    private func handle(_ entries: [StreamEntry], on connection: BlockingRedisConnection) throws(Interrupt) -> Bool {
        var retried = false
        for entry in entries {
            if isStopped { throw .stopped }
            guard let fields = entry.fields else {
                // Deleted from the stream while pending: nothing to apply; drop it from the pending list.
                try acknowledge(entry.id, on: connection)
                update { $0.deleted += 1 }
                continue
            }
            switch try outcome(of: entry.id, fields) {
            case .applied:
                try acknowledge(entry.id, on: connection)
                update { s in
                    s.applied += 1
                    s.lastID = entry.id
                }
            case .poison:
                try acknowledge(entry.id, on: connection)
                update { s in
                    s.poison += 1
                    s.lastID = entry.id
                }
                logger.warning("poison stream entry acknowledged", metadata: metadata.merging(["redis.stream.entry_id": "\(entry.id)"]) { $1 })
            case .retry:
                update { $0.retried += 1 }
                retried = true
            }
        }
        return retried
    }

    /// Calls the handler and waits for its completion, ``Configuration/handlerTimeout`` at most.
    private func outcome(of id: String, _ fields: [(String, [UInt8])]) throws(Interrupt) -> Outcome {
        let token: UInt64 = state.withLock { s in
            s.token &+= 1
            s.outcome = nil
            return s.token
        }
        handler(id, fields) { [self] outcome in
            let taken: Bool = state.withLock { s in
                guard s.token == token, s.outcome == nil else { return false }
                s.outcome = outcome
                return true
            }
            if taken { wake.signal() }
        }
        let deadline = DispatchTime.now().uptimeNanoseconds &+ configuration.handlerTimeout.clampedNanoseconds
        while true {
            let (outcome, stopped): (Outcome?, Bool) = state.withLock { s in
                if s.outcome != nil { s.token &+= 1 }  // later calls of this completion are stale
                return (s.outcome, s.stopped)
            }
            if let outcome { return outcome }
            if stopped {
                state.withLock { $0.token &+= 1 }
                throw .stopped
            }
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= deadline {
                state.withLock { $0.token &+= 1 }
                logger.warning("stream handler timed out, entry left pending", metadata: metadata.merging(["redis.stream.entry_id": "\(id)"]) { $1 })
                return .retry
            }
            // Woken early by the completion or stop(); stale signals only cost one more round.
            _ = wake.wait(timeout: DispatchTime(uptimeNanoseconds: deadline))
        }
    }

    private func acknowledge(_ id: String, on connection: BlockingRedisConnection) throws(Interrupt) {
        let c = configuration
        _ = try command(connection, argv("XACK", c.stream, c.group, id))
    }

    // MARK: Commands

    private func command(_ connection: BlockingRedisConnection, _ arguments: [[UInt8]]) throws(Interrupt) -> RedisReply {
        switch connection.command(arguments, timeout: liveness.replyTimeout) {
        case .success(let reply): return reply
        case .failure(let error): throw isStopped ? .stopped : .redis(error)
        }
    }

    private func send(_ connection: BlockingRedisConnection, _ arguments: [[UInt8]]) throws(Interrupt) {
        if case .failure(let error) = connection.send(arguments) { throw isStopped ? .stopped : .redis(error) }
    }

    /// A reply by `deadline`; none is a dead connection (``RedisError/timeout``).
    private func awaitReply(_ connection: BlockingRedisConnection, until deadline: UInt64) throws(Interrupt) -> RedisReply {
        switch connection.readReply(until: deadline) {
        case .success(.error(let message)?): throw .redis(.server(message))
        case .success(let reply?): return reply
        case .success(nil): throw .redis(.timeout)
        case .failure(let error): throw isStopped ? .stopped : .redis(error)
        }
    }
}

private func argv(_ arguments: String...) -> [[UInt8]] { arguments.map { Array($0.utf8) } }
