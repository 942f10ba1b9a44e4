import Dispatch
import GatewayCore
import GatewayHTTP
import Synchronization

/// Whether the upstream accepts TCP connections, for `/readyz`: a connect every few seconds on a
/// queue of its own (a connect to a silent host blocks for its timeout, which no event loop may),
/// and the last result kept for whoever asks (behind a lock; the timer is set up once and only
/// scheduled or cancelled after). A request never waits for a probe.
final class UpstreamProbe: @unchecked Sendable {
    enum Result: Equatable {
        /// No probe has finished yet (the first starts with the service).
        case unknown
        case reachable
        case unreachable(String)
    }

    private let target: @Sendable () -> (host: String, port: Int, timeout: Duration)
    private let interval: Duration
    private let queue = DispatchQueue(label: "gateway.upstream-probe")
    private let timer: DispatchSourceTimer
    private let last = Mutex(Result.unknown)

    /// - Parameters:
    ///   - interval: Between the start of one probe and the next.
    ///   - target: Read before each probe: where the upstream is now, and how long one connect
    ///     may take before it counts as unreachable.
    init(interval: Duration = .seconds(2), target: @escaping @Sendable () -> (host: String, port: Int, timeout: Duration)) {
        self.target = target
        self.interval = interval
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            let (host, port, timeout) = target()
            let result: Result
            do throws(SystemError) {
                try TCPProbe.connect(to: SocketAddress.resolve(host: host, port: port), timeout: timeout)
                result = .reachable
            } catch {
                result = .unreachable(error.function == "connect" ? "connect to \(host):\(port): \(error.reason)" : error.description)
            }
            last.withLock { $0 = result }
        }
        // Resumed once and for all, unscheduled until start: a never-resumed source must not be released.
        timer.resume()
    }

    var result: Result { last.withLock { $0 } }

    func start() {
        let ms = Int(max(1, interval.wholeMilliseconds))
        timer.schedule(deadline: .now(), repeating: .milliseconds(ms), leeway: .milliseconds(ms / 10))
    }

    /// Waits for a probe under way to finish; no probe starts afterwards.
    func stop() {
        timer.cancel()
        queue.sync {}
    }
}
