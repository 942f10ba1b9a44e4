import LoadGenerator

/// `local-soak`: the in-process tier under a small hot set, each key re-stored in it every
/// `local_ttl` (read from Redis again when its local copy expires). The tier used to keep one
/// record per store for ever (33 → 123 MiB in 2 minutes at 100 ms); now the gateway's resident
/// memory must stay within a fixed allowance over the run.
enum LocalSoakScenario: Scenario {
    static let name = "local-soak"
    static let hotKeys = 200
    /// `--local-ttl` when it is left at 0s (the tier is the point of this scenario).
    static let defaultLocalTTL = "100ms"
    /// The most the gateway's RSS may grow from one fifth of the run to its end.
    static let allowedGrowthKiB = 20 * 1024

    static func run(_ context: BenchContext) throws -> ScenarioReport {
        let o = context.options
        let ttl = o.localTTL == "0s" ? defaultLocalTTL : o.localTTL
        var checks = Checks(name)
        let title = "In-process tier soak"
        let summary = "\(hotKeys) catalog keys, warmed once, then asked for by \(o.connections) connections in a closed loop for "
            + "\(Format.seconds(o.duration)) with cache.local_ttl \(ttl): every key is re-stored in the tier every \(ttl). "
            + "The gateway's resident memory (VmRSS) must not grow by more than \(Format.mib(allowedGrowthKiB)) after the first fifth of the run."
        guard context.targets.contains(.gateway) else {
            return ScenarioReport(name: name, title: title, summary: summary, cases: [], checks: [],
                                  notes: ["Only the gateway has an in-process tier: not run without the gateway target."])
        }
        context.say("== local-soak: \(hotKeys) hot keys, local_ttl \(ttl), \(o.connections) connections, \(Format.seconds(o.duration))")
        let prefix = "/catalog/soak/\(context.runID)"
        let request: @Sendable (Int) -> LoadRequest = { i in LoadRequest.get("\(prefix)/\(i % hotKeys)") }
        var memory: MemoryReport?
        let run = try Stack.with(context, .gateway, backend: BackendShape(delayMs: o.backendDelayMs), scenario: name,
                                 localTTL: ttl) { stack in
            let warm = try stack.measure(.closedLoop(connections: min(64, hotKeys)), duration: 60, maxRequests: hotKeys,
                                         request: request)
            checks.expectAllOK(warm.result, .gateway, what: "warm-up answered 200")
            let sampler = RSSSampler(pid: stack.front!.pid, every: max(0.1, o.duration / 150))
            let m = try stack.measure(.closedLoop(connections: o.connections), duration: o.duration, request: request)
            let samples = sampler.stop()
            context.sayRun("hot set", .gateway, m.result, backendCalls: m.backendCalls)
            checks.expectAllOK(m.result, .gateway)
            let local = m.result.cacheStatus.filter { $0.key.contains("detail=local") }.values.reduce(0, +)
            checks.expect(local > 0 && m.result.count(.hit) == m.result.requests, .gateway, "every answer a hit, many from the in-process tier",
                          "\(Format.count(m.result.count(.hit))) hits of \(Format.count(m.result.requests)), \(Format.count(local)) from the in-process tier")
            if let first = samples.first, let last = samples.last {
                let settle = samples.first { $0.seconds >= o.duration / 5 }?.kib ?? first.kib
                let peak = samples.map(\.kib).max()!
                memory = MemoryReport(samples: samples, firstKiB: first.kib, lastKiB: last.kib, maxKiB: peak, checked: true)
                checks.expect(last.kib - settle <= allowedGrowthKiB, .gateway, "resident memory stays bounded",
                              "RSS \(Format.mib(settle)) at \(Format.seconds(o.duration / 5)), \(Format.mib(last.kib)) at the end "
                                  + "(allowed growth \(Format.mib(allowedGrowthKiB)))")
                context.say("   gateway RSS: first \(Format.mib(first.kib)), at one fifth \(Format.mib(settle)), last \(Format.mib(last.kib)), max \(Format.mib(peak))")
            } else {
                checks.expect(false, .gateway, "resident memory stays bounded", "no VmRSS sample of the gateway")
            }
            return TargetRun(target: .gateway, result: m.result, backendCalls: m.backendCalls)
        }
        return ScenarioReport(
            name: name, title: title, summary: summary,
            cases: [CaseReport(name: "hot set", description: "\(hotKeys) keys, local_ttl \(ttl)", runs: [run])],
            checks: checks.list,
            notes: o.duration < 60 ? ["A longer soak: cachegateway-bench run local-soak --duration 2m."] : [],
            memory: memory)
    }
}
