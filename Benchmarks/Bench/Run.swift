import ArgumentParser
import Foundation
import LoadGenerator

#if canImport(Glibc)
import Glibc
#endif

/// `cachegateway-bench run`: the scenarios against the backend directly, the gateway and nginx,
/// with a terminal table, a JSON file and an HTML report; exits non-zero when an invariant broke.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the benchmark scenarios and write the report.",
        discussion: """
            Scenarios: hit, miss, herd, users, local-soak, shield, expiry, outage, invalidate, scale (or all). Each one starts its own demo monolith,
            gateway (generated config) and nginx proxy_cache (generated config, when nginx is installed),
            runs the same load against the backend directly and through each cache, checks its invariants,
            and stops everything it started. One redis-server is started for the run (or use --redis-port).

            Writes <out>/<timestamp>.json and .html, and latest.json/latest.html; prints a table.
            Exits 1 when an invariant is broken, naming it.
            """
    )

    @Argument(help: "Scenarios to run: all, hit, miss, herd, users, local-soak, shield, expiry, outage, invalidate, scale.")
    var scenarios: [String] = ["all"]

    @Flag(help: "A short run (about 2–3 s of load per target), fewer keys and rounds; still checks every invariant.")
    var smoke = false

    @Option(help: "Measured load per target, e.g. 10s, 500ms, 5m (default 10s, 2.5s with --smoke).")
    var duration: String?

    @Option(help: "Folder for the JSON and HTML reports.")
    var out = "Benchmarks/results"

    @Flag(help: "Do not compare with nginx proxy_cache even when nginx is installed.")
    var noNginx = false

    @Option(help: "The demo monolith's work time per catalog request (per-user requests take twice as long).")
    var backendDelay = "50ms"

    @Option(help: "herd: simultaneous requests per key.")
    var herdSize = 200

    @Option(help: "herd: rounds, each with a fresh key (at most 3 with --smoke).")
    var herdRounds = 5

    @Option(help: "The gateway's Prometheus metrics path on its admin listener (herd reports the gateway's own coalesced-wait histogram).")
    var metricsPath = "/metrics"

    @Option(help: "Gateway event loops, and nginx worker processes.")
    var workers = 2

    @Option(help: "The gateway's in-process tier (cache.local_ttl), e.g. 1s; default 0s: every hit is read from Redis (local-soak: 100ms).")
    var localTTL = "0s"

    @Option(help: "hit: rounds per target and case, taken in turns (gateway, nginx, gateway, nginx, ...); default 3, 2 with --smoke.")
    var rounds: Int?

    @Option(help: "hit: foreign CPU (cores used by other work on the machine) above which a round is noisy and left out of the ratio.")
    var noiseThreshold = HitScenario.defaultNoiseThreshold

    @Flag(help: "Run the gateway and nginx without access logs (default: both write one, buffered 32 KiB / 200 ms, as the gateway does by default).")
    var noAccessLog = false

    @Option(help: "hit: closed-loop connections.")
    var connections = 64

    @Option(help: "users: requests per second offered (open loop).")
    var usersRate = 1000.0

    @Option(help: "shield: how many requests the demo monolith works on at once.")
    var shieldConcurrency = 8

    @Option(help: "Comma-separated targets to measure: direct, gateway, nginx.")
    var targets = "direct,gateway,nginx"

    @Option(help: "Use the redis-server already listening on 127.0.0.1:PORT instead of starting one.")
    var redisPort: Int?

    @Option(help: ArgumentHelp("Run nothing: print the table and rewrite the HTML report of an earlier run's JSON file.", valueName: "json-file"))
    var render: String?

    @Flag(help: "Keep the run's folder (configs and logs of every process) even when everything passed.")
    var keepLogs = false

    func validate() throws {
        for name in scenarios where name != "all" && Scenarios.named(name) == nil {
            throw ValidationError("unknown scenario \"\(name)\": choose from all, \(Scenarios.names.joined(separator: ", "))")
        }
        for t in targets.split(separator: ",") where Target(rawValue: String(t)) == nil {
            throw ValidationError("unknown target \"\(t)\": choose from direct, gateway, nginx")
        }
        _ = try parseDuration(backendDelay, option: "--backend-delay")
        if let duration { _ = try parseDuration(duration, option: "--duration") }
        if let rounds, rounds < 1 { throw ValidationError("--rounds must be at least 1") }
        guard noiseThreshold >= 0, noiseThreshold.isFinite else { throw ValidationError("--noise-threshold must be 0 or more cores") }
        guard herdSize > 0, herdRounds > 0, workers > 0, connections > 0, usersRate > 0, shieldConcurrency > 0 else {
            throw ValidationError("--herd-size, --herd-rounds, --workers, --connections, --users-rate and --shield-concurrency must be positive")
        }
    }

    func run() throws {
        if let render {
            let report = try JSONDecoder().decode(RunReport.self, from: Data(contentsOf: URL(fileURLWithPath: render)))
            let html = (render.hasSuffix(".json") ? String(render.dropLast(5)) : render) + ".html"
            try Data(HTMLReport.render(report).utf8).write(to: URL(fileURLWithPath: html))
            print(TableReport.render(report))
            print("Report: \(html)")
            return
        }
        signal(SIGPIPE, SIG_IGN)
        let started = Date()
        let selected: [any Scenario.Type] = scenarios.contains("all") ? Scenarios.all : Scenarios.all.filter { scenarios.contains($0.name) }
        let delay = try parseDuration(backendDelay, option: "--backend-delay")
        let seconds = try duration.map { try parseDuration($0, option: "--duration") } ?? (smoke ? 2.5 : 10)
        var wanted = targets.split(separator: ",").compactMap { Target(rawValue: String($0)) }
        if noNginx { wanted.removeAll { $0 == .nginx } }
        let options = BenchOptions(
            smoke: smoke, duration: seconds, backendDelayMs: max(1, Int((delay * 1000).rounded())), herdSize: herdSize,
            herdRounds: smoke ? min(herdRounds, 3) : herdRounds, targets: wanted, workers: workers, connections: connections,
            usersRate: usersRate, shieldConcurrency: shieldConcurrency, localTTL: localTTL, rounds: rounds ?? (smoke ? 2 : 3),
            noiseThresholdCores: noiseThreshold, metricsPath: metricsPath, accessLog: !noAccessLog)

        let workDir = try makeWorkDir()
        ProcessRegistry.shared.stopEverythingOnSignals()
        defer { ProcessRegistry.shared.stopAll() }

        var nginxNote: String
        var nginxAvailable = false
        if !wanted.contains(.nginx) {
            nginxNote = noNginx ? "nginx: off (--no-nginx)" : "nginx: off (--targets)"
        } else if let version = NginxService.version(logDir: workDir) {
            nginxNote = "nginx \(version)"
            nginxAvailable = true
        } else {
            nginxNote = "nginx: not installed"
            printError("nginx is not installed: the nginx proxy_cache comparison is left out (apt-get install nginx-light, or Benchmarks/run.sh --with-nginx)")
        }
        let say = { (line: String) in FileHandle.standardError.write(Data((line + "\n").utf8)) }
        say("cachegateway-bench: \(selected.map { $0.name }.joined(separator: ", ")); \(smoke ? "smoke, " : "")\(Format.seconds(seconds)) per target; backend delay \(options.backendDelayMs) ms; \(nginxNote); logs in \(workDir)")

        let redis: RedisService
        if let redisPort {
            guard Ports.accepts(redisPort) else { throw BenchError("nothing listens on 127.0.0.1:\(redisPort) (--redis-port)") }
            redis = RedisService(process: nil, port: redisPort)
        } else {
            redis = try RedisService.start(logDir: workDir)
        }
        let context = BenchContext(options: options, workDir: workDir, redis: redis, nginxAvailable: nginxAvailable)

        var reports: [ScenarioReport] = []
        for scenario in selected {
            do {
                reports.append(try scenario.run(context))
            } catch {
                say("!! \(scenario.name) could not run: \(error)")
                reports.append(ScenarioReport(
                    name: scenario.name, title: scenario.name, summary: "This scenario could not run.", cases: [],
                    checks: [Check(scenario: scenario.name, target: nil, name: "ran to the end", passed: false, detail: "\(error)")]))
            }
        }
        redis.process?.stop()

        let report = RunReport(
            startedAt: Self.iso(started), finishedAt: Self.iso(Date()),
            command: (["cachegateway-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            machine: MachineInfo.current,
            settings: Settings(smoke: smoke, durationSeconds: seconds, backendDelayMs: options.backendDelayMs,
                               herdSize: options.herdSize, herdRounds: options.herdRounds, workers: workers,
                               targets: context.targets, nginx: nginxNote),
            scenarios: reports, goals: Goals.evaluate(reports, options: options))

        let files = try ReportFiles.write(report, folder: out, started: started)
        printError("Report: \(files.html)\nJSON:   \(files.json)")
        print(TableReport.render(report))
        fflush(nil)  // the table before the failure message below

        if report.passed {
            if !keepLogs { try? FileManager.default.removeItem(atPath: workDir) }
        } else {
            let failed = report.failedChecks
            printError("FAILED: \(failed.count) invariant\(failed.count == 1 ? "" : "s") broken (listed above); configs and logs kept in \(workDir)")
            throw ExitCode(1)
        }
    }

    private func makeWorkDir() throws -> String {
        var template = Array("/tmp/cachegateway-bench.XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BenchError("cannot create a folder in /tmp")
        }
        let path = String(cString: dir)
        chmod(path, 0o755)  // nginx's workers (not root) write their cache below it
        return path
    }

    static func iso(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        f.timeZone = .current
        return f.string(from: date)
    }
}

/// "50ms", "2.5s", "5m", "10" (seconds) → seconds.
func parseDuration(_ text: String, option: String) throws -> Double {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        if let v = Double(text.dropLast(suffix.count)), v > 0 { return v * scale }
        break
    }
    if let v = Double(text), v > 0 { return v }
    throw ValidationError("\(option): invalid duration \"\(text)\" (expected e.g. 500ms, 10s, 5m)")
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

extension MachineInfo {
    static var current: MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last!.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return MachineInfo(cores: ProcessInfo.processInfo.activeProcessorCount,
                           memoryGiB: (Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824 * 10).rounded() / 10,
                           cpu: model, kernel: "Linux \(release)")
    }
}
