import Foundation

/// Small inline SVG charts for the HTML report: no script, no external file.
enum SVGCharts {
    static let font = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif\""

    struct Bar {
        var group: String? = nil
        var label: String
        var value: Double
        var color: String
        var text: String
    }

    struct Marker {
        var value: Double
        var label: String
        var color = "#b91c1c"
        /// Where the label sits: "middle" (centred on the line), "end" (left of it), "start" (right of it).
        var anchor = "middle"
    }

    /// Horizontal bars, one per row, grouped under optional headings; value text after each bar.
    static func bars(_ rows: [Bar], width: Int = 560, log: Bool = false, markers: [Marker] = [], minLog: Double = 1) -> String {
        let labelWidth = 140.0, textWidth = 120.0, rowHeight = 24.0, groupHeight = 22.0
        let plotWidth = Double(width) - labelWidth - textWidth
        let maxValue = max(rows.map(\.value).max() ?? 1, markers.map(\.value).max() ?? 0, log ? minLog * 2 : 1e-9)
        func x(_ v: Double) -> Double {
            if log {
                let lo = Foundation.log10(minLog / 2), hi = Foundation.log10(maxValue * 1.05)
                return labelWidth + plotWidth * max(0, (Foundation.log10(max(v, minLog / 2)) - lo) / (hi - lo))
            }
            return labelWidth + plotWidth * v / (maxValue * 1.05)
        }
        var y = markers.isEmpty ? 4.0 : 18.0
        var body = ""
        var lastGroup: String? = nil
        for row in rows {
            if let g = row.group, g != lastGroup {
                body += "<text x=\"0\" y=\"\(f(y + 15))\" class=\"grp\">\(esc(g))</text>"
                y += groupHeight
                lastGroup = g
            }
            let w = max(2, x(row.value) - labelWidth)
            body += "<text x=\"\(f(labelWidth - 8))\" y=\"\(f(y + 16))\" text-anchor=\"end\" class=\"lbl\">\(esc(row.label))</text>"
            body += "<rect x=\"\(f(labelWidth))\" y=\"\(f(y + 3))\" width=\"\(f(w))\" height=\"\(f(rowHeight - 6))\" rx=\"3\" fill=\"\(row.color)\"/>"
            body += "<text x=\"\(f(labelWidth + w + 6))\" y=\"\(f(y + 16))\" class=\"val\">\(esc(row.text))</text>"
            y += rowHeight
        }
        var overlay = ""
        for m in markers {
            let mx = x(m.value)
            overlay += "<line x1=\"\(f(mx))\" x2=\"\(f(mx))\" y1=\"14\" y2=\"\(f(y))\" stroke=\"\(m.color)\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>"
            let dx = m.anchor == "end" ? -4.0 : m.anchor == "start" ? 4.0 : 0
            overlay += "<text x=\"\(f(mx + dx))\" y=\"10\" text-anchor=\"\(m.anchor)\" class=\"mark\" fill=\"\(m.color)\">\(esc(m.label))</text>"
        }
        let height = y + 4
        return "<svg viewBox=\"0 0 \(width) \(f(height))\" width=\"\(width)\" height=\"\(f(height))\" \(font) role=\"img\">\(style)\(body)\(overlay)</svg>"
    }

    struct Series {
        var name: String
        var color: String
        /// (percentile 0–100, µs)
        var points: [(percentile: Double, micros: Double)]
        /// Answers the points come from: the curve stops where the tail has no more samples.
        var samples: Int
    }

    /// Latency by percentile: x in "nines" (p90, p99, p99.9…), y logarithmic. The classic way to see a tail.
    static func percentiles(_ series: [Series], width: Int = 560, height: Int = 300, marker: Marker? = nil) -> String {
        let left = 62.0, right = 30.0, top = 30.0, bottom = 34.0
        let pw = Double(width) - left - right, ph = Double(height) - top - bottom
        let usable = series.filter { $0.samples > 0 && !$0.points.isEmpty }
        guard !usable.isEmpty else { return "<p class=\"empty\">no answers to chart</p>" }
        let maxNines = min(5.0, max(2.0, floor(log10(Double(usable.map(\.samples).max()!)))))
        let all = usable.flatMap { $0.points.map(\.micros) }.filter { $0 > 0 } + (marker.map { [$0.value] } ?? [])
        let minV = max(1, all.min() ?? 1), maxV = max(2, all.max() ?? 10)
        // Values within a factor of 3 of each other (every request a miss, a herd): a linear axis
        // shows the differences; otherwise a logarithmic one, a grid line per decade.
        let linear = maxV / minV < 3
        var lo: Double, hi: Double
        var ticks: [Double] = [], faint: [Double] = []
        if linear {
            let step = niceStep((maxV - minV) / 5)
            lo = max(0, floor(minV / step) * step - step)
            hi = ceil(maxV / step) * step + step
            var t = lo
            while t <= hi + step / 2 { ticks.append(t); t += step }
        } else {
            lo = floor(log10(minV)); hi = max(lo + 1, ceil(log10(maxV * 1.1)))
            var d = lo
            while d <= hi {
                ticks.append(pow(10, d))
                if d < hi { faint += [2 * pow(10, d), 5 * pow(10, d)] }
                d += 1
            }
        }
        func nines(_ p: Double) -> Double { p >= 100 ? maxNines : min(maxNines, -log10(1 - p / 100)) }
        func x(_ n: Double) -> Double { left + pw * n / maxNines }
        func y(_ us: Double) -> Double {
            linear ? top + ph * (1 - (us - lo) / (hi - lo)) : top + ph * (1 - (log10(max(us, 1)) - lo) / (hi - lo))
        }
        var s = ""
        for v in faint {
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" class=\"grid2\"/>"
        }
        for v in ticks {
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" class=\"grid\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\" class=\"tick\">\(esc(tickLabel(v)))</text>"
        }
        let labels = ["p0", "p90", "p99", "p99.9", "p99.99", "p99.999"]
        for n in 0...Int(maxNines) {
            s += "<line x1=\"\(f(x(Double(n))))\" x2=\"\(f(x(Double(n))))\" y1=\"\(f(top))\" y2=\"\(f(top + ph))\" class=\"grid\"/>"
            s += "<text x=\"\(f(x(Double(n))))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\" class=\"tick\">\(labels[n])</text>"
        }
        s += "<text x=\"\(f(x(nines(50))))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\" class=\"tick\">p50</text>"
        s += "<line x1=\"\(f(x(nines(50))))\" x2=\"\(f(x(nines(50))))\" y1=\"\(f(top))\" y2=\"\(f(top + ph))\" class=\"grid2\"/>"
        s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(Double(height) - 3))\" text-anchor=\"middle\" class=\"axis\">percentile of answers (log scale of the tail)</text>"
        if let m = marker {
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(y(m.value)))\" y2=\"\(f(y(m.value)))\" stroke=\"\(m.color)\" stroke-width=\"1.5\" stroke-dasharray=\"5 4\"/>"
            // Below the line, at the right: the curves start at the left, and rise above it.
            s += "<text x=\"\(f(left + pw - 6))\" y=\"\(f(y(m.value) + 14))\" text-anchor=\"end\" class=\"mark\" fill=\"\(m.color)\">\(esc(m.label))</text>"
        }
        for series in usable {
            let limit = min(maxNines, log10(Double(series.samples)))
            let pts = series.points.filter { nines($0.percentile) <= limit + 1e-9 }
            // One point per 1.5 px is all a line needs (keeps the report small).
            var kept: [(Double, Double)] = []
            for (k, p) in pts.enumerated() {
                let px = x(nines(p.percentile)), py = y(p.micros)
                if let last = kept.last, k != pts.count - 1, px - last.0 < 1.5, abs(py - last.1) < 1.5 { continue }
                kept.append((px, py))
            }
            let coords = kept.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " ")
            s += "<polyline points=\"\(coords)\" fill=\"none\" stroke=\"\(series.color)\" stroke-width=\"2.5\" stroke-linejoin=\"round\"/>"
            if let last = pts.last {
                s += "<circle cx=\"\(f(x(nines(last.percentile))))\" cy=\"\(f(y(last.micros)))\" r=\"3\" fill=\"\(series.color)\"/>"
            }
        }
        // Legend.
        var lx = left
        for series in usable {
            s += "<rect x=\"\(f(lx))\" y=\"8\" width=\"14\" height=\"4\" rx=\"2\" fill=\"\(series.color)\"/>"
            s += "<text x=\"\(f(lx + 19))\" y=\"14\" class=\"lbl\">\(esc(series.name))</text>"
            lx += 40 + Double(series.name.count) * 7.4
        }
        return "<svg viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\" \(font) role=\"img\">\(style)\(s)</svg>"
    }

    struct Segment {
        var name: String
        var value: Double
        var color: String
    }

    struct Stack {
        var label: String
        var segments: [Segment]
    }

    /// One 100 % bar per row, split into segments (labelled inside when wide enough), with a legend.
    static func stacked(_ rows: [Stack], width: Int = 560) -> String {
        let labelWidth = 140.0, rowHeight = 30.0
        let pw = Double(width) - labelWidth - 8
        var s = ""
        var y = 26.0
        var legend: [(String, String)] = []
        for row in rows {
            let total = max(row.segments.map(\.value).reduce(0, +), 1e-9)
            var x = labelWidth
            s += "<text x=\"\(f(labelWidth - 8))\" y=\"\(f(y + 19))\" text-anchor=\"end\" class=\"lbl\">\(esc(row.label))</text>"
            for seg in row.segments where seg.value > 0 {
                let w = pw * seg.value / total
                s += "<rect x=\"\(f(x))\" y=\"\(f(y + 4))\" width=\"\(f(w))\" height=\"\(f(rowHeight - 8))\" fill=\"\(seg.color)\"><title>\(esc(seg.name)): \(Format.percent(seg.value / total))</title></rect>"
                if w > 44 {
                    s += "<text x=\"\(f(x + w / 2))\" y=\"\(f(y + 19))\" text-anchor=\"middle\" class=\"inbar\">\(esc(Format.percent(seg.value / total)))</text>"
                }
                x += w
            }
            for seg in row.segments where seg.value > 0 && !legend.contains(where: { $0.0 == seg.name }) { legend.append((seg.name, seg.color)) }
            y += rowHeight
        }
        // Legend in the order of the row with the most segments (hit, coalesced, fetched…).
        let order = rows.max { $0.segments.count < $1.segments.count }?.segments.map(\.name) ?? []
        legend.sort { (order.firstIndex(of: $0.0) ?? 99) < (order.firstIndex(of: $1.0) ?? 99) }
        var lx = labelWidth
        for (name, color) in legend {
            s += "<rect x=\"\(f(lx))\" y=\"6\" width=\"11\" height=\"11\" rx=\"2\" fill=\"\(color)\"/>"
            s += "<text x=\"\(f(lx + 15))\" y=\"15\" class=\"tick\">\(esc(name))</text>"
            lx += 28 + Double(name.count) * 6.4
        }
        let height = y + 4
        return "<svg viewBox=\"0 0 \(width) \(f(height))\" width=\"\(width)\" height=\"\(f(height))\" \(font) role=\"img\">\(style)\(s)</svg>"
    }

    /// A line over time from 0, e.g. resident memory: y from 0 so that "flat" looks flat.
    static func line(_ points: [(x: Double, y: Double)], color: String, yLabel: (Double) -> String, xLabel: String,
                     width: Int = 560, height: Int = 220) -> String {
        guard let maxX = points.map(\.x).max(), let maxY = points.map(\.y).max(), maxX > 0, maxY > 0 else {
            return "<p class=\"empty\">no samples</p>"
        }
        let left = 70.0, right = 16.0, top = 12.0, bottom = 34.0
        let pw = Double(width) - left - right, ph = Double(height) - top - bottom
        let yMax = maxY * 1.25
        func x(_ v: Double) -> Double { left + pw * v / maxX }
        func y(_ v: Double) -> Double { top + ph * (1 - v / yMax) }
        var s = ""
        for i in 0...4 {
            let v = yMax * Double(i) / 4
            s += "<line x1=\"\(f(left))\" x2=\"\(f(left + pw))\" y1=\"\(f(y(v)))\" y2=\"\(f(y(v)))\" class=\"grid\"/>"
            s += "<text x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\" class=\"tick\">\(esc(yLabel(v)))</text>"
        }
        for i in 0...4 {
            let v = maxX * Double(i) / 4
            s += "<text x=\"\(f(x(v)))\" y=\"\(f(top + ph + 16))\" text-anchor=\"middle\" class=\"tick\">\(esc(Format.seconds((v * 10).rounded() / 10)))</text>"
        }
        s += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(Double(height) - 3))\" text-anchor=\"middle\" class=\"axis\">\(esc(xLabel))</text>"
        let area = "\(f(x(points.first!.x))),\(f(y(0))) " + points.map { "\(f(x($0.x))),\(f(y($0.y)))" }.joined(separator: " ")
            + " \(f(x(points.last!.x))),\(f(y(0)))"
        s += "<polygon points=\"\(area)\" fill=\"\(color)\" fill-opacity=\"0.12\"/>"
        s += "<polyline points=\"\(points.map { "\(f(x($0.x))),\(f(y($0.y)))" }.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2.5\"/>"
        return "<svg viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\" \(font) role=\"img\">\(style)\(s)</svg>"
    }

    /// 1, 2 or 5 times a power of ten, near `raw`.
    static func niceStep(_ raw: Double) -> Double {
        let p = pow(10, floor(log10(max(raw, 1e-9))))
        let m = raw / p
        return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p
    }

    /// Axis labels for microseconds: "100 µs", "1 ms", "2.5 ms", "1 s".
    static func tickLabel(_ micros: Double) -> String {
        func trim(_ v: Double) -> String {
            let s = String(format: "%.2f", v)
            return s.replacingOccurrences(of: "\\.?0+$", with: "", options: .regularExpression)
        }
        if micros >= 1_000_000 { return "\(trim(micros / 1_000_000)) s" }
        if micros >= 1000 || micros == 0 { return "\(trim(micros / 1000)) ms" }
        return "\(trim(micros)) µs"
    }

    private static let style = """
        <style>.lbl{font-size:12.5px;fill:#1f2937}.val{font-size:12px;fill:#374151;font-variant-numeric:tabular-nums}\
        .grp{font-size:12px;font-weight:600;fill:#6b7280}.tick{font-size:11px;fill:#6b7280}.axis{font-size:11px;fill:#9ca3af}\
        .mark{font-size:11px;font-weight:600}.inbar{font-size:11px;fill:#fff;font-weight:600}\
        .grid{stroke:#e5e7eb;stroke-width:1}.grid2{stroke:#f3f4f6;stroke-width:1}</style>
        """

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
