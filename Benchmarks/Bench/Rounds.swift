import Foundation

/// One round of one target in `hit`: a load of the same length as every other round of the case,
/// with the CPU the target's own processes used and the CPU the rest of the machine used meanwhile.
struct HitRound: Codable, Equatable {
    var target: Target
    /// 1-based; round k of every target is taken back to back, so gateway k and nginx k form a pair.
    var round: Int
    var requests: Int
    var seconds: Double
    var requestsPerSecond: Double
    /// utime + stime of the target's processes (gateway and redis-server; nginx's master and
    /// workers; the demo monolith for `direct`) over the round.
    var targetCPUSeconds: Double
    /// Cores' worth of CPU used by everything that is neither the benchmark nor its children.
    var foreignCores: Double
    /// Foreign CPU above the threshold: the round says more about the neighbours than the target.
    var noisy: Bool

    /// CPU time per answer: what a hit costs, whatever the load generator could push.
    var cpuMicrosPerRequest: Double? { requests > 0 ? targetCPUSeconds * 1e6 / Double(requests) : nil }
}

/// A median with the smallest and largest value it was taken from.
struct Spread: Codable, Equatable {
    var median: Double
    var min: Double
    var max: Double
    var count: Int

    /// nil when there is nothing to take it from. An even count gives the mean of the middle two.
    init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let mid = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        min = sorted.first!
        max = sorted.last!
        self.count = values.count
    }
}

/// gateway round k against nginx round k.
struct RoundPair: Codable, Equatable {
    var round: Int
    /// gateway req/s ÷ nginx req/s.
    var ratio: Double
    /// Neither round was noisy: only these pairs make the reported ratio.
    var quiet: Bool
}

/// The rounds of one `hit` case and what may be concluded from them.
struct HitRounds: Codable, Equatable {
    /// Foreign CPU, in cores, above which a round is noisy.
    var noiseThresholdCores: Double
    var rounds: [HitRound]
    var pairs: [RoundPair]
    /// gateway ÷ nginx over the quiet pairs; nil when no pair was quiet (or nginx not compared).
    var quietRatio: Spread?
    /// Per target: req/s over its quiet rounds (all rounds when none was quiet; see `quietOnly`).
    var requestsPerSecond: [String: Spread]
    /// Per target: CPU µs per answer over the same rounds.
    var cpuMicrosPerRequest: [String: Spread]
    /// Per target: whether the two spreads above come from quiet rounds only.
    var quietOnly: [String: Bool]

    init(rounds: [HitRound], noiseThresholdCores: Double) {
        self.noiseThresholdCores = noiseThresholdCores
        self.rounds = rounds
        pairs = Self.pairs(rounds, of: .gateway, against: .nginx)
        quietRatio = Spread(pairs.filter(\.quiet).map(\.ratio))
        var rps: [String: Spread] = [:], cpu: [String: Spread] = [:], quietOnly: [String: Bool] = [:]
        for target in Target.allCases {
            let mine = rounds.filter { $0.target == target }
            guard !mine.isEmpty else { continue }
            let quiet = mine.filter { !$0.noisy }
            let used = quiet.isEmpty ? mine : quiet
            rps[target.rawValue] = Spread(used.map(\.requestsPerSecond))
            cpu[target.rawValue] = Spread(used.compactMap(\.cpuMicrosPerRequest))
            quietOnly[target.rawValue] = !quiet.isEmpty
        }
        requestsPerSecond = rps
        cpuMicrosPerRequest = cpu
        self.quietOnly = quietOnly
    }

    /// Round k of `a` with round k of `b`, for every k both have.
    static func pairs(_ rounds: [HitRound], of a: Target, against b: Target) -> [RoundPair] {
        rounds.filter { $0.target == a }.compactMap { x in
            guard let y = rounds.first(where: { $0.target == b && $0.round == x.round }), y.requestsPerSecond > 0 else { return nil }
            return RoundPair(round: x.round, ratio: x.requestsPerSecond / y.requestsPerSecond, quiet: !x.noisy && !y.noisy)
        }
    }

    var noisyRounds: Int { rounds.filter(\.noisy).count }
    var hasPairs: Bool { !pairs.isEmpty }

    /// "0.71× (0.69–0.74, 3 quiet pairs of 3)" or "no quiet rounds: no ratio (3 pairs, all noisy)".
    var ratioText: String? {
        guard hasPairs else { return nil }
        guard let r = quietRatio else { return "no quiet rounds: no ratio (\(pairs.count) pair\(pairs.count == 1 ? "" : "s"), all noisy)" }
        return "\(Format.ratio(r.median)) (\(Self.range(r, Format.ratio)), \(r.count) quiet pair\(r.count == 1 ? "" : "s") of \(pairs.count))"
    }

    /// "gateway 41,200 req/s (40,100–42,000), 22.1 µs CPU per answer (21.0–23.3)"
    func targetText(_ target: Target) -> String? {
        guard let rps = requestsPerSecond[target.rawValue] else { return nil }
        var line = "\(target.rawValue) \(Format.rate(rps.median)) req/s (\(Self.range(rps, Format.rate)))"
        if let cpu = cpuMicrosPerRequest[target.rawValue] {
            line += ", \(Self.micros(cpu.median)) CPU per answer (\(Self.range(cpu, Self.micros)))"
        }
        if quietOnly[target.rawValue] == false { line += ", every round noisy" }
        return line
    }

    static func range(_ s: Spread, _ format: (Double) -> String) -> String {
        s.count == 1 ? "1 round" : "\(format(s.min))–\(format(s.max))"
    }

    static func micros(_ us: Double) -> String { us >= 100 ? String(format: "%.0f µs", us) : String(format: "%.1f µs", us) }
}

/// CPU accounting of one round from two readings of `/proc`: the machine's busy time, the
/// benchmark's whole process tree (load generator and every process it started), and the target's
/// own processes. Pure, so that the arithmetic is tested on recorded samples.
struct CPUReading: Equatable {
    /// Monotonic seconds.
    var at: Double
    /// Busy jiffies of all CPUs (`/proc/stat` line `cpu`).
    var machineBusy: UInt64
    /// utime + stime of the benchmark and its descendants, in jiffies.
    var bench: UInt64
    /// utime + stime of the target's processes, in jiffies (a subset of `bench`).
    var target: UInt64

    /// (target CPU seconds, foreign cores) between `start` and this reading. Foreign is what the
    /// machine was busy with beyond the benchmark's own tree; the tree includes the load generator
    /// and the other targets' idle stacks, which are not the target's but not a neighbour either.
    func since(_ start: CPUReading, ticksPerSecond: Double) -> (targetSeconds: Double, foreignCores: Double) {
        let seconds = at - start.at
        let target = Double(self.target &- start.target) / ticksPerSecond
        guard seconds > 0 else { return (target, 0) }
        let busy = Double(machineBusy &- start.machineBusy), own = Double(bench &- start.bench)
        return (target, max(0, busy - own) / ticksPerSecond / seconds)
    }
}

/// The numbers of `/proc` files the accounting needs, parsed without touching the file system.
enum ProcStat {
    /// Busy jiffies from `/proc/stat`'s first line: user, nice, system, irq, softirq, steal (guest
    /// time is already inside user; idle and iowait are not busy).
    static func machineBusy(_ procStat: String) -> UInt64? {
        guard let line = procStat.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        let f = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard f.count >= 8 else { return nil }
        return f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    }

    /// (ppid, utime + stime) from `/proc/PID/stat`. The command name is in parentheses and may
    /// itself hold spaces and parentheses, so the fields are counted from the last ")".
    static func process(_ stat: String) -> (ppid: Int32, jiffies: UInt64)? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        let f = stat[stat.index(after: close)...].split(separator: " ")
        guard f.count > 12, let ppid = Int32(f[1]), let utime = UInt64(f[11]), let stime = UInt64(f[12]) else { return nil }
        return (ppid, utime + stime)
    }

    /// CPU time of every process below (and including) one of `roots`, from (pid → (ppid, jiffies)).
    static func treeJiffies(_ table: [Int32: (ppid: Int32, jiffies: UInt64)], roots: Set<Int32>) -> UInt64 {
        var total: UInt64 = 0
        for (pid, entry) in table {
            var p = pid
            var depth = 0
            while !roots.contains(p), p > 1, depth < 64, let up = table[p]?.ppid { p = up; depth += 1 }
            if roots.contains(p) { total += entry.jiffies }
        }
        return total
    }
}
