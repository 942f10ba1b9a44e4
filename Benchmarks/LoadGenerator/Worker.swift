import CLoadGen
import Histogram
#if canImport(Glibc)
import Glibc
#endif

/// One event-loop thread of a run: its own epoll instance, its share of the connections and
/// of the requests (indices `firstIndex`, `firstIndex + stride`, …), its own histogram and
/// counters, merged by ``LoadGenerator`` at the end. Everything here is used on one thread.
final class Worker {
    enum Plan {
        case closedLoop
        /// Nanoseconds between two scheduled requests (of the whole run, all workers).
        case openLoop(intervalNs: Double)
        /// Every connection sends one request, all at once.
        case herd
    }

    struct Settings {
        var plan: Plan
        /// Where connection slots go: slot j of this worker is the run's connection
        /// `firstIndex + j * stride`, sent to `addresses[that % addresses.count]`.
        var addresses: [SocketAddress]
        var encoder: RequestEncoder
        var makeRequest: @Sendable (Int) -> LoadRequest
        var firstIndex: Int
        var stride: Int
        /// Indices at or above this are not sent.
        var maxRequests: Int
        var durationNs: UInt64
        var timeoutNs: UInt64
        var connections: Int
        /// The open loop grows its pool up to this.
        var maxConnections: Int
        var shared: SharedCounters
        var stopGeneration: Int
        var progress: (@Sendable (LoadProgress) -> Void)?
        /// Keep one ``LoadSample`` per answer (``LoadSpec/recordSamples``).
        var recordSamples = false
    }

    enum ErrorKind: Int, CaseIterable {
        case connect, write, read, closed, invalid
        var name: String { "\(self)" }
    }

    /// How long a slot waits before connecting again after a failed connect.
    static let reconnectBackoffNs: UInt64 = 10_000_000
    static let sweepIntervalNs: UInt64 = 10_000_000
    /// The longest epoll wait, so that a stop request is seen soon.
    static let maxWaitNs: UInt64 = 50_000_000
    static let highestTrackableMicros: UInt64 = 60_000_000

    private let s: Settings
    private let epoll: Epoll
    private let buffer: UnsafeMutableRawBufferPointer
    private var connections: [Connection] = []

    // Progress of the run.
    private var t0: UInt64 = 0
    private var endNs: UInt64 = 0
    private var running = false
    /// More requests may be started.
    private var issuing = true
    private var issued = 0
    /// Connections carrying a request.
    private var busyCount = 0
    private var connectingCount = 0
    private var openCount = 0
    /// Open loop: the next request's scheduled time.
    private var nextDue: UInt64 = 0
    /// Open loop: requests due and not yet sent (index, scheduled time).
    private var queue = FIFO<(index: Int, at: UInt64)>()
    /// Open loop: connections ready for a request.
    private var idle: [Int] = []
    /// Slots to connect at the next turn of the loop (not at once, to keep failures from recursing).
    private var toOpen: [Int] = []
    private(set) var stopped = false

    // Results.
    private(set) var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: Worker.highestTrackableMicros, numberOfSignificantValueDigits: .three)
    private(set) var responses = 0
    private(set) var timeouts = 0
    private(set) var bodyBytes = 0
    private(set) var reconnects = 0
    private(set) var connectionsOpened = 0
    private(set) var errorCounts = [Int](repeating: 0, count: ErrorKind.allCases.count)
    private(set) var statusCounts = [Int](repeating: 0, count: 1000)
    private(set) var cacheStatusValues: [[UInt8]] = []
    private(set) var cacheStatusCounts: [Int] = []
    private(set) var elapsedNs: UInt64 = 0
    /// One per answer when `recordSamples`; the Cache-Status as an index into `cacheStatusValues`
    /// (-1: none), turned into strings once, in the merge.
    private(set) var samples: [(startMicros: Int, micros: Int, status: Int, cacheStatus: Int)] = []
    /// What went wrong first, for people: `connect: Connection refused`.
    private(set) var firstError: String?

    init(_ settings: Settings) throws(LoadError) {
        s = settings
        epoll = try Epoll()
        buffer = .allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        for c in connections where c.phase != .closed { Sys.close(c.fd) }
        epoll.close()
        buffer.deallocate()
    }

    var errors: Int { errorCounts.reduce(0, +) }

    // MARK: Running

    /// Opens the first connections and waits (at most the timeout) until each is connected or
    /// has failed, so that connecting is not part of the first requests' latency.
    func preconnect() {
        for slot in 0..<s.connections {
            connections.append(Connection(slot: slot))
            open(connections[slot], now: Sys.now())
        }
        let deadline = Sys.now() + s.timeoutNs
        while connectingCount > 0 {
            let now = Sys.now()
            if now >= deadline || stopRequested { break }
            handleEvents(epoll.wait(timeoutNanoseconds: Int64(min(deadline - now, Self.maxWaitNs))))
        }
        for c in connections where c.phase == .connecting { abandon(c) }
    }

    /// Runs until the plan is done, the duration is over and the last responses are in, or a
    /// stop is requested. `start` is the run's time zero, the same for every worker.
    func run(start: UInt64) {
        t0 = start
        endNs = start &+ s.durationNs
        running = true
        nextDue = start
        switch s.plan {
        case .closedLoop:
            for c in connections {
                if c.phase == .open { closedLoopNext(c, now: Sys.now()) } else { toOpen.append(c.slot) }
            }
        case .openLoop:
            for c in connections where c.phase == .open { idle.append(c.slot) }
        case .herd:
            startHerd()
        }

        var nextSweep = start &+ Self.sweepIntervalNs
        var nextReport = start &+ 1_000_000_000
        var lastReport = (at: start, responses: 0)
        while true {
            var now = Sys.now()
            if stopRequested {
                stopped = true
                break
            }
            if !toOpen.isEmpty {
                let slots = toOpen
                toOpen.removeAll(keepingCapacity: true)
                for slot in slots where connections[slot].phase == .closed { open(connections[slot], now: now) }
                now = Sys.now()
            }
            if case let .openLoop(intervalNs) = s.plan {
                schedule(now: now, intervalNs: intervalNs)
                dispatchQueue(now: now)
            }
            if now >= nextSweep {
                sweep(now: now)
                nextSweep = now &+ Self.sweepIntervalNs
            }
            if let progress = s.progress, now >= nextReport {
                let total = s.shared.responses.load(ordering: .relaxed)
                let seconds = Double(now - lastReport.at) / 1e9
                progress(LoadProgress(
                    elapsedSeconds: Double(now - t0) / 1e9,
                    requests: total,
                    currentRequestsPerSecond: seconds > 0 ? Double(total - lastReport.responses) / seconds : 0,
                    errors: s.shared.errors.load(ordering: .relaxed),
                    timeouts: s.shared.timeouts.load(ordering: .relaxed)))
                lastReport = (now, total)
                nextReport = now &+ 1_000_000_000
            }
            if isFinished { break }

            var wake = min(nextSweep, now &+ Self.maxWaitNs)
            if s.progress != nil { wake = min(wake, nextReport) }
            if case .openLoop = s.plan, issuing { wake = min(wake, nextDue) }
            let wait: Int64 = toOpen.isEmpty ? Int64(wake > now ? wake - now : 0) : 0
            handleEvents(epoll.wait(timeoutNanoseconds: wait))
        }
        elapsedNs = Sys.now() - t0
        for c in connections where c.phase != .closed { close(c) }
    }

    private var stopRequested: Bool {
        StopSignal.generation.load(ordering: .relaxed) != s.stopGeneration
    }

    private var isFinished: Bool {
        switch s.plan {
        case .closedLoop: !issuing && busyCount == 0
        case .openLoop: !issuing && queue.isEmpty && busyCount == 0
        case .herd: busyCount == 0
        }
    }

    /// The next index of this worker, if one may still be sent.
    private func takeIndex() -> Int? {
        let index = s.firstIndex + issued * s.stride
        guard issuing, index < s.maxRequests else {
            issuing = false
            return nil
        }
        issued += 1
        return index
    }

    // MARK: Plans

    /// Closed loop: a connection is ready; give it its next request, if any.
    private func closedLoopNext(_ c: Connection, now: UInt64) {
        if c.busy {
            resend(c, now: now)
            return
        }
        guard now < endNs, let index = takeIndex() else {
            issuing = false
            return
        }
        start(c, index: index, from: now, now: now)
    }

    /// Open loop: queues the requests whose time has come.
    private func schedule(now: UInt64, intervalNs: Double) {
        while issuing {
            let index = s.firstIndex + issued * s.stride
            guard index < s.maxRequests else {
                issuing = false
                break
            }
            let at = t0 &+ UInt64(Double(index) * intervalNs)
            guard at < endNs else {
                issuing = false
                break
            }
            guard at <= now else {
                nextDue = at
                break
            }
            issued += 1
            queue.append((index, at))
        }
    }

    /// Open loop: queued requests go to idle connections; when there are none, more connections
    /// are opened (up to the cap); past that, requests wait in the queue.
    private func dispatchQueue(now: UInt64) {
        while !queue.isEmpty, let slot = idle.popLast() {
            let c = connections[slot]
            guard c.phase == .open, !c.busy else { continue }
            let next = queue.removeFirst()
            start(c, index: next.index, from: next.at, now: now)
        }
        // A connect often completes at once on loopback and takes a request: count again each time.
        var attempts = queue.count
        while attempts > 0 && queue.count > connectingCount && openCount + connectingCount < s.maxConnections {
            let c: Connection
            if let closed = connections.first(where: { $0.phase == .closed && !$0.busy }) {
                c = closed
            } else {
                c = Connection(slot: connections.count)
                connections.append(c)
            }
            open(c, now: now)
            attempts -= 1
        }
    }

    /// Open loop: a connection is ready; give it the oldest queued request, or keep it idle.
    private func openLoopNext(_ c: Connection, now: UInt64) {
        if c.busy {
            resend(c, now: now)
        } else if !queue.isEmpty {
            let next = queue.removeFirst()
            start(c, index: next.index, from: next.at, now: now)
        } else {
            idle.append(c.slot)
        }
    }

    /// Herd: the same request prepared on every connected connection, then written on all of
    /// them in one tight loop; each request's latency counts from its own write.
    private func startHerd() {
        for c in connections {
            guard let index = takeIndex() else { break }
            if c.phase == .open {
                prepare(c, index: index, from: 0, now: 0)
            } else {
                countError(.connect, c.lastError)
            }
        }
        for c in connections where c.busy {
            c.startNs = Sys.now()
            c.deadline = c.startNs &+ s.timeoutNs
            write(c)
        }
        issuing = false
    }

    /// A connection is ready for a request (just connected, or its response is complete).
    private func ready(_ c: Connection, now: UInt64) {
        guard running else { return }
        switch s.plan {
        case .closedLoop: closedLoopNext(c, now: now)
        case .openLoop: openLoopNext(c, now: now)
        case .herd: if c.busy { resend(c, now: now) }
        }
    }

    /// A connection was closed and carries no request: what the slot does next. The closed loop
    /// reconnects while it has requests to send; the open loop keeps its pool at the given
    /// number of connections (beyond that, connections are opened only when requests wait).
    private func closedSlot(_ c: Connection, now: UInt64, backoff: Bool) {
        guard running, issuing else { return }
        switch s.plan {
        case .closedLoop: break
        case .openLoop: guard openCount + connectingCount + toOpen.count < s.connections else { return }
        case .herd: return
        }
        if backoff {
            c.reopenAt = now &+ Self.reconnectBackoffNs
        } else {
            toOpen.append(c.slot)
        }
    }

    /// Timeouts, connects that take too long, slots due to reconnect, queued requests that
    /// waited too long.
    private func sweep(now: UInt64) {
        if case .closedLoop = s.plan, now >= endNs { issuing = false }
        for c in connections {
            if c.busy && now >= c.deadline {
                timeout(c, now: now)
            } else if c.phase == .connecting && now >= c.connectDeadline {
                connectFailed(c, error: ETIMEDOUT, now: now)
            } else if c.phase == .closed && c.reopenAt != 0 && now >= c.reopenAt {
                c.reopenAt = 0
                if issuing { open(c, now: now) }
            }
        }
        while let head = queue.first, now >= head.at &+ s.timeoutNs {
            _ = queue.removeFirst()
            countTimeout()
        }
    }

    // MARK: Requests

    /// Encodes request `index` on `c` without writing it.
    private func prepare(_ c: Connection, index: Int, from startNs: UInt64, now: UInt64) {
        let request = s.makeRequest(index)
        s.encoder.encode(request, into: &c.out)
        c.outOffset = 0
        c.parser.reset(isHeadRequest: request.method == "HEAD")
        c.busy = true
        busyCount += 1
        c.writing = true
        c.isRetry = false
        c.index = index
        c.startNs = startNs
        c.deadline = now &+ s.timeoutNs
    }

    private func start(_ c: Connection, index: Int, from startNs: UInt64, now: UInt64) {
        prepare(c, index: index, from: startNs, now: now)
        write(c)
    }

    /// Sends the request again on the new socket (its first one met a closed keep-alive connection).
    private func resend(_ c: Connection, now: UInt64) {
        c.outOffset = 0
        c.writing = true
        c.parser.reset(isHeadRequest: c.out.starts(with: [72, 69, 65, 68, 32]))  // "HEAD "
        write(c)
    }

    private func write(_ c: Connection) {
        while c.outOffset < c.out.count {
            let result = c.out.withUnsafeBytes { Sys.send(c.fd, UnsafeRawBufferPointer(rebasing: $0[c.outOffset...])) }
            switch result {
            case let .bytes(n):
                c.outOffset += n
            case .wouldBlock:
                if !c.writeInterest {
                    c.writeInterest = true
                    epoll.modify(c.fd, interest: UInt32(LG_EV_IN | LG_EV_OUT | LG_EV_RDHUP), data: c.token)
                }
                return
            case .eof:
                failed(c, .write, 0, now: Sys.now())
                return
            case let .failed(code):
                failed(c, .write, code, now: Sys.now())
                return
            }
        }
        c.writing = false
        if c.writeInterest {
            c.writeInterest = false
            epoll.modify(c.fd, interest: UInt32(LG_EV_IN | LG_EV_RDHUP), data: c.token)
        }
    }

    private func readable(_ c: Connection) {
        while true {
            switch Sys.recv(c.fd, into: buffer) {
            case let .bytes(n):
                guard c.busy else {
                    // Bytes nobody asked for (a server's goodbye on an idle connection).
                    drop(c)
                    return
                }
                switch c.parser.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) {
                case .needMore:
                    if n < buffer.count { return }
                case let .complete(consumed):
                    completed(c, now: Sys.now(), leftover: consumed < n)
                    return
                case .invalid:
                    failed(c, .invalid, 0, now: Sys.now())
                    return
                }
            case .wouldBlock:
                return
            case .eof:
                if !c.busy {
                    drop(c)
                } else if case .complete = c.parser.endOfInput() {
                    completed(c, now: Sys.now(), leftover: false)
                } else {
                    failed(c, .closed, 0, now: Sys.now())
                }
                return
            case let .failed(code):
                if c.busy { failed(c, .read, code, now: Sys.now()) } else { drop(c) }
                return
            }
        }
    }

    /// A complete response: record it, then reuse the connection or replace it.
    private func completed(_ c: Connection, now: UInt64, leftover: Bool) {
        let micros = now > c.startNs ? (now - c.startNs + 500) / 1000 : 0
        histogram.record(min(micros, Self.highestTrackableMicros))
        responses += 1
        s.shared.responses.add(1, ordering: .relaxed)
        let status = c.parser.status
        statusCounts[status < statusCounts.count ? status : 0] += 1
        bodyBytes += c.parser.bodyBytes
        let cacheStatus = c.parser.cacheStatus.map { countCacheStatus(c.parser.head[$0]) } ?? -1
        if s.recordSamples {
            samples.append((c.startNs > t0 ? Int((c.startNs - t0) / 1000) : 0, Int(micros), status, cacheStatus))
        }
        c.busy = false
        busyCount -= 1
        c.reused = true
        if c.parser.mustClose || leftover || c.writing {
            close(c)
            closedSlot(c, now: now, backoff: false)
        } else {
            ready(c, now: now)
        }
    }

    /// The request on `c` failed: send it once more on a new connection if the server had just
    /// closed a kept-alive one, else count the error.
    private func failed(_ c: Connection, _ kind: ErrorKind, _ code: Int32, now: UInt64) {
        let retry = c.reused && !c.isRetry && !c.parser.receivedAny && kind != .invalid
        close(c, abort: true)
        if retry && running {
            c.isRetry = true
            toOpen.append(c.slot)
            return
        }
        countError(kind, code)
        finishBusy(c)
        closedSlot(c, now: now, backoff: false)
    }

    private func timeout(_ c: Connection, now: UInt64) {
        countTimeout()
        if c.phase != .closed { close(c, abort: true) }
        finishBusy(c)
        closedSlot(c, now: now, backoff: false)
    }

    private func finishBusy(_ c: Connection) {
        if c.busy {
            c.busy = false
            busyCount -= 1
        }
    }

    private func countError(_ kind: ErrorKind, _ code: Int32) {
        errorCounts[kind.rawValue] += 1
        if firstError == nil {
            switch kind {
            case .closed: firstError = "the server closed the connection before the response was complete"
            case .invalid: firstError = "a response that is not valid HTTP/1.1"
            default: firstError = "\(kind.name): \(code != 0 ? Sys.errorName(code) : "connection closed")"
            }
        }
        s.shared.errors.add(1, ordering: .relaxed)
    }

    private func countTimeout() {
        timeouts += 1
        s.shared.timeouts.add(1, ordering: .relaxed)
    }

    /// Counts the value; returns its index in `cacheStatusValues` (-1 past the first 256 values).
    @discardableResult
    private func countCacheStatus(_ value: ArraySlice<UInt8>) -> Int {
        for i in cacheStatusValues.indices where cacheStatusValues[i].elementsEqual(value) {
            cacheStatusCounts[i] += 1
            return i
        }
        if cacheStatusValues.count < 256 {
            cacheStatusValues.append(Array(value))
            cacheStatusCounts.append(1)
            return cacheStatusValues.count - 1
        }
        return -1
    }

    // MARK: Connections

    private func open(_ c: Connection, now: UInt64) {
        // The rule of LoadSpec.port(ofConnection:among:), over the resolved addresses.
        let (fd, outcome) = Sys.connect(to: s.addresses[(s.firstIndex + c.slot * s.stride) % s.addresses.count])
        if case let .failed(error) = outcome {
            if fd >= 0 { Sys.close(fd) }
            connectFailed(c, error: error, now: now)
            return
        }
        c.fd = fd
        c.generation &+= 1
        c.reused = false
        c.writeInterest = false
        c.reopenAt = 0
        if case .connected = outcome {
            epoll.add(fd, interest: UInt32(LG_EV_IN | LG_EV_RDHUP), data: c.token)
            connected(c, now: now)
        } else {
            c.phase = .connecting
            connectingCount += 1
            c.connectDeadline = now &+ s.timeoutNs
            c.writeInterest = true
            epoll.add(fd, interest: UInt32(LG_EV_OUT | LG_EV_RDHUP), data: c.token)
        }
    }

    private func connected(_ c: Connection, now: UInt64) {
        c.phase = .open
        openCount += 1
        connectionsOpened += 1
        if c.everConnected { reconnects += 1 }
        c.everConnected = true
        ready(c, now: now)
    }

    private func finishConnect(_ c: Connection) {
        let error = Sys.connectError(c.fd)
        connectingCount -= 1
        if error != 0 {
            Sys.close(c.fd, abort: true)
            c.phase = .closed
            c.fd = -1
            connectFailed(c, error: error, now: Sys.now())
            return
        }
        c.writeInterest = false
        epoll.modify(c.fd, interest: UInt32(LG_EV_IN | LG_EV_RDHUP), data: c.token)
        connected(c, now: Sys.now())
    }

    /// A connect failed (refused, timed out): one failed request, then the slot tries again
    /// after a short pause (closed loop).
    private func connectFailed(_ c: Connection, error: Int32, now: UInt64) {
        if c.phase == .connecting {
            connectingCount -= 1
            Sys.close(c.fd, abort: true)
        }
        c.phase = .closed
        c.fd = -1
        c.lastError = error
        guard running else { return }
        if c.busy {
            countError(.connect, error)
            finishBusy(c)
        } else {
            switch s.plan {
            case .closedLoop:
                if now < endNs, takeIndex() != nil { countError(.connect, error) }
            case .openLoop:
                if !queue.isEmpty {
                    _ = queue.removeFirst()
                    countError(.connect, error)
                }
            case .herd:
                break
            }
        }
        closedSlot(c, now: now, backoff: true)
    }

    /// Gives up a connect still in progress at the end of ``preconnect()``.
    private func abandon(_ c: Connection) {
        connectingCount -= 1
        c.lastError = ETIMEDOUT
        Sys.close(c.fd, abort: true)
        c.phase = .closed
        c.fd = -1
    }

    /// An idle connection the server closed (or sent junk on): closed; a new one is opened when
    /// needed.
    private func drop(_ c: Connection) {
        close(c)
        if let i = idle.lastIndex(of: c.slot) { idle.remove(at: i) }
        closedSlot(c, now: Sys.now(), backoff: false)
    }

    private func close(_ c: Connection, abort: Bool = false) {
        switch c.phase {
        case .closed: return
        case .connecting: connectingCount -= 1
        case .open: openCount -= 1
        }
        Sys.close(c.fd, abort: abort)
        c.fd = -1
        c.phase = .closed
        c.writeInterest = false
    }

    // MARK: Events

    private func handleEvents(_ events: UnsafeBufferPointer<lg_event>) {
        for event in events {
            let slot = Int(truncatingIfNeeded: event.data & 0xffff_ffff)
            let generation = UInt32(truncatingIfNeeded: event.data >> 32)
            let c = connections[slot]
            guard c.generation == generation, c.phase != .closed else { continue }
            if c.phase == .connecting {
                finishConnect(c)
                continue
            }
            if event.events & UInt32(LG_EV_OUT) != 0 && c.writing {
                write(c)
                guard c.generation == generation, c.phase == .open else { continue }
            }
            if event.events & UInt32(LG_EV_IN | LG_EV_ERR | LG_EV_HUP | LG_EV_RDHUP) != 0 {
                readable(c)
            }
        }
    }
}
