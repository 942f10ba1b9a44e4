import Foundation

/// The terminal table: one row per scenario, case and target; then the headlines, the goals and the invariants.
enum TableReport {
    static func render(_ report: RunReport) -> String {
        var out: [String] = []
        let s = report.settings
        out.append("")
        out.append("CacheGateway benchmark  \(HTMLReport.dateLine(report.startedAt))\(s.smoke ? "  (smoke)" : "")  backend delay \(s.backendDelayMs) ms  "
            + "\(Format.seconds(s.durationSeconds)) per target  \(report.machine.cores) cores  \(s.nginx)")
        out.append("")
        let header = ["scenario", "case", "target", "req/s", "p50", "p99", "p99.9", "failed", "cached", "backend calls", "×direct", "×nginx", "foreign CPU"]
        var rows: [[String]] = []
        for scenario in report.scenarios {
            var firstOfScenario = true
            for c in scenario.cases {
                var firstOfCase = true
                let closedLoop = scenario.name == "hit" || scenario.name == "miss"
                let direct = c.run(.direct)?.result.requestsPerSecond
                let nginx = c.run(.nginx)?.result.requestsPerSecond
                for r in c.runs {
                    let rps = r.throughput
                    rows.append([
                        firstOfScenario ? scenario.name : "",
                        firstOfCase ? c.name : "",
                        r.target.rawValue,
                        scenario.name == "herd" || c.burst == true ? "–" : Format.rate(rps),
                        r.result.ms(\.p50),
                        r.result.ms(\.p99),
                        r.result.ms(\.p999),
                        r.result.failed == 0 ? "0" : Format.count(r.result.failed),
                        r.result.cachedRatio.map(Format.percent) ?? "–",
                        Format.count(r.backendCalls),
                        closedLoop && r.target != .direct ? direct.map { Format.ratio(rps / max($0, 0.001)) } ?? "" : "",
                        closedLoop && r.target == .gateway ? nginxRatio(c, rps: rps, nginx: nginx) : "",
                        r.foreignCores.map { String(format: "%.2f", $0) } ?? "",
                    ])
                    firstOfScenario = false
                    firstOfCase = false
                }
            }
        }
        out.append(contentsOf: table(header, rows, rightAligned: Set(3..<header.count)))
        out.append("")
        out.append("req/s: hit, miss: answers per second, as fast as they come; users, shield, expiry, outage: 200s per second of the schedule (offered rate × share answered). failed: errors + timeouts.")
        out.append("cached: answers that cost no backend call of their own (hit, stale, or coalesced with another request's fetch).")
        out.append("foreign CPU: cores' worth of CPU that other work on the machine used during the load (hit: mean of the rounds; expiry, outage); a busy machine flatters the gateway against nginx.")
        out.append("×nginx, hit: median gateway ÷ nginx over the quiet pairs of rounds (foreign CPU at most the threshold); \"no ratio\" when none was quiet.")
        out.append("backend calls: requests that reached the demo monolith while measuring. herd: latency of the slowest round, calls of all rounds.")
        out.append("")
        for scenario in report.scenarios {
            let lines = Goals.headlines(scenario, delayMs: s.backendDelayMs)
            guard !lines.isEmpty else { continue }
            out.append("\(scenario.name):")
            for line in lines { out.append("  \(line)") }
        }
        if !report.goals.isEmpty {
            out.append("")
            out.append("Goals (reported, they do not fail the run):")
            let width = report.goals.map(\.name.count).max() ?? 0
            for g in report.goals {
                let mark = g.met == nil ? "·" : g.met! ? "✓" : "✗"
                out.append("  \(mark) \(g.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(g.measured)   (goal \(g.goal))")
            }
        }
        out.append("")
        let checks = report.scenarios.flatMap(\.checks)
        let failed = checks.filter { !$0.passed }
        if !failed.isEmpty {
            out.append("Broken invariants:")
            for c in failed { out.append("  ✗ \(c.headline)") }
        }
        // Last, alone on its line: the count CI reads.
        out.append("Invariants: \(checks.count - failed.count) passed, \(failed.count) failed")
        return out.joined(separator: "\n")
    }

    /// hit: the quiet rounds' median ratio, never one taken from noisy rounds.
    static func nginxRatio(_ c: CaseReport, rps: Double, nginx: Double?) -> String {
        guard let rounds = c.hitRounds else { return nginx.map { Format.ratio(rps / max($0, 0.001)) } ?? "" }
        guard rounds.hasPairs else { return "" }
        return rounds.quietRatio.map { Format.ratio($0.median) } ?? "no ratio"
    }

    static func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int>) -> [String] {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return rightAligned.contains(i) ? pad + cell : cell + pad
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        return [line(header), widths.map { String(repeating: "─", count: $0) }.joined(separator: "  ")] + rows.map(line)
    }
}
