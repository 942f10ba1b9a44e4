import Foundation
import LoadGenerator
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `users`: a realistic day: popular and unpopular catalog items, thousands of users each asking
/// for their own resources, at a steady offered rate. Hit ratio, backend calls saved, what users
/// wait; and the gateway's resident memory over the run.
enum UsersScenario: Scenario {
    static let name = "users"
    static let connections = 256
    /// A run at least this long checks that the gateway's memory stays flat.
    static let memoryCheckSeconds = 60.0

    static func mix(salt: UInt64) -> UsersMix {
        UsersMix(catalogItems: 10_000, catalogSkew: 1.0, users: 5_000, userSkew: 0.8, perUserShare: 0.2, salt: salt)
    }

    static func run(_ context: BenchContext) throws -> ScenarioReport {
        let o = context.options
        let mix = mix(salt: UInt64(context.runID, radix: 36) ?? 1)
        var checks = Checks(name)
        var runs: [TargetRun] = []
        var memory: MemoryReport? = nil
        context.say("== users: \(Format.rate(o.usersRate)) req/s offered (open loop), \(Format.seconds(o.duration)) per target; \(mix.description)")
        for target in context.targets {
            let run = try Stack.with(context, target, backend: BackendShape(delayMs: o.backendDelayMs), scenario: name) { stack in
                let sampler = target == .gateway ? RSSSampler(pid: stack.front!.pid, every: max(0.25, o.duration / 150)) : nil
                let m = try stack.measure(.openLoop(connections: connections, ratePerSecond: o.usersRate), duration: o.duration,
                                          request: mix.request)
                let samples = sampler?.stop() ?? []
                context.sayRun("mix", target, m.result, backendCalls: m.backendCalls)
                let distinct = mix.distinctKeys(m.result.offered)
                checks.expectAllOK(m.result, target)
                if target == .gateway {
                    if o.duration < Double(CacheRules.userTTLSeconds) {
                        checks.expect(m.backendCalls <= distinct, target, "no key fetched twice within its TTL",
                                      "\(Format.count(m.backendCalls)) backend calls for \(Format.count(distinct)) distinct keys")
                    }
                    if let first = samples.first, let last = samples.last {
                        let peak = samples.map(\.kib).max()!
                        let checked = o.duration >= memoryCheckSeconds
                        memory = MemoryReport(samples: samples, firstKiB: first.kib, lastKiB: last.kib, maxKiB: peak, checked: checked)
                        if checked {
                            // Flat: after the first fifth of the run (caches and buffers warmed up), no growth
                            // beyond 10 % + 4 MiB.
                            let settle = samples.first { $0.seconds >= o.duration / 5 }?.kib ?? first.kib
                            let allowed = settle + settle / 10 + 4096
                            checks.expect(last.kib <= allowed, target, "resident memory stays flat",
                                          "RSS \(Format.mib(settle)) at \(Format.seconds(o.duration / 5)), \(Format.mib(last.kib)) at the end (allowed \(Format.mib(allowed)))")
                        }
                        context.say("   gateway RSS: first \(Format.mib(first.kib)), last \(Format.mib(last.kib)), max \(Format.mib(peak))")
                    }
                }
                return TargetRun(target: target, result: m.result, backendCalls: m.backendCalls, offeredRate: o.usersRate,
                                 patienceSeconds: 10, distinctKeys: distinct)
            }
            runs.append(run)
        }
        var notes: [String] = []
        if let nginx = runs.first(where: { $0.target == .nginx }), let gateway = runs.first(where: { $0.target == .gateway }),
           nginx.result.p999 >= 400_000, gateway.result.p999 < 300_000 {
            notes.append("nginx's tail (p99.9 \(nginx.result.ms(\.p999))) is its proxy_cache_lock: a request for a key another request is fetching "
                + "looks at the cache again only every 500 ms. The gateway wakes such waiters when the answer arrives (p99.9 \(gateway.result.ms(\.p999))).")
        }
        if let m = memory, !m.checked {
            notes.append("Memory flatness is checked on runs of \(Int(memoryCheckSeconds)) s or more, e.g. cachegateway-bench run users --duration 5m --targets gateway.")
        }
        return ScenarioReport(
            name: name, title: "Realistic users",
            summary: "\(Format.rate(o.usersRate)) requests per second, due at a steady rate whatever the answers do: \(mix.description). "
                + "Caches start cold. Per-user answers take the backend \(2 * o.backendDelayMs) ms, catalog answers \(o.backendDelayMs) ms.",
            cases: [CaseReport(name: "catalog + per-user mix", description: mix.description, runs: runs)],
            checks: checks.list, notes: notes, memory: memory)
    }
}

/// Samples a process's resident size (VmRSS) on its own thread until stopped.
final class RSSSampler: Sendable {
    private let samples = Mutex<[MemoryReport.Sample]>([])
    private let stopped = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    init(pid: Int32, every interval: Double) {
        let start = Date()
        let thread = Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                if let kib = ManagedProcess.residentKiB(pid: pid) {
                    let sample = MemoryReport.Sample(seconds: Date().timeIntervalSince(start), kib: kib)
                    samples.withLock { $0.append(sample) }
                }
                var left = interval
                while left > 0 && !stopped.load(ordering: .relaxed) {
                    usleep(UInt32(min(left, 0.05) * 1_000_000))
                    left -= 0.05
                }
            }
            if let kib = ManagedProcess.residentKiB(pid: pid) {
                samples.withLock { $0.append(MemoryReport.Sample(seconds: Date().timeIntervalSince(start), kib: kib)) }
            }
            done.signal()
        }
        thread.start()
    }

    /// Stops sampling (after one last sample) and returns the samples.
    func stop() -> [MemoryReport.Sample] {
        stopped.store(true, ordering: .relaxed)
        done.wait()
        return samples.withLock { $0 }
    }
}
