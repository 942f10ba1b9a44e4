import LoadGenerator

/// `miss`: every request a key never seen before. What the cache costs on top of the backend
/// when it cannot help: lookup, fetch, store.
enum MissScenario: Scenario {
    static let name = "miss"
    static let connections = 16

    static func run(_ context: BenchContext) throws -> ScenarioReport {
        let o = context.options
        var checks = Checks(name)
        let slices = o.smoke ? 2 : 4
        context.say("== miss: a new key every request, \(connections) connections, closed loop, \(Format.seconds(o.duration)) per target in \(slices) turns")
        let runs = try Stack.withAll(context, context.targets, backend: BackendShape(delayMs: o.backendDelayMs), scenario: name) { stacks in
            var parts: [Target: [LoadOutcome]] = [:]
            var calls: [Target: Int] = [:]
            for slice in 0..<slices {
                for stack in slice % 2 == 0 ? stacks : stacks.reversed() {
                    let prefix = "/catalog/miss/\(context.runID)-\(stack.target.rawValue)-\(slice)"
                    let m = try stack.measure(.closedLoop(connections: connections), duration: o.duration / Double(slices)) { i in
                        LoadRequest.get("\(prefix)/\(i)")
                    }
                    parts[stack.target, default: []].append(m.result)
                    calls[stack.target, default: 0] += m.backendCalls
                }
            }
            return stacks.map { stack -> TargetRun in
                let target = stack.target
                let result = LoadOutcome.merged(parts[target]!)
                let backendCalls = calls[target]!
                context.sayRun("new keys", target, result, backendCalls: backendCalls)
                checks.expectAllOK(result, target)
                checks.expect(backendCalls == result.offered, target, "one backend call per request",
                              "\(Format.count(backendCalls)) backend calls for \(Format.count(result.offered)) requests")
                if target == .gateway {
                    let stored = result.count(.stored)
                    checks.expect(stored == result.requests, target, "every answer fetched and stored",
                                  "\(Format.count(stored)) of \(Format.count(result.requests)) answers say fwd=miss; stored")
                }
                return TargetRun(target: target, result: result, backendCalls: backendCalls)
            }
        }
        return ScenarioReport(
            name: name, title: "Cache misses",
            summary: "Every request asks for a key nobody asked for before, so every one goes to the backend (\(o.backendDelayMs) ms). "
                + "The difference from the backend directly is what the cache adds when it cannot help. The targets take turns (\(slices) turns each).",
            cases: [CaseReport(name: "new key every request", description: "\(connections) connections, closed loop", runs: runs)],
            checks: checks.list)
    }
}
