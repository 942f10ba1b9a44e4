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
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return 0 }
        // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is in user)
        let f = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard f.count >= 8 else { return 0 }
        return f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    }

    /// CPU time of `root` and every process below it.
    static func treeJiffies(root: Int32) -> UInt64 {
        var parent: [Int32: Int32] = [:]
        var time: [Int32: UInt64] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // After "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
            let f = stat[stat.index(after: close)...].split(separator: " ")
            guard f.count > 12, let ppid = Int32(f[1]), let utime = UInt64(f[11]), let stime = UInt64(f[12]) else { continue }
            parent[pid] = ppid
            time[pid] = utime + stime
        }
        var total: UInt64 = 0
        for (pid, t) in time {
            var p = pid
            var depth = 0
            while p != root, p > 1, depth < 64, let up = parent[p] { p = up; depth += 1 }
            if p == root { total += t }
        }
        return total
    }
}
