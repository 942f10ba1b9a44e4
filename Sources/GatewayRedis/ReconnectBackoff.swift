/// Exponential delays between reconnect attempts: `minimum`, `2 × minimum`, … capped at `maximum`.
///
/// Pure value; ``RedisConnection`` owns one and resets it when a connection becomes ready.
struct ReconnectBackoff: Sendable, Equatable {
    let minimum: UInt64
    let maximum: UInt64
    /// Consecutive failed attempts since the last ready connection.
    private(set) var failures: Int = 0

    /// - Parameters: delays in nanoseconds; `maximum` is raised to `minimum` if it is smaller.
    init(minimum: UInt64, maximum: UInt64) {
        self.minimum = minimum
        self.maximum = Swift.max(minimum, maximum)
    }

    /// The delay before the next attempt, in nanoseconds; counts one more failure.
    mutating func nextDelay() -> UInt64 {
        defer { failures += 1 }
        let shift = UInt64(Swift.min(failures, 63))
        let (delay, overflow) = minimum.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? maximum : Swift.min(delay, maximum)
    }

    mutating func reset() { failures = 0 }
}
