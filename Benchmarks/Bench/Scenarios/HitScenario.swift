import LoadGenerator

/// `hit`: everything already cached. The cost of a hit, against nginx's: 1 key, many keys,
/// big bodies. The backend directly is the baseline the cache is there to beat.
enum HitScenario: Scenario {
    static let name = "hit"

    struct Case {
        var name: String
        var keys: Int
        var bodySize: Int
    }

    static func run(_ context: BenchContext) throws -> ScenarioReport {
        let o = context.options
        let cases = [
            Case(name: "1 key", keys: 1, bodySize: 1024),
            Case(name: "\(Format.count(o.smoke ? 200 : 1000)) keys", keys: o.smoke ? 200 : 1000, bodySize: 1024),
            Case(name: "64 KiB bodies", keys: o.smoke ? 20 : 100, bodySize: 64 * 1024),
        ]
        let seconds = max(1, o.duration / 2)
        let slices = o.smoke ? 2 : 4
        var checks = Checks(name)
        var reports: [CaseReport] = []
        context.say("== hit: warmed cache, \(o.connections) connections, closed loop, \(Format.seconds(seconds)) per target in \(slices) turns")
        for c in cases {
            let prefix = "/catalog/hit/\(context.runID)-\(c.keys)-\(c.bodySize)"
            let request: @Sendable (Int) -> LoadRequest = { i in LoadRequest.get("\(prefix)/\(i % c.keys)") }
            let shape = BackendShape(delayMs: o.backendDelayMs, bodySize: c.bodySize)
            let runs = try Stack.withAll(context, context.targets, backend: shape, scenario: name) { stacks -> [TargetRun] in
                // Warm: every key once; from then on every answer must come from the cache.
                for stack in stacks where stack.target != .direct {
                    let warm = try stack.measure(.closedLoop(connections: min(64, c.keys)), duration: 60, maxRequests: c.keys,
                                                 request: request)
                    checks.expectAllOK(warm.result, stack.target, what: "warm-up answered 200")
                    if stack.target == .gateway {
                        checks.expect(warm.backendCalls == c.keys, stack.target, "warm-up fetched each key exactly once",
                                      "\(c.name): \(warm.backendCalls) backend calls for \(c.keys) keys")
                    }
                }
                // The targets take turns (A B C, C B A, ...), so that a noisy neighbour slows them alike.
                var parts: [Target: [LoadOutcome]] = [:]
                var calls: [Target: Int] = [:]
                for slice in 0..<slices {
                    for stack in slice % 2 == 0 ? stacks : stacks.reversed() {
                        let m = try stack.measure(.closedLoop(connections: o.connections), duration: seconds / Double(slices), request: request)
                        parts[stack.target, default: []].append(m.result)
                        calls[stack.target, default: 0] += m.backendCalls
                    }
                }
                return stacks.map { stack in
                    let target = stack.target
                    let result = LoadOutcome.merged(parts[target]!)
                    let backendCalls = calls[target]!
                    context.sayRun(c.name, target, result, backendCalls: backendCalls)
                    checks.expectAllOK(result, target)
                    if target != .direct {
                        let hits = result.count(.hit)
                        checks.expect(backendCalls == 0 && hits == result.requests, target, "served entirely from the cache",
                                      "\(c.name): \(Format.count(hits)) of \(Format.count(result.requests)) answers were hits, \(backendCalls) backend calls")
                    }
                    return TargetRun(target: target, result: result, backendCalls: backendCalls)
                }
            }
            reports.append(CaseReport(
                name: c.name,
                description: "\(c.keys == 1 ? "one key" : "\(Format.count(c.keys)) keys in turn"), \(c.bodySize / 1024) KiB bodies",
                runs: runs))
        }
        return ScenarioReport(
            name: name, title: "Cache hits",
            summary: "Every key is warmed first, then \(o.connections) connections ask for them as fast as they can, the targets taking turns "
                + "(\(slices) turns of \(Format.seconds(seconds / Double(slices))) each). Throughput and latency of a hit; the backend directly "
                + "(\(o.backendDelayMs) ms per call) is what the cache saves you from.",
            cases: reports, checks: checks.list)
    }
}
