import Dispatch
import GatewayCore
import GatewayHTTP
import Logging
import Synchronization

/// The access log: a ``RequestObserver`` that writes one line per answered request.
///
/// Lines are formatted on the request's event loop into that loop's own buffer (no lock, no
/// allocation per line). The buffer is handed to one writer queue when it passes ``flushBytes``,
/// every ``flushInterval`` (a timer on the loop), and at shutdown (``flush()``); only the writer
/// calls `write(2)`, so a slow or full disk stalls the writer, never a loop. When the writer is
/// behind by more than ``maxPendingBytes`` (a disk that stopped), new chunks are dropped and
/// counted, and a warning says so at most every 10 s; so is a failed write.
public final class AccessLog: RequestObserver, Sendable {
    static let flushBytes = 32 * 1024
    static let flushInterval = DispatchTimeInterval.milliseconds(200)
    static let maxPendingBytes = 8 << 20

    /// One loop's buffer and formatter; touched only on that loop's queue.
    final class LoopBuffer: @unchecked Sendable {
        var bytes: [UInt8] = []
        var formatter: AccessLogFormatter
        var timer: DispatchSourceTimer?

        init(formatter: AccessLogFormatter) {
            self.formatter = formatter
            bytes.reserveCapacity(AccessLog.flushBytes + 4096)
        }
    }

    public let settings: GatewayConfig.AccessLog
    public let descriptor: LogDescriptor
    private let logger: Logger
    private let writer = DispatchQueue(label: "gateway.access-log", qos: .utility)
    private let key = DispatchSpecificKey<LoopBuffer>()
    /// Bytes handed to the writer and not yet written.
    private let pending = Atomic<Int>(0)
    private let droppedLines = Atomic<Int>(0)
    private let dropWarning = LogThrottle()
    /// Written once in `attach`, before serving.
    nonisolated(unsafe) private var loops: [(loop: EventLoop, buffer: LoopBuffer)] = []

    /// Opens the destination (a file is created, mode 0640, and appended to).
    public init(settings: GatewayConfig.AccessLog, logger: Logger) throws(SystemError) {
        self.settings = settings
        self.logger = logger
        switch settings.destination {
        case .stdout: descriptor = .standardOutput
        case .stderr: descriptor = .standardError
        case .file(let path): descriptor = try LogDescriptor(path: path)
        }
    }

    /// Lines dropped because the destination could not take them (disk full, writer stuck).
    public var dropped: Int { droppedLines.load(ordering: .relaxed) }

    /// Gives each loop its buffer and flush timer. Call once, before serving.
    public func attach(to eventLoops: [EventLoop]) {
        loops = eventLoops.map { loop in
            let buffer = LoopBuffer(formatter: AccessLogFormatter(format: settings.format, query: settings.query))
            loop.queue.setSpecific(key: key, value: buffer)
            loop.queue.sync {
                let timer = DispatchSource.makeTimerSource(queue: loop.queue)
                timer.schedule(deadline: .now() + Self.flushInterval, repeating: Self.flushInterval, leeway: .milliseconds(50))
                // Weak: a service dropped without `shutdown` must not leave a timer on a freed log.
                timer.setEventHandler { [weak self, weak buffer] in
                    if let self, let buffer { self.handOff(buffer) }
                }
                timer.resume()
                buffer.timer = timer
            }
            return (loop, buffer)
        }
    }

    public func requestFinished(_ record: RequestRecord) {
        guard let buffer = DispatchQueue.getSpecific(key: key) else {
            // Not on an event loop this log was attached to (never the case in the gateway).
            var line: [UInt8] = []
            var formatter = AccessLogFormatter(format: settings.format, query: settings.query)
            formatter.append(record, to: &line)
            submit(line, lines: 1)
            return
        }
        buffer.formatter.append(record, to: &buffer.bytes)
        if buffer.bytes.count >= Self.flushBytes { handOff(buffer) }
    }

    /// On the buffer's loop: gives what it holds to the writer.
    private func handOff(_ buffer: LoopBuffer) {
        guard !buffer.bytes.isEmpty else { return }
        let chunk = buffer.bytes
        buffer.bytes = []
        buffer.bytes.reserveCapacity(Self.flushBytes + 4096)
        submit(chunk, lines: nil)
    }

    private func submit(_ chunk: [UInt8], lines: Int?) {
        let size = chunk.count
        if pending.add(size, ordering: .relaxed).newValue > Self.maxPendingBytes {
            pending.subtract(size, ordering: .relaxed)
            dropped(lines ?? Self.lineCount(chunk), reason: "the log writer is behind (destination stalled)")
            return
        }
        writer.async { [self] in
            let error = descriptor.write(chunk)
            pending.subtract(size, ordering: .relaxed)
            if let error { dropped(lines ?? Self.lineCount(chunk), reason: "\(error)") }
        }
    }

    private static func lineCount(_ chunk: [UInt8]) -> Int {
        chunk.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    }

    private func dropped(_ lines: Int, reason: String) {
        let total = droppedLines.add(lines, ordering: .relaxed).newValue
        let (log, _) = dropWarning.admit(now: WallClock.nowMilliseconds())
        if log {
            logger.warning("access log lines dropped", metadata: [
                "access_log.path": "\(settings.destination)", "dropped_total": "\(total)", "error": "\(reason)",
            ])
        }
    }

    /// Writes out every loop's buffer and waits until the writer is done. Call off the loops, after
    /// the server drained (so the last requests are in); stops the flush timers.
    public func flush() {
        for (loop, buffer) in loops {
            loop.queue.sync {
                buffer.timer?.cancel()
                buffer.timer = nil
                handOff(buffer)
            }
        }
        writer.sync {}
    }

    /// SIGUSR1: opens the file again at its path (after logrotate moved it). A write under way
    /// finishes in the old file; the next ones go to the new file.
    public func reopen() throws(SystemError) {
        try descriptor.reopen()
    }
}
