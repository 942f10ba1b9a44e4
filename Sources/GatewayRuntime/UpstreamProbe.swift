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

    private let host: String
    private let port: Int
    private let timeout: Duration
    private let interval: Duration
    private let queue = DispatchQueue(label: "gateway.upstream-probe")
    private let timer: DispatchSourceTimer
    private let last = Mutex(Result.unknown)

    /// - Parameters:
    ///   - timeout: How long one connect may take before the upstream counts as unreachable.
    ///   - interval: Between the start of one probe and the next.
    init(host: String, port: Int, timeout: Duration, interval: Duration = .seconds(2)) {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.interval = interval
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            let reason = TCPProbe.connect(host: host, port: port, timeout: timeout)
            last.withLock { $0 = reason.map(Result.unreachable) ?? .reachable }
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
