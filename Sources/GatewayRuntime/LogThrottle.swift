import Synchronization

/// Lets one message of a kind through per interval, and counts the ones held back, so that an
/// outage that fails every request writes one log line every few seconds instead of thousands.
/// Shared by every loop.
final class LogThrottle: Sendable {
    private struct State {
        var nextAllowed: UInt64 = 0
        var suppressed = 0
    }

    private let intervalMilliseconds: UInt64
    private let state = Mutex(State())

    init(intervalMilliseconds: UInt64 = 10_000) {
        self.intervalMilliseconds = intervalMilliseconds
    }

    /// Whether to log now; if so, how many were held back since the last one.
    func admit(now: UInt64) -> (log: Bool, suppressed: Int) {
        state.withLock { state in
            guard now >= state.nextAllowed else {
                state.suppressed += 1
                return (false, 0)
            }
            let held = state.suppressed
            state.suppressed = 0
            state.nextAllowed = now + intervalMilliseconds
            return (true, held)
        }
    }
}
