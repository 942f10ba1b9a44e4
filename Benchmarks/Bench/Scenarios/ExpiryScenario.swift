import Foundation
import LoadGenerator

#if canImport(Glibc)
import Glibc
#endif

/// `expiry`: one hot key whose short TTL runs out again and again under a steady load, on a route
/// with stale-while-revalidate (nginx: `updating` + background update). Nobody should notice an
/// expiry: each one costs one background backend call, and the latency over the whole run is that
/// of a pure hit, measured on another key of the same stack in the same run.
enum ExpiryScenario: Scenario {
    static let name = "expiry"
    /// Open loop, so that a request held up by a refresh shows in the tail instead of slowing the load.
    static let rate = 2_000.0
    static let connections = 64
    static let staleWhileRevalidateSeconds = 30
    /// Answers due this close to an expiry are the ones a refresh could hold up.
    static let nearExpiryMicros = 100_000

    static func run(_ context: BenchContext) throws -> ScenarioReport {
        let o = context.options
        let ttl = o.smoke ? 1 : 2
        let loadSeconds = o.smoke ? 4.0 : 20.0
        // Two slices per target, taken in turns (A B, B A), except in a smoke run.
        let slices = o.smoke ? 1 : 2
        let sliceSeconds = loadSeconds / Double(slices)
        let baselineSeconds = o.smoke ? 0.5 : sliceSeconds / 4
        let fresh = FreshRoute(ttlSeconds: ttl, staleWhileRevalidateSeconds: staleWhileRevalidateSeconds, staleIfErrorSeconds: 0)
        let targets = context.targets.filter { $0 != .direct }
        let hot = "\(FreshRoute.prefix)expiry/\(context.runID)"
        let baseline = "/catalog/expiry-baseline/\(context.runID)"
        var checks = Checks(name)
        var expiry: [ExpiryRun] = []
        context.say("== expiry: one hot key, TTL \(ttl) s + stale-while-revalidate \(staleWhileRevalidateSeconds) s, \(Format.rate(rate)) req/s (open loop), "
            + "\(Format.seconds(loadSeconds)) per target in \(slices) turn\(slices == 1 ? "" : "s"), each after \(Format.seconds(baselineSeconds)) on a pure-hit key")
        guard !targets.isEmpty else {
            return ScenarioReport(name: name, title: "Expiry under load", summary: "Needs the gateway or nginx (--targets).", cases: [], checks: [])
        }
        let mode = LoadMode.openLoop(connections: connections, ratePerSecond: rate)
        let (hotRuns, hitRuns, nearRuns) = try Stack.withAll(context, targets, backend: BackendShape(delayMs: o.backendDelayMs), scenario: name,
                                                             fresh: fresh) { stacks -> ([TargetRun], [TargetRun], [TargetRun]) in
            var filledAt: [Target: Date] = [:]
            for stack in stacks {
                // From before the fill is sent: whichever moment a cache counts the TTL from, no entry
                // of the key is older than this.
                filledAt[stack.target] = Date()
                let fill = try stack.load(.closedLoop(connections: 1), duration: 10, maxRequests: 1) { _ in LoadRequest.get(hot) }
                checks.expectAllOK(fill.result, stack.target, what: "the hot key's fill answered 200")
                _ = try stack.load(.closedLoop(connections: 1), duration: 10, maxRequests: 1) { _ in LoadRequest.get(baseline) }
            }
            var hotParts: [Target: [LoadOutcome]] = [:], hitParts: [Target: [LoadOutcome]] = [:]
            var foreign: [Target: [Double]] = [:]
            var near: [Target: [LoadSample]] = [:], seen: [Target: Int] = [:]
            for slice in 0..<slices {
                for stack in slice % 2 == 0 ? stacks : stacks.reversed() {
                    let hit = try stack.load(mode, duration: baselineSeconds, timeout: 5) { _ in LoadRequest.get(baseline) }
                    let m = try stack.load(mode, duration: sliceSeconds, timeout: 5, samples: true) { _ in LoadRequest.get(hot) }
                    let moments = expiries(m.samples, ttlSeconds: ttl)
                    seen[stack.target, default: 0] += moments.count
                    near[stack.target, default: []] += around(moments, m.samples)
                    hitParts[stack.target, default: []].append(hit.result)
                    hotParts[stack.target, default: []].append(m.result)
                    foreign[stack.target, default: []] += [hit.foreignCores, m.foreignCores]
                }
            }
            // A refresh the last requests started is counted too: wait out one backend call.
            usleep(UInt32(min(1_000_000, 2 * o.backendDelayMs * 1000 + 100_000)))
            var hotRuns: [TargetRun] = [], hitRuns: [TargetRun] = [], nearRuns: [TargetRun] = []
            for stack in stacks {
                let target = stack.target
                let calls = try stack.backend.stats().paths[hot] ?? 0
                let span = Date().timeIntervalSince(filledAt[target]!)
                let allowed = Int(span / Double(ttl)) + 1
                let result = LoadOutcome.merged(hotParts[target]!)
                let hit = LoadOutcome.merged(hitParts[target]!)
                let cores = foreign[target]!.reduce(0, +) / Double(foreign[target]!.count)
                let nearExpiry = LoadOutcome(samples: near[target] ?? [], seconds: Double(seen[target] ?? 0) * 2 * Double(nearExpiryMicros) / 1e6)
                let run = ExpiryRun(target: target, ttlSeconds: ttl, loadSeconds: loadSeconds, spanSeconds: span,
                                    expiriesUnderLoad: loadSeconds / Double(ttl), backendCalls: calls, allowedCalls: allowed,
                                    staleAnswers: result.count(.stale), waitedAnswers: result.waitedForBackend,
                                    hitP99Micros: hit.p99, hitMaxMicros: hit.maxLatency, expiriesSeen: seen[target] ?? 0, nearExpiry: nearExpiry)
                expiry.append(run)
                context.sayRun("hot key", target, result, backendCalls: calls)
                context.sayRun("hit baseline", target, hit, backendCalls: 0)
                context.say("   \(target.rawValue): \(seen[target] ?? 0) expiries seen; within ±\(nearExpiryMicros / 1000) ms of them \(Format.count(nearExpiry.requests)) answers, "
                    + "p50 \(nearExpiry.ms(\.p50)), p99 \(nearExpiry.ms(\.p99)), max \(nearExpiry.ms(\.maxLatency))")
                context.say("   \(target.rawValue): p99 \(result.ms(\.p99)) vs hit p99 \(hit.ms(\.p99)), max \(result.ms(\.maxLatency)) vs \(hit.ms(\.maxLatency)); "
                    + "\(Format.count(run.staleAnswers)) stale answers, \(run.waitedAnswers) waited for a fetch; \(calls) backend calls "
                    + "(at most \(allowed) in \(Format.seconds(span.rounded()))), \(String(format: "%.2f", run.callsPerExpiry)) per expiry; foreign CPU \(String(format: "%.2f", cores)) cores")
                checks.expectAllOK(result, target)
                checks.expectAllOK(hit, target, what: "every request of the hit baseline answered 200")
                if target == .gateway {
                    checks.expect(calls <= allowed, target, "at most one backend call per expiry",
                                  "\(calls) backend calls for the hot key in \(Format.seconds(span.rounded())) at TTL \(ttl) s (at most \(allowed - 1) expiries + the fill)")
                }
                hotRuns.append(TargetRun(target: target, result: result, backendCalls: calls, offeredRate: rate, foreignCores: cores))
                nearRuns.append(TargetRun(target: target, result: nearExpiry, backendCalls: calls, offeredRate: nil, foreignCores: cores))
                hitRuns.append(TargetRun(target: target, result: hit, backendCalls: 0, offeredRate: rate, foreignCores: cores))
            }
            return (hotRuns, hitRuns, nearRuns)
        }
        var notes: [String] = []
        if targets.contains(.nginx) {
            notes.append("nginx's cache clock counts whole seconds: an entry it stores with proxy_cache_valid \(ttl)s lives between \(ttl) and \(ttl + 1) s, "
                + "so it sees fewer expiries in the same time.")
        }
        let delay = Double(o.backendDelayMs) * 1000
        if let n = hotRuns.first(where: { $0.target == .nginx }), n.result.maxLatency >= 0.8 * delay {
            notes.append("nginx's max (\(n.result.ms(\.maxLatency))) is about the backend delay: with proxy_cache_background_update, the next request on the "
                + "keep-alive connection that started the update waits until the update is done (expected behaviour, nginx trac #1723 and #1738). "
                + "One client per expiry: too few to reach nginx's p99.9 here.")
        }
        return ScenarioReport(
            name: name, title: "Expiry under load",
            summary: "One hot key with a \(ttl) s TTL and \(staleWhileRevalidateSeconds) s of stale-while-revalidate (nginx: proxy_cache_valid \(ttl)s, "
                + "use_stale updating, background update) gets \(Format.rate(rate)) requests/s for \(Format.seconds(loadSeconds)); the backend takes \(o.backendDelayMs) ms. "
                + "When the TTL runs out, nobody should wait for the refresh: the tail should be that of a pure hit (another key, measured in the same run), "
                + "and each expiry should cost one backend call.",
            cases: [CaseReport(name: "hot key, TTL \(ttl) s", description: "\(Format.rate(rate)) req/s on one key that expires every \(ttl) s", runs: hotRuns),
                    CaseReport(name: "pure hit (baseline)", description: "the same load on a key that does not expire", runs: hitRuns),
                    CaseReport(name: "±\(nearExpiryMicros / 1000) ms of an expiry", description: "the hot key's answers due within ±\(nearExpiryMicros / 1000) ms of an expiry", runs: nearRuns)],
            checks: checks.list, notes: notes, expiry: expiry)
    }

    /// The moments the hot key expired, from the answers (ordered by when they were due): the
    /// first answer that is not a plain hit (stale, fetched or coalesced) after a stretch of hits
    /// at least half a TTL long. In µs since the load's start.
    static func expiries(_ samples: [LoadSample], ttlSeconds: Int) -> [Int] {
        var moments: [Int] = []
        var lastNonHit = Int.min / 2
        for s in samples {
            guard let value = s.cacheStatus, CacheOutcome(value) != .hit else { continue }
            if s.startMicros - lastNonHit > ttlSeconds * 500_000 { moments.append(s.startMicros) }
            lastNonHit = s.startMicros
        }
        return moments
    }

    /// The answers due within ±`nearExpiryMicros` of one of `moments`.
    static func around(_ moments: [Int], _ samples: [LoadSample]) -> [LoadSample] {
        samples.filter { s in moments.contains { abs(s.startMicros - $0) <= nearExpiryMicros } }
    }
}
