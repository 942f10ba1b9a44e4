import LoadGenerator

/// `shield`: the demo monolith can work on only a few requests at once (the database that locks
/// up), and more users arrive than it can serve. The same offered rate hits it directly and
/// through each cache: what do the users see?
enum ShieldScenario: Scenario {
    static let name = "shield"
    static let connections = 512
    /// How long a user waits before giving up.
    static let patience = 2.0
    /// Offered rate, as a multiple of what the backend can serve.
    static let overload = 3.0

    static func run(_ context: BenchContext) throws -> ScenarioReport {
        let o = context.options
        let capacity = Double(o.shieldConcurrency) * 1000 / Double(o.backendDelayMs)
        let rate = (capacity * overload).rounded()
        let mix = UsersMix(catalogItems: 2_000, catalogSkew: 1.1, users: 500, userSkew: 0.8, perUserShare: 0.1,
                           salt: (UInt64(context.runID, radix: 36) ?? 1) &+ 7)
        let warmup = max(1, o.duration / 4)
        var checks = Checks(name)
        var runs: [TargetRun] = []
        context.say("== shield: backend serves \(o.shieldConcurrency) at a time (~\(Format.rate(capacity)) catalog calls/s); "
            + "\(Format.rate(rate)) req/s offered for \(Format.seconds(warmup)) warm-up + \(Format.seconds(o.duration)); users give up after \(Format.seconds(patience))")
        for target in context.targets {
            let shape = BackendShape(delayMs: o.backendDelayMs, concurrency: o.shieldConcurrency)
            let run = try Stack.with(context, target, backend: shape, scenario: name) { stack in
                // The same load before measuring: caches warm, and the backend's queue as long as it gets.
                let warm = try stack.measure(.openLoop(connections: connections, ratePerSecond: rate), duration: warmup, timeout: patience,
                                      request: mix.request)
                let salted: @Sendable (Int) -> LoadRequest = { i in mix.request(i + 1_000_000) }
                let m = try stack.measure(.openLoop(connections: connections, ratePerSecond: rate), duration: o.duration,
                                          timeout: patience, request: salted)
                context.sayRun("overload", target, m.result, backendCalls: m.backendCalls)
                let answeredInTime = Double(m.result.ok) / Double(max(1, m.result.offered))
                context.say("   \(target.rawValue): \(Format.percent(answeredInTime)) of users answered within \(Format.seconds(patience))")
                if target == .gateway {
                    checks.expect(m.result.serverErrors == 0, target, "no 5xx from the gateway",
                                  "\(m.result.serverErrors) answers with 5xx of \(Format.count(m.result.requests))")
                    let keys = mix.distinctKeys([0..<warm.result.offered, 1_000_000..<(1_000_000 + m.result.offered)])
                    if warmup + o.duration < Double(CacheRules.userTTLSeconds) {
                        let calls = warm.backendCalls + m.backendCalls
                        checks.expect(calls <= keys, target, "no key fetched twice within its TTL",
                                      "\(Format.count(calls)) backend calls (warm-up and measured) for \(Format.count(keys)) distinct keys")
                    }
                }
                return TargetRun(target: target, result: m.result, backendCalls: m.backendCalls, offeredRate: rate,
                                 patienceSeconds: patience)
            }
            runs.append(run)
        }
        // The gateway must do better for the users than the backend alone.
        if let direct = runs.first(where: { $0.target == .direct }), let gateway = runs.first(where: { $0.target == .gateway }) {
            checks.expect(gateway.result.ok >= direct.result.ok, .gateway, "users fare better than without it",
                          "\(Format.count(gateway.result.ok)) answered in time through the gateway, \(Format.count(direct.result.ok)) directly")
        }
        return ScenarioReport(
            name: name, title: "Shielding a locked backend",
            summary: "The backend works on \(o.shieldConcurrency) requests at a time (\(o.backendDelayMs) ms each, about \(Format.rate(capacity)) catalog answers/s); "
                + "\(Format.rate(rate)) requests/s arrive (\(mix.description)). Users give up after \(Format.seconds(patience)). "
                + "Measured after \(Format.seconds(warmup)) of the same load.",
            cases: [CaseReport(name: "\(Format.rate(rate)) req/s offered", description: mix.description, runs: runs)],
            checks: checks.list)
    }
}
