import Histogram
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP/1.1 load generator: many keep-alive connections from one process, driven by one
/// `epoll` loop per thread (non-blocking sockets, requests written whole, responses parsed as they
/// arrive, one request outstanding per connection), latencies in an HDR histogram.
public enum LoadGenerator {
    /// Runs `spec` and returns what was measured. Blocks the calling thread, which runs the first
    /// event loop (the others, if `spec.threads > 1`, get threads of their own).
    ///
    /// - Parameters:
    ///   - spec: target, pacing and bounds.
    ///   - progress: called about once a second, on the generator's thread (keep it short).
    /// - Throws: ``LoadError`` when the spec is invalid or the host cannot be resolved; failures
    ///   of requests are counted in the result, never thrown.
    public static func run(_ spec: LoadSpec, progress: (@Sendable (LoadProgress) -> Void)? = nil) throws -> LoadResult {
        let connections: Int
        let plan: Worker.Plan
        switch spec.mode {
        case let .closedLoop(n):
            connections = n
            plan = .closedLoop
        case let .openLoop(n, rate):
            guard rate > 0, rate.isFinite else { throw LoadError("the rate must be above 0 requests per second (got \(rate))") }
            connections = n
            plan = .openLoop(intervalNs: 1e9 / rate)
        }
        guard connections >= 1 else { throw LoadError("at least 1 connection is needed (got \(connections))") }
        guard spec.threads >= 1 else { throw LoadError("at least 1 thread is needed (got \(spec.threads))") }
        guard spec.duration >= .zero else { throw LoadError("the duration cannot be negative") }
        guard spec.timeout > .zero else { throw LoadError("the timeout must be positive") }
        if let max = spec.maxRequests, max < 0 { throw LoadError("maxRequests cannot be negative (got \(max))") }

        let addresses = try spec.ports.map { port throws(LoadError) in try resolve(host: spec.host, port: port) }
        let threads = min(spec.threads, connections)
        Sys.raiseOpenFileLimit(to: 4 * connections + threads + 64)
        let stopGeneration = StopSignal.generation.load(ordering: .relaxed)
        let shared = SharedCounters()
        let workers = try (0..<threads).map { k throws(LoadError) in
            let share = connections / threads + (k < connections % threads ? 1 : 0)
            return try Worker(Worker.Settings(
                plan: plan,
                addresses: addresses,
                encoder: RequestEncoder(host: spec.host, port: spec.port),
                makeRequest: spec.request,
                firstIndex: k,
                stride: threads,
                maxRequests: spec.maxRequests ?? Int.max,
                durationNs: nanoseconds(spec.duration),
                timeoutNs: nanoseconds(spec.timeout),
                connections: share,
                maxConnections: 4 * share,
                shared: shared,
                stopGeneration: stopGeneration,
                progress: k == 0 ? progress : nil,
                recordSamples: spec.recordSamples))
        }
        for worker in workers { worker.preconnect() }
        let start = Sys.now()
        let others = workers.dropFirst().map { worker in startThread { worker.run(start: start) } }
        workers[0].run(start: start)
        for thread in others { pthread_join(thread, nil) }
        return merge(workers)
    }

    /// A herd: opens `count` connections first, then writes the same request on all of them as
    /// close together as possible (one tight loop of `send`s, after the requests are encoded),
    /// and waits for every response. Each request's latency counts from its own write.
    ///
    /// - Parameters:
    ///   - otherPorts: More servers on `host`: connection i goes to `([port] + otherPorts)[i % count]`
    ///     (``LoadSpec/port(ofConnection:among:)``), so a herd spreads evenly over several instances.
    ///   - timeout: for the connects, then for each response.
    /// - Returns: `count` outcomes: responses, errors (including connections that could not be
    ///   opened) and timeouts.
    public static func burst(host: String, port: Int, otherPorts: [Int] = [], count: Int, request: LoadRequest,
                             timeout: Duration) throws -> LoadResult {
        guard count >= 1 else { throw LoadError("a burst needs at least 1 request (got \(count))") }
        guard timeout > .zero else { throw LoadError("the timeout must be positive") }
        let addresses = try ([port] + otherPorts).map { port throws(LoadError) in try resolve(host: host, port: port) }
        Sys.raiseOpenFileLimit(to: count + 64)
        let worker = try Worker(Worker.Settings(
            plan: .herd,
            addresses: addresses,
            encoder: RequestEncoder(host: host, port: port),
            makeRequest: { _ in request },
            firstIndex: 0,
            stride: 1,
            maxRequests: count,
            durationNs: nanoseconds(timeout),
            timeoutNs: nanoseconds(timeout),
            connections: count,
            maxConnections: count,
            shared: SharedCounters(),
            stopGeneration: StopSignal.generation.load(ordering: .relaxed),
            progress: nil))
        worker.preconnect()
        worker.run(start: Sys.now())
        return merge([worker])
    }

    /// Stops the runs and bursts in progress (e.g. on Ctrl-C): each returns at once with what
    /// it measured so far; requests then in flight are not counted. Safe from any thread (not
    /// from a signal handler: use a Dispatch signal source). Runs started later are not affected.
    public static func requestStop() {
        StopSignal.generation.add(1, ordering: .relaxed)
    }

    // MARK: Helpers

    private static func resolve(host: String, port: Int) throws(LoadError) -> SocketAddress {
        guard (1...65535).contains(port) else { throw LoadError("invalid port \(port)") }
        return try Sys.resolve(host: host, port: port)
    }

    static func nanoseconds(_ d: Duration) -> UInt64 {
        let (seconds, attoseconds) = d.components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) &* 1_000_000_000 &+ UInt64(attoseconds / 1_000_000_000)
    }

    private static func merge(_ workers: [Worker]) -> LoadResult {
        var histogram = workers[0].histogram
        for w in workers.dropFirst() { histogram.add(w.histogram) }
        var result = LoadResult()
        var statuses = [Int](repeating: 0, count: 1000)
        var errorKinds = [Int](repeating: 0, count: Worker.ErrorKind.allCases.count)
        var elapsedNs: UInt64 = 0
        for w in workers {
            result.requests += w.responses
            result.errors += w.errors
            result.timeouts += w.timeouts
            result.bytes += w.bodyBytes
            result.reconnects += w.reconnects
            result.connectionsOpened += w.connectionsOpened
            for (i, n) in w.statusCounts.enumerated() { statuses[i] += n }
            for (i, n) in w.errorCounts.enumerated() { errorKinds[i] += n }
            for (value, n) in zip(w.cacheStatusValues, w.cacheStatusCounts) {
                result.cacheStatus[String(decoding: value, as: UTF8.self), default: 0] += n
            }
            elapsedNs = max(elapsedNs, w.elapsedNs)
            if result.firstError == nil { result.firstError = w.firstError }
        }
        for (status, n) in statuses.enumerated() where n > 0 { result.statuses[status] = n }
        for kind in Worker.ErrorKind.allCases where errorKinds[kind.rawValue] > 0 {
            result.errorKinds[kind.name] = errorKinds[kind.rawValue]
        }
        result.elapsedSeconds = Double(elapsedNs) / 1e9
        result.requestsPerSecond = result.elapsedSeconds > 0 ? Double(result.requests) / result.elapsedSeconds : 0
        result.latency = LatencySummary(histogram)
        if workers.contains(where: { !$0.samples.isEmpty }) {
            var all: [LoadSample] = []
            for w in workers {
                let names = w.cacheStatusValues.map { String(decoding: $0, as: UTF8.self) }
                all += w.samples.map { LoadSample(startMicros: $0.startMicros, latencyMicros: $0.micros, status: $0.status,
                                                  cacheStatus: $0.cacheStatus >= 0 ? names[$0.cacheStatus] : nil) }
            }
            all.sort { $0.startMicros < $1.startMicros }
            result.samples = all
        }
        return result
    }
}

extension LatencySummary {
    /// Summarises a histogram of microseconds.
    init(_ h: Histogram<UInt64>) {
        guard h.totalCount > 0 else {
            self.init()
            return
        }
        func at(_ p: Double) -> Int { Int(h.valueAtPercentile(p)) }
        // Percentile levels as HdrHistogram prints them: 2 ticks per half of the distance to 100 %,
        // down to the resolution the number of values allows.
        var points: [Point] = []
        var level = 0.0
        let total = Double(h.totalCount)
        while level < 100 {
            points.append(Point(percentile: level, micros: at(level)))
            let halvings = (100 / (100 - level)).log2Floor
            if Double(1 << Swift.min(halvings, 60)) > total { break }
            level += 100 / Double(4 << Swift.min(halvings, 60))
        }
        points.append(Point(percentile: 100, micros: Int(h.max)))
        self.init(count: Int(h.totalCount), min: Int(h.min), p50: at(50), p90: at(90), p99: at(99), p999: at(99.9),
                  max: Int(h.max), mean: h.mean, distribution: points)
    }
}

extension Double {
    fileprivate var log2Floor: Int { Int(Glibc.log2(self).rounded(.down)) }
}

/// Counters every worker adds to as it goes; the progress report reads them.
final class SharedCounters: Sendable {
    let responses = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let timeouts = Atomic<Int>(0)
}

/// ``LoadGenerator/requestStop()`` bumps the generation; a run stops when it differs from the
/// one it started with.
enum StopSignal {
    static let generation = Atomic<Int>(0)
}

/// Starts a joinable POSIX thread running `body`.
private func startThread(_ body: @escaping () -> Void) -> pthread_t {
    final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return thread
}
