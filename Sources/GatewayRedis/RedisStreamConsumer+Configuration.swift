extension RedisStreamConsumer {
    /// Which stream and group a ``RedisStreamConsumer`` reads, and its timings.
    public struct Configuration: Sendable, Equatable {
        /// The stream's key. Created (empty) with `MKSTREAM` if it does not exist.
        public var stream: String

        /// The consumer group. For in-process state every gateway instance needs its own group
        /// (each group sees every entry once); instances sharing a group split the entries.
        public var group: String

        /// This consumer's name within the group. Keep it stable across restarts of the same
        /// instance: its pending entries (read, not acknowledged before a crash) are read again
        /// under the same name at once; under another name they wait for ``claimIdle``.
        public var consumer: String

        /// Entries per `XREADGROUP`/`XAUTOCLAIM` (`COUNT`). Default: 100.
        public var batchSize: Int

        /// How long one `XREADGROUP` waits for new entries (`BLOCK`, whole milliseconds, at least 1).
        /// Shorter waits are used when a retry, claim or lag poll is due sooner. Default: 2 s.
        public var block: Duration

        /// An entry pending on any consumer for at least this long is taken over with `XAUTOCLAIM`
        /// (its consumer is presumed dead). Default: 30 s.
        public var claimIdle: Duration

        /// How often `XAUTOCLAIM` runs (it runs on every connect too). Default: 10 s.
        public var claimInterval: Duration

        /// After a handler answers ``Outcome/retry``, this consumer's own pending entries are read
        /// again (`XREADGROUP … 0`) this long later, not at once: a failing dependency is not
        /// hammered in a tight loop. Default: 1 s.
        public var retryDelay: Duration

        /// How often the group's `lag` is read with `XINFO GROUPS`. Default: 5 s.
        public var lagPollInterval: Duration

        /// A handler that has not completed after this long is treated as ``Outcome/retry``
        /// (logged; a late completion is ignored), so one lost completion cannot stall the stream.
        /// Default: 30 s.
        public var handlerTimeout: Duration

        /// Where a group this consumer creates starts: `"$"` (only entries added from now on) or
        /// `"0"` (the whole stream). Default `"$"`: a new gateway instance starts with an empty
        /// in-process cache, so there is nothing older to invalidate, and replaying a long history
        /// would only delay the new entries. Applies to the first creation only; a group that is
        /// gone after a reconnect (Redis restarted without persistence, `FLUSHALL`, `XGROUP
        /// DESTROY`) is created again at `"0"`, so that entries written between Redis coming back
        /// and this consumer reconnecting are not skipped.
        public var newGroupStart: String

        public init(
            stream: String, group: String, consumer: String,
            batchSize: Int = 100,
            block: Duration = .seconds(2),
            claimIdle: Duration = .seconds(30),
            claimInterval: Duration = .seconds(10),
            retryDelay: Duration = .seconds(1),
            lagPollInterval: Duration = .seconds(5),
            handlerTimeout: Duration = .seconds(30),
            newGroupStart: String = "$"
        ) {
            self.stream = stream
            self.group = group
            self.consumer = consumer
            self.batchSize = batchSize
            self.block = block
            self.claimIdle = claimIdle
            self.claimInterval = claimInterval
            self.retryDelay = retryDelay
            self.lagPollInterval = lagPollInterval
            self.handlerTimeout = handlerTimeout
            self.newGroupStart = newGroupStart
        }
    }

    /// What became of one entry, as the handler reports it.
    public enum Outcome: Sendable, Equatable {
        /// Done: the entry is acknowledged (`XACK`).
        case applied
        /// Malformed, never going to apply: acknowledged, counted and logged with its ID, and the
        /// entries behind it go on.
        case poison
        /// Not now (a dependency failed): left pending, read again after ``Configuration/retryDelay``
        /// (or claimed by another consumer after ``Configuration/claimIdle`` if this one dies).
        case retry
    }

    /// Counters, read with ``RedisStreamConsumer/snapshot``. Monotonic except `lastID`, `lag`, `isConnected`.
    public struct Snapshot: Sendable, Equatable {
        /// Entries handled ``Outcome/applied`` and acknowledged.
        public var applied = 0
        /// Entries handled ``Outcome/poison`` and acknowledged.
        public var poison = 0
        /// Times a handler answered ``Outcome/retry`` (or timed out); one entry may count many times.
        public var retried = 0
        /// Pending entries that were deleted from the stream (`XDEL`, trimming) before being
        /// applied: acknowledged (or dropped by `XAUTOCLAIM`) without calling the handler.
        public var deleted = 0
        /// Entries taken over from other consumers with `XAUTOCLAIM`.
        public var claimed = 0
        /// The ID of the entry acknowledged last (claimed older entries can make it go back).
        public var lastID: String?
        /// The group's `lag` from `XINFO GROUPS` (entries not yet delivered to the group), polled
        /// every ``Configuration/lagPollInterval``; nil before the first poll, or when Redis cannot
        /// tell (after deletions it reports nil).
        public var lag: Int?
        /// Connections on which the group was set up (1 + reconnects).
        public var connections = 0
        /// Whether a connection is set up now.
        public var isConnected = false

        public init() {}
    }
}
