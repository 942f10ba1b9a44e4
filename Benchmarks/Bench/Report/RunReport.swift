/// What one `cachegateway-bench run` measured: written as `<timestamp>.json`, rendered as the
/// terminal table and the HTML report.
struct RunReport: Codable {
    var formatVersion = 1
    var startedAt: String
    var finishedAt: String
    var command: String
    var machine: MachineInfo
    var settings: Settings
    var scenarios: [ScenarioReport]
    var goals: [GoalReport]

    /// True when every check of every scenario held.
    var passed: Bool { scenarios.allSatisfy { $0.checks.allSatisfy(\.passed) } }
    var failedChecks: [Check] { scenarios.flatMap { $0.checks.filter { !$0.passed } } }
}

struct MachineInfo: Codable {
    var cores: Int
    var memoryGiB: Double
    var cpu: String
    var kernel: String
}

struct Settings: Codable {
    var smoke: Bool
    var durationSeconds: Double
    var backendDelayMs: Int
    var herdSize: Int
    var herdRounds: Int
    /// Gateway event loops, and nginx worker processes.
    var workers: Int
    var targets: [Target]
    /// nginx's version, or why it is not compared.
    var nginx: String
}

/// What a scenario is measured against.
enum Target: String, Codable, CaseIterable, Sendable {
    /// The demo monolith with nothing in front.
    case direct
    /// CacheGateway in front of the demo monolith.
    case gateway
    /// nginx proxy_cache (with proxy_cache_lock) in front of the demo monolith.
    case nginx

    var label: String {
        switch self {
        case .direct: "backend direct"
        case .gateway: "CacheGateway"
        case .nginx: "nginx proxy_cache"
        }
    }
}

struct ScenarioReport: Codable {
    var name: String
    var title: String
    /// One or two sentences: what the scenario does and what to look at.
    var summary: String
    var cases: [CaseReport]
    var checks: [Check]
    var notes: [String] = []
    /// herd only: every round of every target.
    var herdRounds: [HerdRound]? = nil
    /// users only: the gateway's resident size over the run.
    var memory: MemoryReport? = nil
    /// expiry only: each target's hot key over the run.
    var expiry: [ExpiryRun]? = nil
    /// outage only: every round of every target.
    var outage: [OutageRun]? = nil
    /// invalidate only: the hard and the soft purges.
    var invalidate: [InvalidateRun]? = nil
    /// scale only: one row per instance count and target.
    var scale: [ScaleRun]? = nil
}

/// One workload of a scenario (e.g. hit's "1 key"), measured against each target.
struct CaseReport: Codable {
    var name: String
    var description: String
    var runs: [TargetRun]
    /// Simultaneous requests (herd-like): no throughput to show.
    var burst: Bool? = nil
    /// hit only: every round of every target, and the ratio from the quiet ones.
    var hitRounds: HitRounds? = nil

    func run(_ target: Target) -> TargetRun? { runs.first { $0.target == target } }
}

/// One load against one target.
struct TargetRun: Codable {
    var target: Target
    var result: LoadOutcome
    /// Requests that reached the demo monolith during the measured load (its `/__stats` counter).
    var backendCalls: Int
    /// Open-loop runs: the rate requests were due at.
    var offeredRate: Double? = nil
    /// Open-loop runs: how long a user waits before giving up, in seconds.
    var patienceSeconds: Double? = nil
    /// Distinct cache keys the workload asked for (when the scenario computes it).
    var distinctKeys: Int? = nil
    /// Cores' worth of CPU used by other work on the machine during the load (expiry, outage).
    var foreignCores: Double? = nil

    /// Closed loop: answers per second. Open loop: answers with a 200 per second of the schedule
    /// (what the users got; the rest failed, timed out or came after the schedule ended).
    var throughput: Double {
        guard let rate = offeredRate, result.offered > 0 else { return result.requestsPerSecond }
        return Double(result.ok) / (Double(result.offered) / rate)
    }
}

/// An invariant: broken, it makes the run exit non-zero.
struct Check: Codable {
    var scenario: String
    var target: Target?
    var name: String
    var passed: Bool
    var detail: String

    var headline: String {
        "\(scenario)\(target.map { "/\($0.rawValue)" } ?? ""): \(name): \(detail)"
    }
}

/// A target the gateway is measured against: reported, never fails the run.
struct GoalReport: Codable {
    var name: String
    var goal: String
    var measured: String
    /// nil when it could not be measured in this run (e.g. nginx not compared).
    var met: Bool?
}

struct HerdRound: Codable {
    var target: Target
    var round: Int
    var key: String
    var backendCalls: Int
    var answered: Int
    var ok: Int
    var p50Micros: Double
    var p99Micros: Double
    var maxMicros: Double
    var cacheStatus: [String: Int]
}

struct MemoryReport: Codable {
    struct Sample: Codable {
        var seconds: Double
        var kib: Int
    }
    var samples: [Sample]
    var firstKiB: Int
    var lastKiB: Int
    var maxKiB: Int
    /// Whether the flatness check ran (runs of 60 s and more).
    var checked: Bool
}

/// `expiry`: one target's hot key, whose TTL ran out again and again under load.
struct ExpiryRun: Codable {
    var target: Target
    var ttlSeconds: Int
    /// Seconds of load on the hot key (all slices).
    var loadSeconds: Double
    /// From the fill to the last count: no entry can expire more often than once per TTL in it.
    var spanSeconds: Double
    /// TTL periods under load: the expiries a steady load sees.
    var expiriesUnderLoad: Double
    /// Backend calls for the hot key, the initial fill included.
    var backendCalls: Int
    /// The most the invariant allows: one per TTL period of the span, plus the fill.
    var allowedCalls: Int
    /// Answers served past their TTL (stale-while-revalidate, nginx UPDATING/STALE).
    var staleAnswers: Int
    /// Answers that waited for a fetch (stored, coalesced, or nginx MISS/EXPIRED).
    var waitedAnswers: Int
    /// The pure-hit baseline of the same target, measured between the slices.
    var hitP99Micros: Double
    var hitMaxMicros: Double
    /// Expiries the answers show: the first answer of each burst of non-hits (stale, fetched,
    /// coalesced) marks one.
    var expiriesSeen: Int? = nil
    /// The answers due within ±100 ms of those moments.
    var nearExpiry: LoadOutcome? = nil

    /// Refreshes (calls after the fill) per TTL period under load: 1 when every expiry costs one call.
    var callsPerExpiry: Double { expiriesUnderLoad > 0 ? Double(max(0, backendCalls - 1)) / expiriesUnderLoad : 0 }
}

/// `outage`: one round of one target: load before, during and after the backend stopped answering.
struct OutageRun: Codable {
    var target: Target
    var round: Int
    var outageSeconds: Double
    var before: LoadOutcome
    var during: LoadOutcome
    var after: LoadOutcome
    /// Calls that reached the backend in the round (the ones sent during the outage are counted
    /// when it wakes up and takes them).
    var backendCalls: Int
    var foreignCores: Double

    /// Share of the requests due during the outage answered 200.
    var okDuring: Double { Double(during.ok) / Double(max(1, during.offered)) }
}

/// `scale`: one target at one instance count.
struct ScaleRun: Codable {
    var instances: Int
    var target: Target
    /// Per herd round (fresh key each): backend calls for the key.
    var herdCalls: [Int] = []
    /// Per herd round: how many different bodies the instances answered for the key afterwards
    /// (1: they serve one stored answer).
    var distinctAnswers: [Int] = []
    /// The slowest round's p99.
    var herdP99Micros: Double = 0
    /// The instances' total hit req/s, in-process tier off (gateway only).
    var hitsTierOff: Double? = nil
    /// The same with the tier on.
    var hitsTierOn: Double? = nil

    /// Mean backend calls per key over the rounds.
    var callsPerKey: Double { herdCalls.isEmpty ? 0 : Double(herdCalls.reduce(0, +)) / Double(herdCalls.count) }
    /// Hit req/s per instance: the total divided evenly (the connections are).
    func perInstance(_ total: Double?) -> Double? { total.map { $0 / Double(max(1, instances)) } }

    /// "3 instances: gateway 1.0 backend calls per key (1 1 1); hits 41,000 req/s (13,700 per instance) tier off, 60,000 (20,000) tier on"
    var headline: String {
        var line = "\(instances) instance\(instances == 1 ? "" : "s"): \(target.rawValue) \(Self.number(callsPerKey)) backend call\(callsPerKey == 1 ? "" : "s") per key "
            + "(\(herdCalls.map(String.init).joined(separator: " "))), herd p99 \(Format.ms(herdP99Micros))"
        var hits: [String] = []
        if let off = hitsTierOff { hits.append("\(Format.rate(off)) req/s (\(Format.rate(perInstance(off)!)) per instance) tier off") }
        if let on = hitsTierOn { hits.append("\(Format.rate(on)) (\(Format.rate(perInstance(on)!))) tier on") }
        if !hits.isEmpty { line += "; hits " + hits.joined(separator: ", ") }
        return line
    }

    static func number(_ x: Double) -> String { x == x.rounded() ? String(Int(x)) : String(format: "%.1f", x) }
}

/// `invalidate`: the purges of one mode (hard or soft), each applied by every instance.
struct InvalidateRun: Codable {
    /// "hard" (delete) or "soft" (mark stale).
    var mode: String
    var instances: Int
    var purges: Int
    var spacingSeconds: Double
    /// The route's stale_while_revalidate for soft purges; 0 for hard ones.
    var staleWhileRevalidateSeconds: Int
    /// Per purge that every instance saw: µs from the XADD until the last instance answered the new version.
    var latencyMicros: [Double] = []
    /// The same, until the first instance did.
    var firstMicros: [Double] = []
    /// Per purge: backend calls for the hot key from just before the change until the next one.
    var backendCalls: [Int] = []
    /// Purges whose new version some instance did not answer within the deadline.
    var unseen = 0

    var p50Micros: Double { Percentile.nearestRank(latencyMicros, 0.5) }
    var p99Micros: Double { Percentile.nearestRank(latencyMicros, 0.99) }
    var callsPerPurge: Double { backendCalls.isEmpty ? 0 : Double(backendCalls.reduce(0, +)) / Double(backendCalls.count) }
}
