import GatewayHTTP

/// Conditional GET/HEAD answered from a stored entry (RFC 9110 §13): a client that already holds
/// the representation gets a 304 instead of the body again.
public enum Conditional {
    /// Whether `request`'s conditions say the client's copy of `entry` is current.
    /// `If-None-Match` wins over `If-Modified-Since` (§13.2.2); only a 200 is compared.
    public static func notModified(_ request: HTTPHeaders, entry: CachedResponse) -> Bool {
        guard entry.status == 200 else { return false }
        if let condition = request["If-None-Match"] {
            guard let etag = entry.headers["ETag"] else { return false }
            return matches(ifNoneMatch: condition, etag: etag)
        }
        if let since = request["If-Modified-Since"], let modified = entry.headers["Last-Modified"],
            let sinceSeconds = HTTPDate.parse(since), let modifiedSeconds = HTTPDate.parse(modified)
        {
            return modifiedSeconds <= sinceSeconds
        }
        return false
    }

    /// If-None-Match uses the weak comparison (RFC 9110 §13.1.2): `W/` is ignored on both sides.
    public static func matches(ifNoneMatch condition: String, etag: String) -> Bool {
        func opaque<S: StringProtocol>(_ tag: S) -> Substring {
            let t = tag.trimmingSpaces()
            return t.hasPrefix("W/") ? Substring(t.dropFirst(2)) : Substring(t)
        }
        let stored = opaque(etag)
        return condition.split(separator: ",").contains { candidate in
            let c = candidate.trimmingSpaces()
            return c == "*" || opaque(c) == stored
        }
    }
}

/// HTTP dates in the preferred format, IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110
/// §5.6.7). The obsolete formats are not read: a condition the gateway cannot read is ignored,
/// and the full response is sent.
public enum HTTPDate {
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since 1970, or nil.
    public static func parse(_ text: String) -> Int64? {
        let parts = text.trimmingSpaces().split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0].count == 4, parts[0].hasSuffix(","), parts[5] == "GMT",
            parts[1].count == 2, let day = Int(parts[1]), (1...31).contains(day),
            let monthIndex = months.firstIndex(of: String(parts[2])),
            parts[3].count == 4, let year = Int(parts[3]), year >= 1970
        else { return nil }
        let clock = parts[4].split(separator: ":", omittingEmptySubsequences: false)
        guard clock.count == 3, clock.allSatisfy({ $0.count == 2 }),
            let hour = Int(clock[0]), let minute = Int(clock[1]), let second = Int(clock[2]),
            hour < 24, minute < 60, second < 61
        else { return nil }
        let days = daysFromCivil(year: year, month: monthIndex + 1, day: day)
        return Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
