import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The machine's CPU time and the share of it spent by this benchmark's own process tree (the
/// load generator, and every gateway, nginx, demo monolith and redis-server it started), from
/// `/proc/stat` and `/proc/PID/stat`. The rest is foreign: other work on the shared machine.
/// Recorded per load because a noisy machine flatters the gateway against nginx (nginx's workers
/// lose more to a neighbour than the gateway does), so a comparison is read next to it.
struct CPUSnapshot {
    /// Monotonic seconds.
    var at: Double
    /// Busy jiffies of all CPUs: user, nice, system, irq, softirq, steal.
    var machineBusy: UInt64
    /// utime + stime of this process and its descendants, in jiffies.
    var ours: UInt64

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    static func take() -> CPUSnapshot {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return CPUSnapshot(at: Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9, machineBusy: machineBusyJiffies(), ours: treeJiffies(root: getpid()))
    }

    /// Cores' worth of CPU that others used between `start` and this snapshot, e.g. 0.4. A process
    /// of ours that exited in between counts as foreign: take snapshots around loads, not around
    /// starts and stops.
    func foreignCores(since start: CPUSnapshot) -> Double {
        let seconds = at - start.at
        guard seconds > 0 else { return 0 }
        let busy = Double(machineBusy &- start.machineBusy), own = Double(ours &- start.ours)
        return max(0, busy - own) / Self.ticksPerSecond / seconds
    }

    static func machineBusyJiffies() -> UInt64 {
        (try? String(contentsOfFile: "/proc/stat", encoding: .utf8)).flatMap(ProcStat.machineBusy) ?? 0
    }

    /// Every process's parent and CPU time, from `/proc/PID/stat`.
    static func processTable() -> [Int32: (ppid: Int32, jiffies: UInt64)] {
        var table: [Int32: (ppid: Int32, jiffies: UInt64)] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let entry = ProcStat.process(stat) else { continue }
            table[pid] = entry
        }
        return table
    }

    /// CPU time of `root` and every process below it.
    static func treeJiffies(root: Int32) -> UInt64 { ProcStat.treeJiffies(processTable(), roots: [root]) }

    /// The reading `hit` takes around each round: the machine, the benchmark's tree, and the
    /// processes below `targets` (one pass over `/proc`, so that the three agree).
    static func reading(targets: Set<Int32>) -> CPUReading {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let busy = machineBusyJiffies()
        let table = processTable()
        return CPUReading(at: Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9, machineBusy: busy,
                          bench: ProcStat.treeJiffies(table, roots: [getpid()]), target: ProcStat.treeJiffies(table, roots: targets))
    }
}
