import Foundation
import LoadGenerator

#if canImport(Glibc)
import Glibc
#endif

/// `scale`: 1, 2 and 3 gateway processes in front of one demo monolith, on one Redis with one
/// shared key prefix and `cache.cross_instance` on, the load generator spreading its connections over them round-robin (no
/// load balancer in between). Measured per instance count: backend calls per key when a herd is
/// spread over the instances (goal: 1 whatever the count; nginx, one per instance, each with its
/// own proxy_cache: one per instance), and hit throughput per instance with the in-process tier
/// off and on.
enum ScaleScenario: Scenario {
    static let name = "scale"
    static let instanceCounts = [1, 2, 3]
    /// `cache.local_ttl` for "tier on" when `--local-ttl` is left at 0s: the coherent tier's
    /// default cap (Redis's invalidations evict its copies; `local_tracking` is on by default).
    static let defaultLocalTTL = "5m"

    static func run(_ context: BenchContext) throws -> ScenarioReport {
        let o = context.options
        let rounds = o.smoke ? min(o.herdRounds, 3) : o.herdRounds
        let hitKeys = o.smoke ? 50 : 200
        let tierOn = o.localTTL == "0s" ? defaultLocalTTL : o.localTTL
        let seconds = max(1, o.duration / 2)
        let targets = context.targets.filter { $0 != .direct }
        let title = "Several instances"
        let summary = "1, 2 and 3 instances in front of one backend, the load generator spreading its connections over them round-robin. "
            + "Gateways share one Redis and one key prefix, with cross-instance coalescing (cache.cross_instance); each nginx has its own proxy_cache. A herd of \(o.herdSize) simultaneous requests "
            + "per cold key is spread over the instances, \(rounds) rounds with fresh keys: a cache shared by the instances makes one backend call "
            + "per key whatever their number. Then \(hitKeys) warmed keys are asked for by \(o.connections) connections for "
            + "\(Format.seconds(seconds)), with the gateway's in-process tier off (every hit read from Redis) and on (cache.local_ttl \(tierOn)): two fleets, up together, taking turns."
        guard !targets.isEmpty else {
            return ScenarioReport(name: name, title: title, summary: summary, cases: [], checks: [],
                                  notes: ["Needs the gateway or nginx (--targets)."])
        }
        context.say("== scale: \(instanceCounts.map(String.init).joined(separator: ", ")) instances; herd of \(o.herdSize) spread over them, "
            + "\(rounds) rounds; hits on \(hitKeys) keys, tier off and on (\(tierOn))")
        var checks = Checks(name)
        var cases: [CaseReport] = []
        var rows: [ScaleRun] = []
        for n in instanceCounts {
            var herdRuns: [TargetRun] = []
            var hitRuns: [(tier: String, run: TargetRun)] = []
            for target in targets {
                var row = ScaleRun(instances: n, target: target)
                // The herd, and the hits from Redis (tier off), on one fleet.
                try Fleet.with(context, target, instances: n, tag: "\(n)-off", localTTL: "0s") { fleet in
                    var outcomes: [LoadOutcome] = []
                    for round in 1...rounds {
                        let key = "/catalog/scale/\(context.runID)-\(target.rawValue)-\(n)-\(round)"
                        try fleet.backend.reset()
                        let result = LoadOutcome(try LoadGenerator.burst(host: "127.0.0.1", port: fleet.ports[0], otherPorts: Array(fleet.ports.dropFirst()),
                                                                         count: o.herdSize, request: LoadRequest.get(key), timeout: .seconds(10)))
                        let calls = try fleet.backend.stats().paths[key] ?? 0
                        let bodies = fleet.ports.map { try? ControlHTTP.request(port: $0, path: key) }
                        let correct = bodies.filter { $0?.status == 200 && $0!.body.contains(DemoAnswer.names(key)) }.count
                        row.herdCalls.append(calls)
                        row.distinctAnswers.append(Set(bodies.compactMap { $0?.body }).count)
                        outcomes.append(result)
                        context.say("   \(n) × \(target.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) round \(round): "
                            + "\(calls) backend call\(calls == 1 ? "" : "s"), \(result.ok)/\(o.herdSize) × 200, p99 \(result.ms(\.p99)); "
                            + "\(correct)/\(n) instances answer the key's body")
                        checks.expectAllOK(result, target, what: "\(n) instance\(n == 1 ? "" : "s"): every request of the herd answered 200")
                        checks.expect(correct == n, target, "\(n) instance\(n == 1 ? "" : "s"): every instance answers the herd key's own body",
                                      "round \(round): \(correct) of \(n) answered 200 with the body of \(key)")
                        if target == .gateway {
                            // cache.cross_instance: a lease in Redis, one fill for all instances.
                            checks.expect(calls == 1, target, "\(n) instance\(n == 1 ? "" : "s"): exactly one backend call per key across instances",
                                          "round \(round): \(calls) backend calls for \(key)")
                            checks.expect(Set(bodies.compactMap { $0?.body }).count == 1, target,
                                          "\(n) instance\(n == 1 ? "" : "s"): every instance serves the one stored answer",
                                          "round \(round): \(Set(bodies.compactMap { $0?.body }).count) different bodies from \(n) instances")
                        }
                        usleep(50_000)
                    }
                    let worst = outcomes.max { $0.p99 < $1.p99 }!
                    row.herdP99Micros = worst.p99
                    herdRuns.append(TargetRun(target: target, result: worst, backendCalls: row.herdCalls.reduce(0, +)))
                    guard target == .gateway else { return }
                    // Tier on: a second fleet, up at the same time, so that the two take turns.
                    try Fleet.with(context, target, instances: n, tag: "\(n)-on", localTTL: tierOn) { tiered in
                        let hits = try measureHits(context, [("off", fleet), ("on", tiered)], keys: hitKeys, seconds: seconds, checks: &checks)
                        row.hitsTierOff = hits[0].throughput
                        row.hitsTierOn = hits[1].throughput
                        hitRuns += [("off", hits[0]), ("on", hits[1])]
                    }
                }
                rows.append(row)
            }
            let label = "\(n) instance\(n == 1 ? "" : "s")"
            cases.append(CaseReport(name: "\(label): herd", description: "\(o.herdSize) simultaneous requests for one cold key spread over \(label), slowest of \(rounds) rounds",
                                    runs: herdRuns, burst: true))
            for tier in ["off", "on"] {
                let runs = hitRuns.filter { $0.tier == tier }.map(\.run)
                guard !runs.isEmpty else { continue }
                cases.append(CaseReport(name: "\(label): hits, tier \(tier)",
                                        description: "\(hitKeys) warmed keys, \(o.connections) connections over \(label), in-process tier \(tier == "on" ? tierOn : "off")",
                                        runs: runs))
            }
        }
        var notes = ["The gateways run with cache.cross_instance: true: the first instance to miss a key takes a lease in Redis and fetches; "
                     + "the others wait for its announcement on <prefix>fills and read the stored entry. Without it (the default) each instance "
                     + "coalesces only its own clients: N instances, N backend calls per key, as N nginx caches."]
        notes.append("hits per instance = the instances' total req/s ÷ their number. They share the machine's cores with each other, Redis and the load generator, "
                     + "so on a small machine the total stays flat and the share per instance falls: compare tier off with tier on at the same count.")
        return ScenarioReport(name: name, title: title, summary: summary, cases: cases, checks: checks.list, notes: notes, scale: rows)
    }

    /// Warms `keys` keys through each fleet's first instance (stored once in Redis), then a closed
    /// loop spread over every instance of a fleet, the fleets taking turns (A B, B A, …) so that
    /// a noisy neighbour slows them alike.
    private static func measureHits(_ context: BenchContext, _ fleets: [(tier: String, fleet: Fleet)], keys: Int, seconds: Double,
                                    checks: inout Checks) throws -> [TargetRun] {
        let o = context.options
        let slices = o.smoke ? 2 : 4
        var requests: [@Sendable (Int) -> LoadRequest] = []
        for (tier, fleet) in fleets {
            let n = fleet.ports.count
            let prefix = "/catalog/scale-hit/\(context.runID)-\(n)-\(tier)"
            let request: @Sendable (Int) -> LoadRequest = { i in LoadRequest.get("\(prefix)/\(i % keys)") }
            requests.append(request)
            try fleet.backend.reset()
            let warm = LoadOutcome(try LoadGenerator.run(LoadSpec(port: fleet.ports[0], mode: .closedLoop(connections: min(64, keys)),
                                                                  duration: .seconds(60), maxRequests: keys, request: request)))
            let warmCalls = try fleet.backend.stats().total
            let what = "\(n) instance\(n == 1 ? "" : "s"), tier \(tier)"
            checks.expectAllOK(warm, .gateway, what: "\(what): warm-up answered 200")
            checks.expect(warmCalls == keys, .gateway, "\(what): warm-up fetched each key exactly once", "\(warmCalls) backend calls for \(keys) keys")
        }
        var parts = Array(repeating: [LoadOutcome](), count: fleets.count)
        var calls = Array(repeating: 0, count: fleets.count)
        var foreign = Array(repeating: 0.0, count: fleets.count)
        for slice in 0..<slices {
            for i in slice % 2 == 0 ? Array(fleets.indices) : fleets.indices.reversed() {
                let fleet = fleets[i].fleet
                try fleet.backend.reset()
                var spec = LoadSpec(port: fleet.ports[0], mode: .closedLoop(connections: o.connections),
                                    duration: .milliseconds(Int(seconds / Double(slices) * 1000)), request: requests[i])
                spec.otherPorts = Array(fleet.ports.dropFirst())
                let before = CPUSnapshot.take()
                parts[i].append(LoadOutcome(try LoadGenerator.run(spec)))
                foreign[i] += CPUSnapshot.take().foreignCores(since: before) / Double(slices)
                calls[i] += try fleet.backend.stats().total
            }
        }
        return fleets.indices.map { i in
            let (tier, fleet) = fleets[i]
            let n = fleet.ports.count
            let what = "\(n) instance\(n == 1 ? "" : "s"), tier \(tier)"
            let result = LoadOutcome.merged(parts[i])
            context.sayRun("\(n) × tier \(tier)", .gateway, result, backendCalls: calls[i])
            checks.expectAllOK(result, .gateway, what: "\(what): every request answered 200")
            let hits = result.count(.hit)
            // Not "every answer a hit": with up to 2 × 3 gateways on a small machine, a Redis GET
            // can outlast redis.timeout (50 ms), and that request then takes the miss path (and
            // finds the entry again) rather than a hit. No backend call is what must hold.
            let others = result.cacheStatus.filter { !$0.key.hasPrefix("CacheGateway; hit") }
                .sorted { $0.key < $1.key }.map { "\($0.value) × \($0.key)" }
            checks.expect(calls[i] == 0, .gateway, "\(what): served from the cache, no backend call",
                          "\(Format.count(hits)) of \(Format.count(result.requests)) answers were hits\(others.isEmpty ? "" : " (others: \(others.joined(separator: ", ")))"), \(calls[i]) backend calls")
            return TargetRun(target: .gateway, result: result, backendCalls: calls[i], foreignCores: foreign[i])
        }
    }
}

/// What the demo monolith's answer for a catalog path contains.
enum DemoAnswer {
    static func names(_ target: String) -> String { "{\"catalog\": \"\(target)\"" }
}

/// One demo monolith and `instances` gateways (one Redis, one key prefix) or nginx processes
/// (each its own proxy_cache) in front of it.
struct Fleet {
    let backend: Backend
    let ports: [Int]

    /// The gateways' config: one shared prefix, an instance_id each, cross-instance coalescing on.
    static func gatewayConfig(_ context: BenchContext, port: Int, backendPort: Int, tag: String, instance: Int, localTTL: String) -> String {
        BenchContext.gatewayConfig(port: port, backendPort: backendPort, redisPort: context.redis.port,
                                   keyPrefix: "bench:\(context.runID):scale-\(tag):", workers: context.options.workers,
                                   tag: "scale-\(tag)-\(instance)", localTTL: localTTL, instanceID: "bench-\(context.runID)-\(tag)-\(instance)",
                                   crossInstance: true, accessLog: context.options.accessLog)
    }

    /// Runs `body` with a fresh fleet, and stops every process it started whatever happens.
    static func with<T>(_ context: BenchContext, _ target: Target, instances: Int, tag: String, localTTL: String,
                        _ body: (Fleet) throws -> T) throws -> T {
        var started: [ManagedProcess] = []
        defer { for p in started.reversed() { p.stop() } }
        let o = context.options
        let backend = try Backend.start(delayMs: o.backendDelayMs, bodySize: 1024, concurrency: 0, logDir: context.workDir,
                                        name: "demo-monolith-scale-\(target.rawValue)-\(tag)")
        started.append(backend.process)
        var ports: [Int] = []
        for i in 0..<instances {
            let name = "\(target.rawValue)-scale-\(tag)-\(i)"
            switch target {
            case .gateway:
                let port = try Ports.free()
                let config = gatewayConfig(context, port: port, backendPort: backend.port, tag: tag, instance: i, localTTL: localTTL)
                started.append(try GatewayService.start(config: config, port: port, logDir: context.workDir, name: name).process)
                ports.append(port)
                if i == instances - 1 {
                    try waitForFillsSubscribers(redisPort: context.redis.port, channel: "bench:\(context.runID):scale-\(tag):fills", count: instances)
                }
            case .nginx:
                let config = NginxConfig(
                    prefix: "\(context.workDir)/\(name)", port: try Ports.free(), backendPort: backend.port, workers: o.workers,
                    catalogTTLSeconds: CacheRules.catalogTTLSeconds, userTTLSeconds: CacheRules.userTTLSeconds,
                    lockTimeoutSeconds: CacheRules.maxWaitSeconds, upstreamConnections: CacheRules.upstreamConnections,
                    accessLog: o.accessLog)
                let nginx = try NginxService.start(config: config, logDir: context.workDir, name: name)
                started.append(nginx.process)
                ports.append(nginx.port)
            case .direct:
                ports.append(backend.port)
            }
        }
        return try body(Fleet(backend: backend, ports: ports))
    }

    /// An instance takes no lease until it hears the fills channel (it could only wait a lease
    /// out): the herd starts once every instance is subscribed.
    private static func waitForFillsSubscribers(redisPort: Int, channel: String, count: Int) throws {
        let deadline = Date().addingTimeInterval(10)
        var have = 0
        while Date() < deadline {
            if case .array(let items?) = try RedisControl.command(port: redisPort, ["PUBSUB", "NUMSUB", channel]),
               items.count == 2, case .integer(let n) = items[1] {
                have = n
                if n >= count { return }
            }
            usleep(20_000)
        }
        throw BenchError("\(have) of \(count) gateways subscribed to \(channel) within 10 s")
    }
}
