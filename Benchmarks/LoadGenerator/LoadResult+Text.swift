extension LoadResult {
    /// The result as a small table for a terminal, e.g.:
    ///
    /// ```
    /// requests       61,032 in 5.00 s = 12,203 req/s
    /// errors         0   timeouts 0   reconnects 0   connections 64
    /// statuses       200 × 61,032
    /// cache-status   CacheGateway; hit × 61,032 (100.0 %)
    /// body bytes     62.5 MB
    /// latency ms        min      p50      p90      p99    p99.9      max     mean
    ///                 0.061    4.980    5.430    6.110    9.020   11.300    5.210
    /// ```
    public var summary: String {
        var lines: [String] = []
        lines.append("requests       \(NumberText.grouped(requests)) in \(NumberText.fixed(elapsedSeconds, 2)) s = \(NumberText.grouped(Int(requestsPerSecond.rounded()))) req/s")
        var errorLine = "errors         \(NumberText.grouped(errors))"
        if !errorKinds.isEmpty {
            errorLine += " (" + errorKinds.sorted { $0.key < $1.key }.map { "\($0.key) \(NumberText.grouped($0.value))" }.joined(separator: ", ") + ")"
        }
        errorLine += "   timeouts \(NumberText.grouped(timeouts))   reconnects \(NumberText.grouped(reconnects))   connections \(NumberText.grouped(connectionsOpened))"
        lines.append(errorLine)
        if let firstError { lines.append("first error    \(firstError)") }
        let statusText = statuses.sorted { $0.key < $1.key }.map { "\($0.key) × \(NumberText.grouped($0.value))" }.joined(separator: "   ")
        lines.append("statuses       " + (statusText.isEmpty ? "-" : statusText))
        let byCount = cacheStatus.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        for (i, entry) in byCount.enumerated() {
            let share = requests > 0 ? 100 * Double(entry.value) / Double(requests) : 0
            lines.append((i == 0 ? "cache-status   " : "               ") + "\(entry.key) × \(NumberText.grouped(entry.value)) (\(NumberText.fixed(share, 1)) %)")
        }
        lines.append("body bytes     \(NumberText.bytes(bytes))")
        let l = latency
        let values = [l.min, l.p50, l.p90, l.p99, l.p999, l.max].map { NumberText.fixed(Double($0) / 1000, 3) } + [NumberText.fixed(l.mean / 1000, 3)]
        lines.append("latency ms   " + ["min", "p50", "p90", "p99", "p99.9", "max", "mean"].map { Self.pad($0, 9) }.joined())
        lines.append("             " + values.map { Self.pad($0, 9) }.joined())
        return lines.joined(separator: "\n")
    }

    private static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? " " + s : String(repeating: " ", count: width - s.count) + s
    }
}

/// Number formatting for reports, without Foundation.
public enum NumberText {
    /// `1234567` → `1,234,567`.
    public static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return n < 0 ? "-" + out : out
    }

    /// `value` with `decimals` digits after the point (no Foundation `String(format:)`).
    public static func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int((abs(value) * scale).rounded())
        let whole = scaled / Int(scale)
        var text = (value < 0 && scaled != 0 ? "-" : "") + String(whole)
        if decimals > 0 {
            let frac = String(scaled % Int(scale))
            text += "." + String(repeating: "0", count: decimals - frac.count) + frac
        }
        return text
    }

    /// Decimal units: `12.3 MB`.
    public static func bytes(_ n: Int) -> String {
        if n < 1_000 { return "\(n) B" }
        if n < 1_000_000 { return "\(fixed(Double(n) / 1e3, 1)) kB" }
        if n < 1_000_000_000 { return "\(fixed(Double(n) / 1e6, 1)) MB" }
        return "\(fixed(Double(n) / 1e9, 2)) GB"
    }
}
