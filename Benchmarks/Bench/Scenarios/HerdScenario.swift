import Foundation
import LoadGenerator

#if canImport(Glibc)
import Glibc
#endif

/// `herd`: N requests at the same moment for one cold key, over fresh keys: how many reach the
/// backend (the demo monolith's per-path counter), and how long the waiters wait beyond the one fetch.
enum HerdScenario: Scenario {
    static let name = "herd"

    static func run(_ context: BenchContext) throws -> ScenarioReport {
        let o = context.options
        let size = o.herdSize
        let rounds = o.smoke ? min(o.herdRounds, 3) : o.herdRounds
        var checks = Checks(name)
        var allRounds: [HerdRound] = []
        var gatewayWait: ScrapedHistogram?
        context.say("== herd: \(size) simultaneous requests for one cold key, \(rounds) rounds with fresh keys")
        let runs = try Stack.withAll(context, context.targets, backend: BackendShape(delayMs: o.backendDelayMs), scenario: name) { stacks in
            var results: [Target: [LoadOutcome]] = [:]
            // Round by round, the targets take turns.
            for round in 1...rounds {
                for stack in stacks {
                    let target = stack.target
                    let key = "/catalog/herd/\(context.runID)-\(target.rawValue)-\(round)"
                    try stack.backend.reset()
                    let result = LoadOutcome(try LoadGenerator.burst(host: "127.0.0.1", port: stack.port, count: size,
                                                                     request: LoadRequest.get(key), timeout: .seconds(10)))
                    let calls = try stack.backend.stats().paths[key] ?? 0
                    results[target, default: []].append(result)
                    allRounds.append(HerdRound(target: target, round: round, key: key, backendCalls: calls, answered: result.requests,
                                               ok: result.ok, p50Micros: result.p50, p99Micros: result.p99,
                                               maxMicros: result.maxLatency, cacheStatus: result.cacheStatus))
                    context.say("   round \(round)  \(target.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0))"
                        + "\(calls) backend call\(calls == 1 ? "" : "s"), \(result.ok)/\(size) × 200, p50 \(result.ms(\.p50)), p99 \(result.ms(\.p99)), max \(result.ms(\.maxLatency))")
                    checks.expectAllOK(result, target, what: "every request of the herd answered 200")
                    switch target {
                    case .gateway:
                        checks.expect(calls == 1, target, "exactly one backend call per key",
                                      "round \(round): \(calls) backend calls for \(key)")
                        let stored = result.count(.stored)
                        checks.expect(stored == 1, target, "one request fetched, the others were coalesced",
                                      "round \(round): \(stored) stored, \(result.count(.collapsed)) collapsed, \(result.count(.hit)) hits")
                    case .direct:
                        // Validates the measurement: the counter sees every request that reaches the backend.
                        checks.expect(calls == size, target, "the backend counted every request",
                                      "round \(round): \(calls) calls counted for \(size) requests")
                    case .nginx:
                        break  // reported, not ours to enforce
                    }
                    usleep(50_000)
                }
            }
            if let gateway = stacks.first(where: { $0.target == .gateway }) {
                // The gateway's own view of the same waits, all rounds together.
                let answer = try? ControlHTTP.request(port: gateway.adminPort ?? gateway.port, path: o.metricsPath)
                gatewayWait = answer.flatMap { $0.status == 200 ? $0.body : nil }.flatMap {
                    ScrapedHistogram($0, name: "cachegateway_coalesced_wait_seconds", labels: ["route": "catalog"])
                }
                if gatewayWait == nil { context.say("   (no coalesced-wait histogram at \(o.metricsPath) on the gateway's admin listener)") }
            }
            return stacks.map { stack -> TargetRun in
                // The round with the slowest p99 stands for the target (the goal is about the worst case).
                let worst = results[stack.target]!.max { $0.p99 < $1.p99 }!
                let total = allRounds.filter { $0.target == stack.target }.reduce(0) { $0 + $1.backendCalls }
                return TargetRun(target: stack.target, result: worst, backendCalls: total)
            }
        }
        var notes: [String] = []
        let delay = Double(o.backendDelayMs) * 1000
        if let direct = runs.first(where: { $0.target == .direct }) {
            notes.append("Without a cache the same burst reaches a p99 of \(Format.deltaMs(direct.result.p99 - delay)) beyond the backend delay: "
                + "that is the floor this machine and load generator can measure for \(size) simultaneous requests.")
        }
        // The gateway's own share: its waiters' p99 against the cache-less burst of the same round.
        let paired = (1...rounds).compactMap { r -> Double? in
            guard let g = allRounds.first(where: { $0.target == .gateway && $0.round == r }),
                  let d = allRounds.first(where: { $0.target == .direct && $0.round == r }) else { return nil }
            return g.p99Micros - d.p99Micros
        }.sorted()
        if !paired.isEmpty {
            notes.append("Round by round, the gateway's waiters' p99 minus the cache-less burst's p99: median \(Format.deltaMs(paired[paired.count / 2])), "
                + "from \(Format.deltaMs(paired.first!)) to \(Format.deltaMs(paired.last!)): what coalescing adds to the time the backend takes to answer 200 clients.")
        }
        if let wait = gatewayWait, let p50 = wait.bucket(containing: 0.5), let p99 = wait.bucket(containing: 0.99) {
            func range(_ b: (lower: Double, upper: Double)) -> String { "\(Format.ms(b.lower * 1e6))–\(Format.ms(b.upper * 1e6))" }
            let clients = allRounds.filter { $0.target == .gateway }.map(\.p99Micros).sorted()
            let note = "The gateway's own coalesced-wait histogram (cachegateway_coalesced_wait_seconds, \(Int(wait.count)) waiters over all rounds): "
                + "p50 in \(range(p50)), p99 in \(range(p99)) (histogram_quantile's estimate: \(wait.quantile(0.5).map { Format.ms($0 * 1e6) } ?? "–"), "
                + "\(wait.quantile(0.99).map { Format.ms($0 * 1e6) } ?? "–")); the clients measured a median round p99 of "
                + "\(Format.ms(clients.isEmpty ? 0 : clients[clients.count / 2])), their own connection included."
            notes.append(note)
            context.say("   " + note)
        }
        if let nginx = runs.first(where: { $0.target == .nginx }), nginx.result.p50 >= 400_000 {
            notes.append("nginx's proxy_cache_lock lets waiters look at the cache again only every 500 ms: its herd waits about half a second however fast the backend is.")
        }
        return ScenarioReport(
            name: name, title: "Thundering herd",
            summary: "\(size) clients ask for the same cold key at the same moment, \(rounds) times over fresh keys. "
                + "A cache should make one backend call per key and wake every waiter the moment the answer arrives (backend delay \(o.backendDelayMs) ms). "
                + "Latency charts show each target's slowest round.",
            cases: [CaseReport(name: "\(size) at once", description: "\(size) simultaneous requests for one cold key, \(rounds) rounds", runs: runs)],
            checks: checks.list, notes: notes, herdRounds: allRounds)
    }
}
