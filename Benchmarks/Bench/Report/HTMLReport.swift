import Foundation

/// The self-contained HTML report: verdict and goals first, then one section per scenario with
/// headline figures, charts (inline SVG), the numbers and the invariants checked.
enum HTMLReport {
    static func color(_ t: Target) -> String {
        switch t {
        case .direct: "#94a3b8"
        case .gateway: "#2563eb"
        case .nginx: "#16a34a"
        }
    }

    static let green = "#15803d", red = "#b91c1c", amber = "#b45309"

    static func render(_ report: RunReport) -> String {
        let s = report.settings
        let checks = report.scenarios.flatMap(\.checks)
        let failed = checks.filter { !$0.passed }
        var html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>CacheGateway benchmark · \(esc(report.startedAt))</title>
            <style>\(css)</style></head><body><main>
            <header>
              <div class="brand">CacheGateway benchmark</div>
              <h1>Gateway vs. nginx proxy_cache vs. the backend alone</h1>
              <p class="meta">\(esc(dateLine(report.startedAt)))\(s.smoke ? " · <b>smoke run</b>" : "") · backend delay \(s.backendDelayMs) ms ·
              \(esc(Format.seconds(s.durationSeconds))) of load per target · \(report.machine.cores) cores, \(esc(report.machine.cpu)) ·
              \(s.workers) gateway event loop\(s.workers == 1 ? "" : "s") / nginx worker\(s.workers == 1 ? "" : "s") · \(esc(s.nginx))</p>
              <div class="verdict \(failed.isEmpty ? "ok" : "bad")">\(failed.isEmpty
                ? "✓ All \(checks.count) invariants held"
                : "✗ \(failed.count) of \(checks.count) invariants broken")</div>
            \(failed.isEmpty ? "" : "<ul class=\"broken\">" + failed.map { "<li>\(esc($0.headline))</li>" }.joined() + "</ul>")
            </header>
            """
        html += legend
        if !report.goals.isEmpty {
            html += "<section class=\"goals\"><h2>Goals</h2><p class=\"sub\">What the gateway aims for. Reported here; only broken invariants fail a run.</p><div class=\"cards\">"
            for g in report.goals {
                let tone = g.met == nil ? "na" : g.met! ? "met" : "missed"
                let badge = g.met == nil ? "not measured" : g.met! ? "met" : "not met"
                let parts = g.measured.split(separator: " (", maxSplits: 1).map(String.init)
                let detail = parts.count > 1 ? "<div class=\"cdet\">(\(esc(parts[1]))</div>" : ""
                html += "<div class=\"card \(tone)\"><div class=\"cname\">\(esc(g.name))</div><div class=\"cval\">\(esc(parts[0]))</div>\(detail)"
                    + "<div class=\"cgoal\">goal \(esc(g.goal)) <span class=\"badge \(tone)\">\(badge)</span></div></div>"
            }
            html += "</div></section>"
        }
        html += "<nav>" + report.scenarios.map { "<a href=\"#\($0.name)\">\(esc($0.title))</a>" }.joined() + "</nav>"
        for scenario in report.scenarios {
            html += section(scenario, settings: s)
        }
        html += howToRead(s)
        html += """
            <footer><p>Command: <code>\(esc(report.command))</code><br>
            Started \(esc(report.startedAt)), finished \(esc(report.finishedAt)). \(esc(report.machine.kernel)), \(String(format: "%.1f", report.machine.memoryGiB)) GiB.
            All numbers of this page are in the JSON file written next to it.</p></footer>
            </main></body></html>

            """
        return html
    }

    // MARK: Sections

    static func section(_ s: ScenarioReport, settings: Settings) -> String {
        let delay = Double(settings.backendDelayMs) * 1000
        var h = "<section class=\"scenario\" id=\"\(s.name)\"><h2>\(esc(s.title)) <span class=\"tag\">\(s.name)</span>"
        let broken = s.checks.filter { !$0.passed }.count
        h += broken == 0 ? "<span class=\"pill ok\">\(s.checks.count) checks held</span>" : "<span class=\"pill bad\">\(broken) broken</span>"
        h += "</h2><p class=\"summary\">\(esc(s.summary))</p>"
        h += tiles(s, delay: delay)
        h += "<div class=\"charts\">"
        switch s.name {
        case "hit":
            h += figure("Throughput", "answers per second, higher is better", SVGCharts.bars(s.cases.flatMap { c in
                c.runs.map { SVGCharts.Bar(group: c.name, label: $0.target.label, value: $0.result.requestsPerSecond, color: color($0.target),
                                           text: "\(Format.rate($0.result.requestsPerSecond)) req/s") }
            }))
            for c in s.cases {
                h += figure("Latency, \(c.name)", "by percentile; lower is better", percentileChart(c.runs))
            }
            h += figure("Backend calls while measuring", "after warm-up; a cache should make none", backendCalls(s.cases))
            for c in s.cases {
                guard let rounds = c.hitRounds else { continue }
                h += "<figure><figcaption>Every round, \(esc(c.name))<span>in the order taken; noisy: foreign CPU above \(String(format: "%.2f", rounds.noiseThresholdCores)) cores, "
                    + "left out of the ratio</span></figcaption><div class=\"scroll\">" + hitRoundsTable(rounds) + "</div></figure>"
            }
        case "miss":
            if let c = s.cases.first {
                h += figure("Latency", "by percentile, every request a miss; dashed: the backend's own delay",
                            percentileChart(c.runs, marker: SVGCharts.Marker(value: delay, label: "backend delay \(settings.backendDelayMs) ms", color: amber)))
                if let d = c.run(.direct) {
                    h += figure("Added latency over the backend directly", "p50 and p99; lower is better", SVGCharts.bars(c.runs.filter { $0.target != .direct }.flatMap { r in
                        [SVGCharts.Bar(group: r.target.label, label: "p50", value: max(0, r.result.p50 - d.result.p50), color: color(r.target),
                                       text: Format.deltaMs(r.result.p50 - d.result.p50)),
                         SVGCharts.Bar(group: nil, label: "p99", value: max(0, r.result.p99 - d.result.p99), color: color(r.target),
                                       text: Format.deltaMs(r.result.p99 - d.result.p99))]
                    }, markers: [SVGCharts.Marker(value: 1000, label: "goal 1 ms", color: amber)]))
                }
                h += figure("Throughput", "answers per second with \(MissScenario.connections) connections", SVGCharts.bars(c.runs.map {
                    SVGCharts.Bar(label: $0.target.label, value: $0.result.requestsPerSecond, color: color($0.target), text: "\(Format.rate($0.result.requestsPerSecond)) req/s")
                }))
                h += figure("Backend calls", "one per request: nothing to save here", backendCalls(s.cases))
            }
        case "herd":
            if let c = s.cases.first, let rounds = s.herdRounds {
                let targets = c.runs.map(\.target)
                h += figure("Backend calls per key", "average over the rounds, log scale; 1 is the ideal", SVGCharts.bars(targets.map { t in
                    let r = rounds.filter { $0.target == t }
                    let avg = Double(r.map(\.backendCalls).reduce(0, +)) / Double(max(1, r.count))
                    return SVGCharts.Bar(label: t.label, value: avg, color: color(t), text: avg == avg.rounded() ? "\(Int(avg)) per key" : String(format: "%.1f per key", avg))
                }, log: true))
                h += figure("How long the herd waits", "p50 and p99 of the slowest round; dashed: the backend delay, and the goal (+10 ms)",
                            SVGCharts.bars(c.runs.flatMap { r in
                                [SVGCharts.Bar(group: r.target.label, label: "p50", value: r.result.p50, color: color(r.target), text: r.result.ms(\.p50)),
                                 SVGCharts.Bar(group: nil, label: "p99", value: r.result.p99, color: color(r.target), text: r.result.ms(\.p99))]
                            }, markers: [SVGCharts.Marker(value: delay, label: "backend \(settings.backendDelayMs) ms", color: amber, anchor: "end"),
                                         SVGCharts.Marker(value: delay + 10_000, label: "goal +10 ms", color: red, anchor: "start")]))
                h += figure("Latency of the slowest round", "by percentile", percentileChart(c.runs, marker: SVGCharts.Marker(value: delay, label: "backend delay", color: amber)))
                h += "<figure><figcaption>Every round<span>backend calls for the round's key, and what the herd waited</span></figcaption><div class=\"scroll\">" + herdTable(rounds, delay: delay) + "</div></figure>"
            }
        case "users":
            if let c = s.cases.first {
                h += figure("What the cache did", "share of answers, by Cache-Status", outcomes(c.runs))
                h += figure("Backend calls", "of the requests answered; fewer is better", backendCalls(s.cases, relative: true))
                h += figure("Latency", "by percentile, what the users waited", percentileChart(c.runs))
                if let m = s.memory {
                    h += figure("Gateway memory", "resident size (VmRSS) over the run: first \(Format.mib(m.firstKiB)), last \(Format.mib(m.lastKiB)), max \(Format.mib(m.maxKiB))",
                                SVGCharts.line(m.samples.map { (Double($0.seconds), Double($0.kib)) }, color: color(.gateway),
                                               yLabel: { Format.mib(Int($0)) }, xLabel: "seconds into the run"))
                }
            }
        case "local-soak":
            if let m = s.memory {
                h += figure("Gateway memory", "resident size (VmRSS) over the run: first \(Format.mib(m.firstKiB)), last \(Format.mib(m.lastKiB)), max \(Format.mib(m.maxKiB))",
                            SVGCharts.line(m.samples.map { (Double($0.seconds), Double($0.kib)) }, color: color(.gateway),
                                           yLabel: { Format.mib(Int($0)) }, xLabel: "seconds into the run"))
            }
        case "shield":
            if let c = s.cases.first {
                let patience = c.runs.first?.patienceSeconds ?? 2
                h += figure("What the users got", "every request that was due, by outcome", SVGCharts.stacked(c.runs.map { r in
                    SVGCharts.Stack(label: r.target.label, segments: [
                        .init(name: "answered within \(Format.seconds(patience))", value: Double(r.result.ok), color: green),
                        .init(name: "error status", value: Double(r.result.nonOK), color: amber),
                        .init(name: "gave up (timeout)", value: Double(r.result.timeouts), color: "#9ca3af"),
                        .init(name: "connection error", value: Double(r.result.errors), color: red),
                    ])
                }))
                h += figure("Latency of the answers that came", "by percentile; dashed: when users give up",
                            percentileChart(c.runs, marker: SVGCharts.Marker(value: patience * 1_000_000, label: "users give up", color: red)))
                h += figure("Backend calls", "while measuring; the backend can do about \(Int((Double(settings.durationSeconds) * (c.runs.first?.offeredRate ?? 0) / ShieldScenario.overload).rounded())) in this time", backendCalls(s.cases))
            }
        case "expiry":
            if let runs = s.expiry, let hot = s.cases.first, let hit = s.cases.dropFirst().first {
                var series: [SVGCharts.Series] = []
                let near = s.cases.dropFirst(2).first
                for r in hot.runs {
                    series.append(SVGCharts.Series(name: "\(r.target.label), expiring key", color: color(r.target), points: r.result.percentileCurve, samples: r.result.requests))
                    if let n = near?.run(r.target), n.result.requests > 0 {
                        series.append(SVGCharts.Series(name: "\(r.target.label), ±100 ms of an expiry", color: darker(r.target), points: n.result.percentileCurve, samples: n.result.requests))
                    }
                    if let b = hit.run(r.target) {
                        series.append(SVGCharts.Series(name: "\(r.target.label), pure hit", color: lighter(r.target), points: b.result.percentileCurve, samples: b.result.requests))
                    }
                }
                h += figure("Latency, expiring key vs pure hit", "by percentile; dashed: the backend delay, what a request waiting for the refresh would take",
                            SVGCharts.percentiles(series, marker: SVGCharts.Marker(value: delay, label: "backend delay", color: amber)))
                h += figure("The tail at expiry", "p99 and max of the expiring key, and of the pure hit; log scale",
                            SVGCharts.bars(hot.runs.flatMap { r -> [SVGCharts.Bar] in
                                let b = hit.run(r.target)?.result
                                return [SVGCharts.Bar(group: r.target.label, label: "p99", value: r.result.p99, color: color(r.target), text: r.result.ms(\.p99)),
                                        SVGCharts.Bar(group: nil, label: "p99, pure hit", value: b?.p99 ?? 0, color: lighter(r.target), text: b?.ms(\.p99) ?? "–"),
                                        SVGCharts.Bar(group: nil, label: "max", value: r.result.maxLatency, color: color(r.target), text: r.result.ms(\.maxLatency)),
                                        SVGCharts.Bar(group: nil, label: "max, pure hit", value: b?.maxLatency ?? 0, color: lighter(r.target), text: b?.ms(\.maxLatency) ?? "–")]
                            }, log: true, markers: [SVGCharts.Marker(value: delay, label: "backend \(settings.backendDelayMs) ms", color: amber)], minLog: 10))
                h += figure("Backend calls per expiry", "refreshes per TTL period under load; 1 is the ideal", SVGCharts.bars(runs.map { e in
                    SVGCharts.Bar(label: e.target.label, value: e.callsPerExpiry, color: color(e.target),
                                  text: "\(String(format: "%.2f", e.callsPerExpiry)) (\(e.backendCalls) calls)")
                }, markers: [SVGCharts.Marker(value: 1, label: "1 per expiry", color: amber)]))
                h += figure("What the cache did with the expiring key", "share of answers, by Cache-Status", outcomes(hot.runs))
            }
        case "outage":
            if let during = s.cases.first {
                h += figure("What the users got during the outage", "every request due while the backend was hung, by outcome", SVGCharts.stacked(during.runs.map { r in
                    SVGCharts.Stack(label: r.target.label, segments: [
                        .init(name: "200, stale", value: Double(min(r.result.ok, r.result.count(.stale))), color: "#0d9488"),
                        .init(name: "200, other", value: Double(max(0, r.result.ok - r.result.count(.stale))), color: green),
                        .init(name: "error status", value: Double(r.result.nonOK), color: amber),
                        .init(name: "gave up (timeout)", value: Double(r.result.timeouts), color: "#9ca3af"),
                        .init(name: "connection error", value: Double(r.result.errors), color: red),
                    ])
                }))
                let timeout = Double(OutageScenario.upstreamTimeoutSeconds) * 1_000_000
                h += figure("Latency during the outage", "by percentile; dashed: the upstream timeout, after which a stale entry stands in",
                            percentileChart(during.runs, marker: SVGCharts.Marker(value: timeout, label: "upstream timeout", color: amber)))
                if let rounds = s.outage, !rounds.isEmpty {
                    h += "<figure><figcaption>Every round<span>share answered 200 before, during and after the outage</span></figcaption><div class=\"scroll\">" + outageTable(rounds) + "</div></figure>"
                }
            }
        default:
            break
        }
        h += "</div>"
        h += numbers(s)
        if !s.notes.isEmpty { h += "<ul class=\"notes\">" + s.notes.map { "<li>\(esc($0))</li>" }.joined() + "</ul>" }
        h += "<details\(broken > 0 ? " open" : "")><summary>Invariants checked (\(s.checks.count))</summary><ul class=\"checks\">"
        for c in s.checks {
            h += "<li class=\"\(c.passed ? "ok" : "bad")\"><span>\(c.passed ? "✓" : "✗")</span> <b>\(esc(c.target.map { "\($0.rawValue): " } ?? ""))\(esc(c.name))</b> — \(esc(c.detail))</li>"
        }
        h += "</ul></details></section>"
        return h
    }

    /// The big numbers at the top of a section.
    static func tiles(_ s: ScenarioReport, delay: Double) -> String {
        struct Tile { var value: String; var caption: String; var detail: String; var tone: String = "" }
        var tiles: [Tile] = []
        switch s.name {
        case "hit":
            for c in s.cases {
                guard let g = c.run(.gateway) else { continue }
                if let rounds = c.hitRounds, rounds.hasPairs {
                    let cpu = [Target.gateway, .nginx].compactMap { t in rounds.cpuMicrosPerRequest[t.rawValue].map { "\(t.rawValue) \(HitRounds.micros($0.median))" } }
                    if let r = rounds.quietRatio {
                        tiles.append(Tile(value: Format.ratio(r.median), caption: "\(c.name): gateway vs nginx, quiet rounds",
                                          detail: "\(HitRounds.range(r, Format.ratio)) over \(r.count) of \(rounds.pairs.count) pairs; CPU per answer \(cpu.joined(separator: " vs "))",
                                          tone: r.median >= 1 ? "good" : "bad"))
                    } else {
                        tiles.append(Tile(value: "no ratio", caption: "\(c.name): gateway vs nginx",
                                          detail: "no quiet rounds: every pair had foreign CPU above \(String(format: "%.2f", rounds.noiseThresholdCores)) cores"))
                    }
                } else if let n = c.run(.nginx) {
                    let r = g.result.requestsPerSecond / max(n.result.requestsPerSecond, 0.001)
                    tiles.append(Tile(value: Format.ratio(r), caption: "\(c.name): gateway vs nginx",
                                      detail: "\(Format.rate(g.result.requestsPerSecond)) vs \(Format.rate(n.result.requestsPerSecond)) req/s",
                                      tone: r >= 1 ? "good" : "bad"))
                } else if let d = c.run(.direct) {
                    tiles.append(Tile(value: Format.ratio(g.result.requestsPerSecond / max(d.result.requestsPerSecond, 0.001)),
                                      caption: "\(c.name): gateway vs backend", detail: "\(Format.rate(g.result.requestsPerSecond)) req/s"))
                }
            }
        case "miss":
            if let c = s.cases.first, let d = c.run(.direct) {
                for r in c.runs where r.target != .direct {
                    let added = r.result.p50 - d.result.p50
                    tiles.append(Tile(value: Format.deltaMs(added), caption: "\(r.target.label) adds at p50",
                                      detail: "\(r.result.ms(\.p50)) vs \(d.result.ms(\.p50)) direct",
                                      tone: r.target == .gateway ? (added <= 1000 ? "good" : "bad") : ""))
                }
            }
        case "herd":
            if let rounds = s.herdRounds {
                for t in Target.allCases {
                    let r = rounds.filter { $0.target == t }
                    guard !r.isEmpty else { continue }
                    let calls = r.map(\.backendCalls)
                    let worst = r.map(\.p99Micros).max()!
                    if t == .direct {
                        tiles.append(Tile(value: "\(calls.max()!)", caption: "backend calls per key, no cache", detail: "\(r.first!.answered) requests each"))
                    } else {
                        tiles.append(Tile(value: calls.allSatisfy { $0 == calls[0] } ? "\(calls[0])" : "\(calls.min()!)–\(calls.max()!)",
                                          caption: "\(t.label): backend calls per key", detail: "in \(r.count) rounds",
                                          tone: t == .gateway ? (calls.allSatisfy { $0 == 1 } ? "good" : "bad") : ""))
                        tiles.append(Tile(value: Format.deltaMs(worst - delay), caption: "\(t.label): waiters' p99 beyond the backend",
                                          detail: "p99 \(Format.ms(worst)) in the slowest round",
                                          tone: t == .gateway ? (worst - delay <= 10_000 ? "good" : "bad") : ""))
                    }
                }
            }
        case "users":
            if let c = s.cases.first {
                for r in c.runs where r.target != .direct {
                    let saved = 1 - Double(r.backendCalls) / Double(max(1, r.result.requests))
                    tiles.append(Tile(value: Format.percent(max(0, saved)), caption: "\(r.target.label): backend calls saved",
                                      detail: "\(Format.count(r.backendCalls)) calls for \(Format.count(r.result.requests)) requests; hit ratio \(r.result.hitRatio.map(Format.percent) ?? "–")"))
                }
                if let g = c.run(.gateway), let d = c.run(.direct) {
                    tiles.append(Tile(value: g.result.ms(\.p50), caption: "gateway p50 (direct \(d.result.ms(\.p50)))",
                                      detail: "p99 \(g.result.ms(\.p99)) vs \(d.result.ms(\.p99)) direct"))
                }
                if let m = s.memory {
                    tiles.append(Tile(value: String(format: "%.1f → %.1f", Double(m.firstKiB) / 1024, Double(m.lastKiB) / 1024), caption: "gateway RSS in MiB, first → last",
                                      detail: "max \(Format.mib(m.maxKiB))\(m.checked ? "" : "; flatness checked on runs ≥ 60 s")"))
                }
            }
        case "local-soak":
            if let m = s.memory {
                tiles.append(Tile(value: String(format: "%.1f → %.1f", Double(m.firstKiB) / 1024, Double(m.lastKiB) / 1024), caption: "gateway RSS in MiB, first → last",
                                  detail: "max \(Format.mib(m.maxKiB))"))
            }
        case "shield":
            if let c = s.cases.first {
                for r in c.runs {
                    let inTime = Double(r.result.ok) / Double(max(1, r.result.offered))
                    tiles.append(Tile(value: Format.percent(inTime), caption: "\(r.target.label): answered in time",
                                      detail: r.result.requests == 0 ? "nobody answered; \(Format.count(r.result.timeouts)) gave up"
                                          : "p50 \(r.result.ms(\.p50)), \(Format.count(r.result.timeouts)) gave up",
                                      tone: inTime >= 0.99 ? "good" : inTime < 0.5 ? "bad" : ""))
                }
            }
        case "expiry":
            if let runs = s.expiry, let hot = s.cases.first {
                for e in runs {
                    guard let r = hot.run(e.target) else { continue }
                    let near = e.nearExpiry.flatMap { $0.requests > 0 ? $0 : nil }
                    let added = (near?.p99 ?? r.result.p99) - e.hitP99Micros
                    tiles.append(Tile(value: Format.deltaMs(added), caption: "\(e.target.label): p99 \(near == nil ? "" : "near an expiry ")over a pure hit",
                                      detail: (near.map { "±100 ms of \(e.expiriesSeen ?? 0) expiries: p99 \($0.ms(\.p99)), max \($0.ms(\.maxLatency)); " } ?? "")
                                          + "whole run p99 \(r.result.ms(\.p99)) vs \(Format.ms(e.hitP99Micros)); \(e.waitedAnswers) answers waited",
                                      tone: e.target == .gateway ? (added <= 1000 && e.waitedAnswers == 0 ? "good" : "bad") : ""))
                    tiles.append(Tile(value: String(format: "%.2f", e.callsPerExpiry), caption: "\(e.target.label): backend calls per expiry",
                                      detail: "\(e.backendCalls) calls (fill included) in \(Format.seconds(e.loadSeconds)) of load, TTL \(e.ttlSeconds) s",
                                      tone: e.target == .gateway ? (e.backendCalls <= e.allowedCalls ? "good" : "bad") : ""))
                }
            }
        case "invalidate":
            for r in s.invalidate ?? [] {
                tiles.append(Tile(value: Format.ms(r.p99Micros), caption: "\(r.mode) purge: XADD → new version everywhere, p99",
                                  detail: "p50 \(Format.ms(r.p50Micros)) over \(r.latencyMicros.count) purges, \(r.instances) instances; includes one backend call",
                                  tone: r.unseen == 0 ? "good" : "bad"))
                tiles.append(Tile(value: String(format: "%.2f", r.callsPerPurge), caption: "\(r.mode) purge: backend calls per purge",
                                  detail: r.backendCalls.map(String.init).joined(separator: " "), tone: ""))
            }
        case "scale":
            for r in s.scale ?? [] where r.target == .gateway {
                let nginx = s.scale?.first { $0.target == .nginx && $0.instances == r.instances }
                tiles.append(Tile(value: ScaleRun.number(r.callsPerKey), caption: "\(r.instances) instance\(r.instances == 1 ? "" : "s"): backend calls per key",
                                  detail: "rounds: \(r.herdCalls.map(String.init).joined(separator: " ")); goal 1" + (nginx.map { "; nginx \(ScaleRun.number($0.callsPerKey))" } ?? ""),
                                  tone: r.callsPerKey == 1 ? "good" : "bad"))
            }
        case "outage":
            if let during = s.cases.first {
                for r in during.runs {
                    let share = Double(r.result.ok) / Double(max(1, r.result.offered))
                    tiles.append(Tile(value: Format.percent(share), caption: "\(r.target.label): 200 during the outage",
                                      detail: "\(Format.count(r.result.ok)) of \(Format.count(r.result.offered)); p50 \(r.result.ms(\.p50)), p99 \(r.result.ms(\.p99))",
                                      tone: r.target == .gateway ? (share >= 1 ? "good" : "bad") : ""))
                }
            }
        default:
            break
        }
        guard !tiles.isEmpty else { return "" }
        return "<div class=\"tiles\">" + tiles.map {
            "<div class=\"tile \($0.tone)\"><div class=\"tval\">\(esc($0.value))</div><div class=\"tcap\">\(esc($0.caption))</div><div class=\"tdet\">\(esc($0.detail))</div></div>"
        }.joined() + "</div>"
    }

    static func figure(_ title: String, _ subtitle: String, _ svg: String) -> String {
        "<figure><figcaption>\(esc(title))<span>\(esc(subtitle))</span></figcaption>\(svg)</figure>"
    }

    static func percentileChart(_ runs: [TargetRun], marker: SVGCharts.Marker? = nil) -> String {
        SVGCharts.percentiles(runs.map {
            SVGCharts.Series(name: $0.target.label, color: color($0.target), points: $0.result.percentileCurve, samples: $0.result.requests)
        }, marker: marker)
    }

    static func backendCalls(_ cases: [CaseReport], relative: Bool = false) -> String {
        SVGCharts.bars(cases.flatMap { c in
            c.runs.map { r in
                let share = Double(r.backendCalls) / Double(max(1, r.result.requests))
                return SVGCharts.Bar(group: cases.count > 1 ? c.name : nil, label: r.target.label, value: Double(r.backendCalls), color: color(r.target),
                                     text: relative ? "\(Format.count(r.backendCalls)) (\(Format.percent(share)))" : Format.count(r.backendCalls))
            }
        })
    }

    static func outcomes(_ runs: [TargetRun]) -> String {
        SVGCharts.stacked(runs.map { r in
            let res = r.result
            if res.cacheStatus.isEmpty {
                return SVGCharts.Stack(label: r.target.label, segments: [.init(name: "fetched", value: Double(res.requests), color: "#94a3b8")])
            }
            return SVGCharts.Stack(label: r.target.label, segments: [
                .init(name: "hit", value: Double(res.count(.hit)), color: green),
                .init(name: "stale", value: Double(res.count(.stale)), color: "#0d9488"),
                .init(name: "coalesced", value: Double(res.count(.collapsed)), color: "#65a30d"),
                .init(name: "fetched", value: Double(res.count(.stored) + res.count(.miss)), color: "#94a3b8"),
                .init(name: "passed", value: Double(res.count(.bypass)), color: amber),
            ])
        })
    }

    static func herdTable(_ rounds: [HerdRound], delay: Double) -> String {
        var t = "<table class=\"nums tight\"><thead><tr><th>target</th><th>round</th><th>calls</th><th>200s</th><th>p50</th><th>p99</th><th>p99 − delay</th></tr></thead><tbody>"
        for r in rounds {
            t += "<tr><td><i class=\"dot\" style=\"background:\(color(r.target))\"></i>\(r.target.rawValue)</td><td>\(r.round)</td><td>\(r.backendCalls)</td>"
                + "<td>\(r.ok)/\(r.answered)</td><td>\(Format.ms(r.p50Micros))</td><td>\(Format.ms(r.p99Micros))</td>"
                + "<td>\(esc(Format.deltaMs(r.p99Micros - delay)))</td></tr>"
        }
        return t + "</tbody></table>"
    }

    static func hitRoundsTable(_ r: HitRounds) -> String {
        var t = "<table class=\"nums tight\"><thead><tr><th>round</th><th>target</th><th>req/s</th><th>CPU s</th><th>CPU per answer</th><th>foreign CPU</th><th>gateway ÷ nginx</th></tr></thead><tbody>"
        for x in r.rounds {
            let pair = x.target == .nginx ? r.pairs.first { $0.round == x.round } : nil
            t += "<tr\(x.noisy ? " class=\"bad\"" : "")><td>\(x.round)</td><td><i class=\"dot\" style=\"background:\(color(x.target))\"></i>\(x.target.rawValue)</td>"
                + "<td>\(Format.rate(x.requestsPerSecond))</td><td>\(String(format: "%.2f", x.targetCPUSeconds))</td>"
                + "<td>\(x.cpuMicrosPerRequest.map(HitRounds.micros) ?? "–")</td><td>\(String(format: "%.2f", x.foreignCores))\(x.noisy ? " noisy" : "")</td>"
                + "<td>\(pair.map { "\(Format.ratio($0.ratio))\($0.quiet ? "" : " (noisy)")" } ?? "")</td></tr>"
        }
        var summary = [r.ratioText.map { "gateway ÷ nginx: \($0)" }].compactMap { $0 }
        summary += Target.allCases.compactMap(r.targetText)
        t += "</tbody></table>"
        return t + summary.map { "<p class=\"note\">\(esc($0))</p>" }.joined()
    }

    static func outageTable(_ rounds: [OutageRun]) -> String {
        func share(_ r: LoadOutcome) -> String { Format.percent(Double(r.ok) / Double(max(1, r.offered))) }
        var t = "<table class=\"nums tight\"><thead><tr><th>target</th><th>round</th><th>before</th><th>during</th><th>after</th><th>p99 during</th><th>backend calls</th><th>foreign CPU</th></tr></thead><tbody>"
        for r in rounds {
            t += "<tr><td><i class=\"dot\" style=\"background:\(color(r.target))\"></i>\(r.target.rawValue)</td><td>\(r.round)</td><td>\(share(r.before))</td>"
                + "<td>\(share(r.during))</td><td>\(share(r.after))</td><td>\(r.during.ms(\.p99))</td><td>\(r.backendCalls)</td><td>\(String(format: "%.2f", r.foreignCores))</td></tr>"
        }
        return t + "</tbody></table>"
    }

    /// The dark variant of a target's colour, for a part of its load picked out.
    static func darker(_ t: Target) -> String {
        switch t {
        case .direct: "#475569"
        case .gateway: "#1e3a8a"
        case .nginx: "#14532d"
        }
    }

    /// The pale variant of a target's colour, for its baseline next to it.
    static func lighter(_ t: Target) -> String {
        switch t {
        case .direct: "#cbd5e1"
        case .gateway: "#93c5fd"
        case .nginx: "#86efac"
        }
    }

    static func numbers(_ s: ScenarioReport) -> String {
        guard !s.cases.isEmpty else { return "" }
        var t = "<details><summary>The numbers</summary><table class=\"nums\"><thead><tr><th>case</th><th>target</th><th>answered</th><th>req/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th><th>timeouts</th><th>non-200</th><th>hit ratio</th><th>backend calls</th><th>foreign CPU</th></tr></thead><tbody>"
        for c in s.cases {
            for r in c.runs {
                let x = r.result
                t += "<tr><td>\(esc(c.name))</td><td><i class=\"dot\" style=\"background:\(color(r.target))\"></i>\(r.target.rawValue)</td>"
                    + "<td>\(Format.count(x.requests))</td><td>\(Format.rate(x.requestsPerSecond))</td><td>\(x.ms(\.p50))</td><td>\(x.ms(\.p90))</td>"
                    + "<td>\(x.ms(\.p99))</td><td>\(x.ms(\.p999))</td><td>\(x.ms(\.maxLatency))</td><td>\(x.errors)</td><td>\(x.timeouts)</td>"
                    + "<td>\(x.nonOK)</td><td>\(x.hitRatio.map(Format.percent) ?? "–")</td><td>\(Format.count(r.backendCalls))</td>"
                    + "<td>\(r.foreignCores.map { String(format: "%.2f", $0) } ?? "–")</td></tr>"
            }
        }
        return t + "</tbody></table></details>"
    }

    static var legend: String {
        "<div class=\"legend\">" + Target.allCases.map {
            "<span><i class=\"dot\" style=\"background:\(color($0))\"></i>\(esc($0.label))</span>"
        }.joined() + "</div>"
    }

    static func howToRead(_ s: Settings) -> String {
        """
        <section class="how"><h2>How to read this report</h2><dl>
        <dt>Targets</dt><dd>Every scenario runs the same load three ways: against the demo monolith directly (grey), through CacheGateway (blue)
        and through nginx proxy_cache with proxy_cache_lock on (green), each with a fresh backend and empty caches, the same TTLs and key rules,
        and \(s.workers) event loop\(s.workers == 1 ? "" : "s") / worker\(s.workers == 1 ? "" : "s"). They share this machine with the load generator, so compare
        the targets of one run (ratios), not absolute numbers across machines.</dd>
        <dt>Latency by percentile</dt><dd>A point at p99 and 5 ms means that 99 % of the requests were answered within 5 ms, and one in a
        hundred waited longer. Left is the typical request (p50), right the tail, each step to the right ten times rarer (p99, p99.9…).
        Where the values span decades the y axis is logarithmic (each main grid line ten times the one below); where they are close
        together (misses, a herd) it is linear, so that a millisecond shows.</dd>
        <dt>Closed and open loop</dt><dd><i>hit</i> and <i>miss</i> keep a fixed number of connections busy (closed loop): throughput is what the target
        can do. <i>users</i> and <i>shield</i> send requests at a fixed rate whatever the answers do (open loop), as real users do: latency is counted
        from the moment a request was due, so a queue shows.</dd>
        <dt>Stale answers and foreign CPU</dt><dd><i>expiry</i> and <i>outage</i> use a route with stale windows: an answer served past its TTL
        (<code>fwd=stale</code>, nginx STALE/UPDATING) counts as served from the cache. Foreign CPU is what other work on this shared machine used
        during the load, in cores: a busy machine flatters the gateway against nginx, so read a comparison next to it.</dd>
        <dt>Backend calls</dt><dd>Requests that reached the demo monolith while measuring, from its own counter (<code>/__stats</code>):
        what the cache did not save.</dd>
        <dt>Invariants and goals</dt><dd>Invariants are what must hold for the gateway to be correct (and the benchmark to be valid), e.g. one
        backend call per key in a herd: a broken one fails the run. Goals are performance targets: reported, never failing.</dd>
        </dl></section>
        """
    }

    static func dateLine(_ iso: String) -> String {
        let parser = ISO8601DateFormatter()
        guard let date = parser.date(from: iso) else { return iso }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd HH:mm zzz"
        return f.string(from: date)
    }

    static func esc(_ s: String) -> String { SVGCharts.esc(s) }

    static let css = """
        :root{--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc}
        *{box-sizing:border-box}
        body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}
        main{max-width:1240px;margin:0 auto;padding:28px 28px 60px}
        header{background:linear-gradient(135deg,#1e3a8a,#2563eb);color:#fff;border-radius:16px;padding:26px 30px;margin-bottom:18px}
        .brand{font-size:13px;letter-spacing:.08em;text-transform:uppercase;opacity:.8}
        h1{margin:4px 0 6px;font-size:28px;font-weight:700}
        .meta{margin:0 0 14px;opacity:.9;font-size:14px}
        .verdict{display:inline-block;padding:6px 14px;border-radius:999px;font-weight:700;font-size:15px}
        .verdict.ok{background:#dcfce7;color:#14532d}.verdict.bad{background:#fee2e2;color:#7f1d1d}
        ul.broken{background:#fff;color:#7f1d1d;border-radius:10px;padding:10px 10px 10px 30px;margin:12px 0 0;font-size:14px}
        .legend{display:flex;gap:22px;margin:4px 4px 14px;color:var(--muted);font-size:14px}
        .dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:7px;vertical-align:0}
        h2{font-size:21px;margin:0 0 4px;display:flex;align-items:center;gap:10px;flex-wrap:wrap}
        .sub,.summary{color:#374151;margin:0 0 14px;max-width:980px}
        .goals{margin-bottom:18px}
        .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:12px}
        .card{background:#fff;border:1px solid var(--line);border-left:5px solid #9ca3af;border-radius:12px;padding:12px 16px}
        .card.met{border-left-color:#16a34a}.card.missed{border-left-color:#dc2626}
        .cname{font-size:13px;color:var(--muted)}.cval{font-size:22px;font-weight:700;margin:2px 0 0}.cdet{font-size:12.5px;color:var(--muted)}.cgoal{margin-top:4px}.cgoal{font-size:13px;color:#374151}
        .badge{display:inline-block;font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.04em;padding:1px 8px;border-radius:999px;margin-left:6px}
        .badge.met{background:#dcfce7;color:#166534}.badge.missed{background:#fee2e2;color:#991b1b}.badge.na{background:#f3f4f6;color:#6b7280}
        nav{display:flex;gap:8px;flex-wrap:wrap;margin:0 0 18px}
        nav a{background:#fff;border:1px solid var(--line);border-radius:999px;padding:5px 14px;color:#1e3a8a;text-decoration:none;font-size:14px}
        section.scenario{background:#fff;border:1px solid var(--line);border-radius:16px;padding:22px 24px;margin-bottom:18px}
        .tag{font:12px ui-monospace,monospace;background:#eef2ff;color:#3730a3;padding:2px 8px;border-radius:6px}
        .pill{font-size:12px;font-weight:600;padding:2px 10px;border-radius:999px}
        .pill.ok{background:#dcfce7;color:#166534}.pill.bad{background:#fee2e2;color:#991b1b}
        .tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px;margin:6px 0 18px}
        .tile{background:var(--bg);border-radius:12px;padding:12px 16px;border:1px solid var(--line)}
        .tile.good{background:#f0fdf4;border-color:#bbf7d0}.tile.bad{background:#fef2f2;border-color:#fecaca}
        .tval{font-size:28px;font-weight:750;letter-spacing:-.01em;font-variant-numeric:tabular-nums}
        .tile.good .tval{color:#166534}.tile.bad .tval{color:#991b1b}
        .tcap{font-size:13.5px;font-weight:600;color:#374151}.tdet{font-size:12.5px;color:var(--muted)}
        .charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:22px 34px;align-items:start}
        figure{margin:0;min-width:0}
        figcaption{font-weight:650;font-size:15px;margin-bottom:6px}
        figcaption span{display:block;font-weight:400;font-size:12.5px;color:var(--muted)}
        figure svg{width:100%;height:auto;display:block}
        details{margin-top:14px}summary{cursor:pointer;color:#1e3a8a;font-weight:600;font-size:14px}
        table.nums{border-collapse:collapse;font-size:13px;margin-top:8px;font-variant-numeric:tabular-nums;width:100%}
        .nums th,.nums td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
        .nums th:first-child,.nums td:first-child,.nums th:nth-child(2),.nums td:nth-child(2){text-align:left}
        .nums th{color:var(--muted);font-weight:600}
        ul.checks{list-style:none;padding:0;margin:8px 0;font-size:13.5px}
        ul.checks li{padding:3px 0}ul.checks li.ok span{color:#16a34a;font-weight:700}ul.checks li.bad{color:#991b1b}ul.checks li.bad span{font-weight:700}
        tr.bad td{color:#991b1b;background:#fef2f2}p.note{font-size:13px;margin:6px 0 0}
        ul.notes{color:#92400e;background:#fffbeb;border:1px solid #fde68a;border-radius:10px;padding:8px 12px 8px 30px;font-size:13.5px}
        .how{background:#fff;border:1px solid var(--line);border-radius:16px;padding:22px 24px}
        dt{font-weight:650;margin-top:10px}dd{margin:2px 0 0;color:#374151}
        footer{color:var(--muted);font-size:13px;margin-top:18px}
        code{font:13px ui-monospace,monospace;background:#f3f4f6;padding:1px 5px;border-radius:4px}
        .empty{color:var(--muted)}
        .scroll{overflow-x:auto}.nums.tight th,.nums.tight td{padding:4px 7px}
        details .nums{display:block;overflow-x:auto}
        """
}

/// Writes `<out>/<timestamp>.json` and `.html`, and copies them to `latest.json` / `latest.html`.
enum ReportFiles {
    static func write(_ report: RunReport, folder: String, started: Date) throws -> (json: String, html: String) {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd'T'HH-mm-ss"
        let stamp = f.string(from: started)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try encoder.encode(report)
        let html = Data(HTMLReport.render(report).utf8)
        let jsonPath = "\(folder)/\(stamp).json", htmlPath = "\(folder)/\(stamp).html"
        try json.write(to: URL(fileURLWithPath: jsonPath))
        try html.write(to: URL(fileURLWithPath: htmlPath))
        try json.write(to: URL(fileURLWithPath: "\(folder)/latest.json"))
        try html.write(to: URL(fileURLWithPath: "\(folder)/latest.html"))
        return (jsonPath, htmlPath)
    }
}
