import Foundation
import LoadGenerator

#if canImport(Glibc)
import Glibc
#endif

/// `outage`: steady load on a small key set with a 1 s TTL and stale-if-error, and the backend
/// stops answering for a while in the middle (SIGSTOP: connections are still accepted by the
/// kernel, nothing is answered, as with a hung process or a stuck database). Every request in the
/// stale window should still get its 200, from the stale entry, once the upstream timeout says the
/// backend failed.
enum OutageScenario: Scenario {
    static let name = "outage"
    static let keys = 20
    static let rate = 200.0
    /// Enough for the rate even when every request waits out the upstream timeout.
    static let connections = 128
    /// The gateway's upstream.timeout and nginx's proxy timeouts: how long a request may wait
    /// for the hung backend before the stale entry stands in.
    static let upstreamTimeoutSeconds = 1
    /// How long a user waits: well past the upstream timeout, so that the stale answer is counted.
    static let patience = 5.0
    static let staleIfErrorSeconds = 600

    static func run(_ context: BenchContext) throws -> ScenarioReport {
        let o = context.options
        let before = o.smoke ? 1.0 : 4.0, outage = o.smoke ? 3.0 : 10.0, after = o.smoke ? 0.5 : 4.0
        // Two rounds in turns (A B, B A), except in a smoke run.
        let rounds = o.smoke ? 1 : 2
        let fresh = FreshRoute(ttlSeconds: 1, staleWhileRevalidateSeconds: 0, staleIfErrorSeconds: staleIfErrorSeconds,
                               upstreamTimeoutSeconds: upstreamTimeoutSeconds)
        let targets = context.targets.filter { $0 != .direct }
        let prefix = "\(FreshRoute.prefix)outage/\(context.runID)"
        let request: @Sendable (Int) -> LoadRequest = { i in LoadRequest.get("\(prefix)/\(i % keys)") }
        var checks = Checks(name)
        var all: [OutageRun] = []
        context.say("== outage: \(keys) keys, TTL 1 s + stale-if-error \(staleIfErrorSeconds / 60) min, \(Format.rate(rate)) req/s (open loop); "
            + "the backend hangs (SIGSTOP) for \(Format.seconds(outage)) after \(Format.seconds(before)), then \(Format.seconds(after)) more; "
            + "upstream timeout \(upstreamTimeoutSeconds) s, users give up after \(Format.seconds(patience)); \(rounds) round\(rounds == 1 ? "" : "s")")
        guard !targets.isEmpty else {
            return ScenarioReport(name: name, title: "Backend outage", summary: "Needs the gateway or nginx (--targets).", cases: [], checks: [])
        }
        let mode = LoadMode.openLoop(connections: connections, ratePerSecond: rate)
        try Stack.withAll(context, targets, backend: BackendShape(delayMs: o.backendDelayMs), scenario: name, fresh: fresh) { stacks in
            for stack in stacks {
                let warm = try stack.load(.closedLoop(connections: keys), duration: 10, maxRequests: keys, request: request)
                checks.expectAllOK(warm.result, stack.target, what: "warm-up answered 200")
            }
            for round in 1...rounds {
                for stack in round % 2 == 1 ? stacks : stacks.reversed() {
                    let target = stack.target
                    try stack.backend.reset()
                    let b = try stack.load(mode, duration: before, timeout: patience, request: request)
                    // The backend wakes up exactly `outage` seconds later, whatever the load is doing then;
                    // requests still in flight finish after it, as they would in production.
                    let backend = stack.backend.process
                    backend.pause()
                    let woken = DispatchSemaphore(value: 0)
                    DispatchQueue.global().asyncAfter(deadline: .now() + outage) {
                        backend.resume()
                        woken.signal()
                    }
                    let d = try stack.load(mode, duration: outage, timeout: patience, request: request)
                    woken.wait()
                    let a = try stack.load(mode, duration: after, timeout: patience, request: request)
                    let calls = try stack.backend.stats().total
                    let run = OutageRun(target: target, round: round, outageSeconds: outage, before: b.result, during: d.result, after: a.result,
                                        backendCalls: calls, foreignCores: (b.foreignCores * before + d.foreignCores * outage + a.foreignCores * after) / (before + outage + after))
                    all.append(run)
                    context.say("   round \(round)  \(target.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0))during the outage \(Format.percent(run.okDuring)) × 200 "
                        + "(\(d.result.ok) of \(d.result.offered); \(d.result.errors) errors, \(d.result.timeouts) timeouts, statuses \(statusText(d.result))), "
                        + "p50 \(d.result.ms(\.p50)), p99 \(d.result.ms(\.p99)), max \(d.result.ms(\.maxLatency)); before \(Format.percent(Double(b.result.ok) / Double(max(1, b.result.offered)))), "
                        + "after \(Format.percent(Double(a.result.ok) / Double(max(1, a.result.offered)))); \(calls) backend calls; foreign CPU \(String(format: "%.2f", run.foreignCores)) cores")
                    checks.expectAllOK(b.result, target, what: "every request before the outage answered 200")
                    if target == .gateway {
                        checks.expectAllOK(d.result, target, what: "every request during the outage answered 200 (stale-if-error)")
                        checks.expectAllOK(a.result, target, what: "every request after the outage answered 200")
                    }
                }
            }
        }
        func merged(_ t: Target, _ part: (OutageRun) -> [LoadOutcome]) -> LoadOutcome {
            let parts = all.filter { $0.target == t }.flatMap(part)
            // Rounds of the same window merge like slices; windows of different kinds only as an upper bound.
            return parts.count == all.filter { $0.target == t }.count ? LoadOutcome.merged(parts) : LoadOutcome.concatenated(parts)
        }
        func runs(_ part: @escaping (OutageRun) -> [LoadOutcome]) -> [TargetRun] {
            targets.map { t in
                let r = all.filter { $0.target == t }
                return TargetRun(target: t, result: merged(t, part), backendCalls: r.reduce(0) { $0 + $1.backendCalls }, offeredRate: rate,
                                 patienceSeconds: patience, foreignCores: r.reduce(0) { $0 + $1.foreignCores } / Double(max(1, r.count)))
            }
        }
        var notes: [String] = []
        if let d = runs({ [$0.during] }).first(where: { $0.target == .gateway }), d.result.p50 >= Double(upstreamTimeoutSeconds) * 500_000 {
            notes.append("The gateway's stale answers during the outage wait for the upstream timeout (\(upstreamTimeoutSeconds) s): "
                + "stale-if-error stands in only once the fetch has failed, and a hung backend fails by timing out.")
        }
        return ScenarioReport(
            name: name, title: "Backend outage",
            summary: "\(keys) keys with a 1 s TTL and \(staleIfErrorSeconds / 60) minutes of stale-if-error (nginx: proxy_cache_use_stale error timeout http_5xx updating) get "
                + "\(Format.rate(rate)) requests/s. After \(Format.seconds(before)) the backend hangs for \(Format.seconds(outage)) (SIGSTOP), then answers again for \(Format.seconds(after)). "
                + "Both caches give up on the backend after \(upstreamTimeoutSeconds) s; users after \(Format.seconds(patience)). Inside the stale window every request should get a 200.",
            cases: [CaseReport(name: "during the outage", description: "requests due while the backend was hung", runs: runs { [$0.during] }),
                    CaseReport(name: "whole run", description: "before, during and after the outage; p50 and p99: the highest of the three windows'", runs: runs { [$0.before, $0.during, $0.after] })],
            checks: checks.list, notes: notes, outage: all)
    }

    static func statusText(_ r: LoadOutcome) -> String {
        r.statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")
    }
}
