import Foundation

/// How numbers are written in the table and the report.
enum Format {
    /// 12,345
    static func count(_ n: Int) -> String {
        let digits = String(abs(n))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// Requests per second: 38,120 or 12.5
    static func rate(_ r: Double) -> String { r >= 100 ? count(Int(r.rounded())) : String(format: "%.1f", r) }

    /// Microseconds as milliseconds, with the precision that matters at that size.
    static func ms(_ micros: Double) -> String {
        let m = micros / 1000
        if m >= 1000 { return String(format: "%.2f s", m / 1000) }
        if m >= 100 { return String(format: "%.0f ms", m) }
        if m >= 10 { return String(format: "%.1f ms", m) }
        return String(format: "%.2f ms", m)
    }

    /// A signed difference in milliseconds: +0.42 ms
    static func deltaMs(_ micros: Double) -> String {
        (micros >= 0 ? "+" : "−") + ms(abs(micros))
    }

    static func ratio(_ r: Double) -> String {
        if r >= 100 { return String(format: "%.0f×", r) }
        if r >= 10 { return String(format: "%.1f×", r) }
        return String(format: "%.2f×", r)
    }

    static func percent(_ f: Double) -> String {
        let p = f * 100
        if p >= 99.95 && p < 100 { return String(format: "%.2f %%", p) }
        return String(format: "%.1f %%", p)
    }

    static func mib(_ kib: Int) -> String { String(format: "%.1f MiB", Double(kib) / 1024) }

    static func seconds(_ s: Double) -> String { s == s.rounded() ? "\(Int(s)) s" : String(format: "%.1f s", s) }
}
