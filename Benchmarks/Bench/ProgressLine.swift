import Foundation
import LoadGenerator
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Progress while a scenario's loads run: about once a second the case, the round, the answers per
/// second so far and the time left for the whole scenario. On a terminal one line is rewritten in
/// place; into a file or a pipe (CI) it is a line per second.
final class ProgressLine: Sendable {
    /// Seconds of measured load the scenario plans in all, and how many of them are done.
    private struct State { var planned: Double; var done = 0.0; var live = false }
    private let state: Mutex<State>
    private let scenario: String
    private let terminal: Bool

    init(scenario: String, plannedSeconds: Double, terminal: Bool = isatty(STDERR_FILENO) == 1) {
        self.scenario = scenario
        self.terminal = terminal
        state = Mutex(State(planned: plannedSeconds))
    }

    /// The callback for one load of `seconds` (the generator calls it on its thread).
    func reporter(_ label: String, seconds: Double) -> @Sendable (LoadProgress) -> Void {
        { [self] p in
            let line = state.withLock { s in
                Self.text(scenario: scenario, label: label, requests: p.requests, elapsed: p.elapsedSeconds,
                          secondsLeft: max(0, s.planned - s.done - p.elapsedSeconds))
            }
            write(line)
        }
    }

    /// One load of `seconds` is over: counts it done, and ends the live line.
    func finished(seconds: Double) {
        let wasLive = state.withLock { s in
            s.done += seconds
            defer { s.live = false }
            return s.live
        }
        if wasLive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    private func write(_ line: String) {
        if terminal {
            state.withLock { $0.live = true }
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// "   … hit 1 key, round 2/3 gateway: 41,200 req/s so far, 23 s left"
    static func text(scenario: String, label: String, requests: Int, elapsed: Double, secondsLeft: Double) -> String {
        let rate = elapsed > 0 ? Double(requests) / elapsed : 0
        return "   … \(scenario) \(label): \(Format.rate(rate)) req/s so far, \(Int(secondsLeft.rounded(.up))) s left"
    }
}
