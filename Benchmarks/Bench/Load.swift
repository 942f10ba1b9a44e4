import ArgumentParser
import Dispatch
import Foundation
import LoadGenerator

/// `cachegateway-bench load URL`: the raw generator against one URL.
struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put load on one URL and print throughput, statuses, Cache-Status counts and latency percentiles.",
        discussion: """
            Stops after --duration or --requests, whichever comes first; Ctrl-C stops early and prints what \
            was measured so far (a second Ctrl-C quits at once). A request without an answer within \
            --timeout counts as a timeout. With --burst N: opens N connections, then sends one request on \
            each as close together as possible and waits for every answer (a herd on a cold key).
            """
    )

    @Argument(help: "The URL to load, e.g. http://127.0.0.1:8080/catalog/items?page=7 (http only).")
    var url: TargetURL

    @Option(name: [.short, .long], help: "Connections (the open loop may open up to 4 × this many when all are busy).")
    var connections = 64

    @Option(name: [.short, .long], help: "How long to send requests: 500ms, 10s, 2m.")
    var duration = BenchDuration(.seconds(10))

    @Option(name: [.short, .long], help: "Stop after this many requests.")
    var requests: Int?

    @Option(name: .long, help: "Open loop: this many requests per second, on a fixed schedule.")
    var rate: Double?

    @Option(name: [.customShort("H"), .long], help: "A header to send, 'Name: value' (repeatable).")
    var header: [HeaderArgument] = []

    @Option(name: [.short, .long], help: "The request method.")
    var method = "GET"

    @Option(name: .long, help: "A request without a complete answer after this long is a timeout.")
    var timeout = BenchDuration(.seconds(10))

    @Option(name: .long, help: "Event-loop threads of the generator.")
    var threads = 1

    @Option(name: .long, help: "Open this many connections, send one request on each at once, wait for every answer (--connections, --duration, --requests and --rate do not apply).")
    var burst: Int?

    @Option(name: .long, help: "Also write the result as JSON to this file.")
    var json: String?

    func validate() throws {
        guard connections >= 1 else { throw ValidationError("--connections must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if let r = rate, !(r > 0) { throw ValidationError("--rate must be above 0") }
        if let n = requests, n < 1 { throw ValidationError("--requests must be at least 1") }
        if let n = burst, n < 1 { throw ValidationError("--burst must be at least 1") }
    }

    func run() throws {
        let request = LoadRequest(method: method, target: url.target, headers: header.map { ($0.name, $0.value) })
        if let count = burst {
            print("\(method) \(url.text)  \(NumberText.grouped(count)) requests at once, one per connection")
            try report(try LoadGenerator.burst(host: url.host, port: url.port, count: count, request: request, timeout: timeout.value))
            return
        }
        let mode: LoadMode = rate.map { .openLoop(connections: connections, ratePerSecond: $0) } ?? .closedLoop(connections: connections)
        let spec = LoadSpec(host: url.host, port: url.port, mode: mode, duration: duration.value, maxRequests: requests,
                            timeout: timeout.value, threads: threads, request: request)

        let pacing = rate.map { "\(NumberText.grouped(Int($0))) req/s scheduled" } ?? "closed loop"
        print("\(method) \(url.text)  \(connections) connections, \(pacing), \(duration.text)"
              + (requests.map { " or \(NumberText.grouped($0)) requests" } ?? ""))
        let interactive = isatty(STDOUT_FILENO) == 1
        let stopper = StopOnInterrupt()
        let liveLine: @Sendable (LoadProgress) -> Void = { p in
            var line = "  \(NumberText.fixed(p.elapsedSeconds, 0)) s   \(NumberText.grouped(p.requests)) requests   "
            line += "\(NumberText.grouped(Int(p.currentRequestsPerSecond.rounded()))) req/s"
            if p.errors > 0 || p.timeouts > 0 { line += "   \(p.errors) errors   \(p.timeouts) timeouts" }
            print("\r\u{1B}[K" + line, terminator: "")
            fflush(nil)
        }
        let result = try LoadGenerator.run(spec, progress: interactive ? liveLine : nil)
        if interactive { print("\r\u{1B}[K", terminator: "") }
        if stopper.interrupted { print("(stopped by Ctrl-C)") }
        try report(result)
        stopper.cancel()
    }

    private func report(_ result: LoadResult) throws {
        print(result.summary)
        if let path = json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: path))
        }
    }
}

/// SIGINT stops the run (``LoadGenerator/requestStop()``); a second one exits at once.
final class StopOnInterrupt: @unchecked Sendable {
    private let source: DispatchSourceSignal
    private let lock = NSLock()
    private var count = 0

    init() {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler { [self] in
            let n = lock.withLock { count += 1; return count }
            if n > 1 { _exit(130) }
            LoadGenerator.requestStop()
        }
        source.resume()
    }

    var interrupted: Bool { lock.withLock { count > 0 } }

    func cancel() {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
}
