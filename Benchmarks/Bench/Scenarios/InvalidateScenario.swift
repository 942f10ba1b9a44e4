import Dispatch
import Foundation
import LoadGenerator

#if canImport(Glibc)
import Glibc
#endif

/// `invalidate`: two gateway instances (two processes, one Redis, each its own consumer group on
/// the purge stream) in front of one demo monolith, a steady open-loop load on one hot key through
/// both. The bench changes the data (`POST /__version`), `XADD`s a purge of the hot key, and a
/// checker polls both instances every millisecond until both answer the new version; then the
/// backend calls the purge caused are counted. Hard purges (delete) and soft ones (mark stale,
/// served under stale_while_revalidate while a refresh runs) in turn. Gateway only: open-source
/// nginx has no purge (`proxy_cache_purge` is in the commercial version or a third-party module).
enum InvalidateScenario: Scenario {
    static let name = "invalidate"
    static let instances = 2
    /// Per instance, open loop.
    static let ratePerInstance = 500.0
    static let connections = 16
    static let staleWhileRevalidateSeconds = 30
    /// A purge whose new version is not seen on every instance by then counts as missed.
    static let deadlineSeconds = 5.0

    static func run(_ context: BenchContext) throws -> ScenarioReport {
        let o = context.options
        let purges = o.smoke ? 3 : 10
        let spacing = o.smoke ? 0.5 : 1.0
        let title = "Invalidation across instances"
        guard context.targets.contains(.gateway) else {
            return ScenarioReport(name: name, title: title, summary: "Needs the gateway (--targets).", cases: [], checks: [])
        }
        context.say("== invalidate: \(instances) gateway instances on one Redis stream, \(Format.rate(ratePerInstance)) req/s each on one hot key (open loop); "
            + "\(purges) hard then \(purges) soft purges, \(Format.seconds(spacing)) apart")
        var checks = Checks(name)
        let stream = "bench:\(context.runID):invalidations"
        let fresh = FreshRoute(ttlSeconds: 300, staleWhileRevalidateSeconds: staleWhileRevalidateSeconds, staleIfErrorSeconds: 0)

        var started: [ManagedProcess] = []
        defer { for p in started.reversed() { p.stop() } }
        let backend = try Backend.start(delayMs: o.backendDelayMs, bodySize: 1024, concurrency: 0, logDir: context.workDir,
                                        name: "demo-monolith-invalidate")
        started.append(backend.process)
        var ports: [Int] = []
        for i in 0..<instances {
            let port = try Ports.free()
            let instance = "bench-\(context.runID)-\(i)"
            let config = BenchContext.gatewayConfig(
                port: port, backendPort: backend.port, redisPort: context.redis.port, keyPrefix: "bench:\(context.runID):invalidate:",
                workers: o.workers, tag: "invalidate-\(i)", fresh: fresh, invalidation: (stream, instance), accessLog: o.accessLog)
            let gateway = try GatewayService.start(config: config, port: port, logDir: context.workDir, name: "gateway-invalidate-\(i)")
            started.append(gateway.process)
            ports.append(port)
        }
        try waitForGroups(redisPort: context.redis.port, stream: stream,
                          groups: (0..<instances).map { "cachegateway:bench-\(context.runID)-\($0)" })

        var runs: [InvalidateRun] = []
        var cases: [CaseReport] = []
        for soft in [false, true] {
            let mode = soft ? "soft" : "hard"
            let hot = "\(FreshRoute.prefix)invalidate/\(context.runID)/\(mode)"
            for port in ports {
                let fill = try ControlHTTP.request(port: port, path: hot)
                checks.expect(fill.status == 200, .gateway, "the \(mode) key's fill answered 200", "status \(fill.status)")
            }
            try backend.reset()
            let warmup = 0.3
            let loadSeconds = warmup + Double(purges) * spacing + 0.2
            let loads = startLoads(ports: ports, path: hot, seconds: loadSeconds)
            usleep(UInt32(warmup * 1e6))

            var run = InvalidateRun(mode: mode, instances: instances, purges: purges, spacingSeconds: spacing,
                                    staleWhileRevalidateSeconds: soft ? staleWhileRevalidateSeconds : 0)
            for _ in 0..<purges {
                let before = try backend.stats().paths[hot] ?? 0
                let version = try bumpVersion(backend)
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try RedisControl.command(port: context.redis.port, ["XADD", stream, "*", "event", event(path: hot, soft: soft)])
                let seen = try pollUntilNewVersion(ports: ports, path: hot, version: version, since: t0)
                if let last = seen.max(), seen.count == ports.count {
                    run.latencyMicros.append(last)
                    run.firstMicros.append(seen.min()!)
                } else {
                    run.unseen += 1
                }
                // The rest of the spacing: the purge's refreshes are over long before (one backend delay).
                let next = t0 + UInt64(spacing * 1e9)
                let now = DispatchTime.now().uptimeNanoseconds
                if next > now { usleep(UInt32((next - now) / 1000)) }
                run.backendCalls.append((try backend.stats().paths[hot] ?? 0) - before)
            }
            let outcomes = loads.wait()
            let merged = LoadOutcome.merged(outcomes)
            let calls = try backend.stats().paths[hot] ?? 0
            runs.append(run)
            cases.append(CaseReport(name: "\(mode) purge", description: "\(instances) instances × \(Format.rate(ratePerInstance)) req/s on the hot key while it is purged \(purges) times",
                                    runs: [TargetRun(target: .gateway, result: merged, backendCalls: calls, offeredRate: ratePerInstance * Double(instances))]))
            context.sayRun("\(mode) purge", .gateway, merged, backendCalls: calls)
            context.say("   \(mode): XADD → every instance answers the new version p50 \(Format.ms(run.p50Micros)), p99 \(Format.ms(run.p99Micros)) "
                + "(first instance p50 \(Format.ms(Percentile.nearestRank(run.firstMicros, 0.5)))); backend calls per purge \(run.backendCalls.map(String.init).joined(separator: " ")) "
                + "(mean \(String(format: "%.2f", run.callsPerPurge))); \(Format.count(merged.count(.stale))) stale answers")
            checks.expectAllOK(merged, .gateway)
            checks.expect(run.unseen == 0, .gateway, "every \(mode) purge reached every instance",
                          "\(purges - run.unseen) of \(purges) purges: the new version on all \(instances) instances within \(Format.seconds(deadlineSeconds))")
            if soft {
                checks.expect(merged.count(.stale) > 0, .gateway, "soft purges are served stale while refreshing",
                              "\(Format.count(merged.count(.stale))) stale answers")
            }
        }
        return ScenarioReport(
            name: name, title: title,
            summary: "\(instances) gateway processes share one Redis and read purges from one stream, each through its own consumer group; "
                + "\(Format.rate(ratePerInstance)) requests/s each on one hot key. The data changes and a purge is added to the stream \(purges) times, "
                + "\(Format.seconds(spacing)) apart, hard (delete) then soft (mark stale, stale_while_revalidate \(staleWhileRevalidateSeconds) s); "
                + "the backend takes \(o.backendDelayMs) ms. Measured: the time from the XADD until every instance answers the new version "
                + "(a checker polls both every millisecond; it includes one backend call), and the backend calls each purge caused.",
            cases: cases, checks: checks.list,
            notes: ["Gateway only: open-source nginx has no purge (proxy_cache_purge is in NGINX Plus or the third-party ngx_cache_purge module).",
                    "Every instance applies every event to the shared Redis entry, so a purge may cost up to one refresh per instance: "
                        + "the second instance's purge can land after the first one stored the new version."],
            invalidate: runs)
    }

    /// The purge event of the README, for one path.
    static func event(path: String, soft: Bool) -> String {
        #"{"purge": {"paths": ["\#(path)"]}, "soft": \#(soft)}"#
    }

    /// Whether an answer of the demo monolith names `version`.
    static func names(_ body: String, version: Int) -> Bool {
        body.contains("\"version\": \(version),")
    }

    private static func bumpVersion(_ backend: Backend) throws -> Int {
        let answer = try ControlHTTP.request(port: backend.port, method: "POST", path: "/__version")
        guard answer.status == 200, let v = Int(answer.body.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw BenchError("demo-monolith /__version answered \(answer.status): \(answer.body.prefix(100))")
        }
        return v
    }

    /// Asks every instance every millisecond until each has answered `version` (or the deadline);
    /// returns, per instance that did, the µs from `since` to its first such answer.
    private static func pollUntilNewVersion(ports: [Int], path: String, version: Int, since: UInt64) throws -> [Double] {
        var seen: [Int: Double] = [:]
        let deadline = since + UInt64(deadlineSeconds * 1e9)
        while seen.count < ports.count && DispatchTime.now().uptimeNanoseconds < deadline {
            for (i, port) in ports.enumerated() where seen[i] == nil {
                let answer = try ControlHTTP.request(port: port, path: path, timeout: deadlineSeconds)
                if answer.status == 200 && names(answer.body, version: version) {
                    seen[i] = Double(DispatchTime.now().uptimeNanoseconds - since) / 1000
                }
            }
            if seen.count < ports.count { usleep(1000) }
        }
        return Array(seen.values)
    }

    private static func waitForGroups(redisPort: Int, stream: String, groups: [String]) throws {
        let deadline = Date().addingTimeInterval(10)
        var have: [String] = []
        while Date() < deadline {
            // An error (no such stream yet) is another try.
            have = (try? RedisControl.command(port: redisPort, ["XINFO", "GROUPS", stream]).strings) ?? []
            if groups.allSatisfy(have.contains) { return }
            usleep(20_000)
        }
        throw BenchError("the gateways' consumer groups \(groups) did not appear on \(stream) within 10 s (have \(have))")
    }

    /// One open-loop load per instance, each on a thread of its own, started now.
    private static func startLoads(ports: [Int], path: String, seconds: Double) -> PendingLoads {
        let pending = PendingLoads(count: ports.count)
        for (i, port) in ports.enumerated() {
            let spec = LoadSpec(port: port, mode: .openLoop(connections: connections, ratePerSecond: ratePerInstance),
                                duration: .milliseconds(Int(seconds * 1000)), timeout: .seconds(5)) { _ in LoadRequest.get(path) }
            pending.group.enter()
            Thread.detachNewThread {
                let outcome = (try? LoadGenerator.run(spec, progress: nil)).map(LoadOutcome.init)
                pending.set(i, outcome)
                pending.group.leave()
            }
        }
        return pending
    }
}

/// The loads of ``InvalidateScenario``, running on their threads.
private final class PendingLoads: @unchecked Sendable {
    let group = DispatchGroup()
    private let lock = NSLock()
    private var outcomes: [LoadOutcome?]

    init(count: Int) { outcomes = Array(repeating: nil, count: count) }

    func set(_ i: Int, _ outcome: LoadOutcome?) { lock.withLock { outcomes[i] = outcome } }

    /// Waits for every load; a load that could not run counts as an empty outcome (failing the checks).
    func wait() -> [LoadOutcome] {
        group.wait()
        return lock.withLock { outcomes.compactMap { $0 } }
    }
}

enum Percentile {
    /// The nearest-rank percentile (`q` in 0...1) of `values`; 0 when there are none. With 10
    /// values, p99 is the largest.
    static func nearestRank(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = max(1, Int((q * Double(sorted.count)).rounded(.up)))
        return sorted[min(rank, sorted.count) - 1]
    }
}
