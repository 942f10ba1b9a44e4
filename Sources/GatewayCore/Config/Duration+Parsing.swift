// Durations and byte sizes as written in gateway.yaml: "250ms", "30s", "5m", "1h"; "4096", "16KiB", "1MiB".

extension Duration {
    /// Parses a configuration duration: an optional `-`, decimal digits, then one of the units
    /// `ms`, `s`, `m` or `h` (`250ms`, `30s`, `5m`, `1h`).
    ///
    /// No spaces, no fractions, no compound forms (`1m30s`), no unit-less numbers: a bare `30`
    /// is rejected because it does not say whether it means seconds or milliseconds.
    /// A negative value parses (so the caller can say "must be greater than 0"); values that do
    /// not fit in 64-bit milliseconds do not.
    ///
    /// - Parameter configString: the text as written in the file.
    /// - Returns: the duration, or nil when the text is not in this format.
    public init?(configString text: String) {
        var digits = Substring(text)
        var negative = false
        if digits.first == "-" {
            negative = true
            digits = digits.dropFirst()
        }
        let unitStart = digits.firstIndex { !$0.isASCII || !$0.isNumber } ?? digits.endIndex
        let number = digits[..<unitStart]
        let unit = digits[unitStart...]
        guard !number.isEmpty, number.count <= 18, let value = Int64(number) else { return nil }
        let perUnit: Int64
        switch unit {
        case "ms": perUnit = 1
        case "s": perUnit = 1_000
        case "m": perUnit = 60_000
        case "h": perUnit = 3_600_000
        default: return nil
        }
        let (millis, overflow) = value.multipliedReportingOverflow(by: perUnit)
        guard !overflow else { return nil }
        self = .milliseconds(negative ? -millis : millis)
    }

    /// The duration in whole milliseconds, rounded toward zero (for Redis `PX`, curl timeouts,
    /// Dispatch deadlines). Durations from the configuration are always whole milliseconds.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }

    /// The shortest configuration spelling of this duration: `1h`, `5m`, `30s`, `250ms`
    /// (`90s` rather than `1m30s`, since compound forms are not part of the format).
    public var configString: String {
        let ms = wholeMilliseconds
        if ms != 0 && ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms != 0 && ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1_000 == 0 { return "\(ms / 1_000)s" }
        return "\(ms)ms"
    }
}

/// Byte sizes as written in the configuration.
public enum ByteSize {
    /// Parses a size: a plain number of bytes (`4096`), or a number followed by `B`, `KiB`,
    /// `MiB` or `GiB` (binary units: `16KiB` = 16384). Decimal units (`KB`, `MB`) are rejected
    /// on purpose: their meaning varies between tools.
    ///
    /// - Returns: the size in bytes, or nil when the text is not in this format or overflows.
    public static func parse(_ text: String) -> Int? {
        let unitStart = text.firstIndex { !$0.isASCII || !$0.isNumber } ?? text.endIndex
        let number = text[..<unitStart]
        guard !number.isEmpty, number.count <= 18, let value = Int(number) else { return nil }
        let multiplier: Int
        switch text[unitStart...] {
        case "", "B": multiplier = 1
        case "KiB": multiplier = 1 << 10
        case "MiB": multiplier = 1 << 20
        case "GiB": multiplier = 1 << 30
        default: return nil
        }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }

    /// The shortest exact spelling of a size: `1GiB`, `8MiB`, `16KiB`, or bytes with `B` (`1000B`).
    public static func format(_ bytes: Int) -> String {
        if bytes != 0 && bytes % (1 << 30) == 0 { return "\(bytes >> 30)GiB" }
        if bytes != 0 && bytes % (1 << 20) == 0 { return "\(bytes >> 20)MiB" }
        if bytes != 0 && bytes % (1 << 10) == 0 { return "\(bytes >> 10)KiB" }
        return "\(bytes)B"
    }
}
