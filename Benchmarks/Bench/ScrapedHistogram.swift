/// One histogram series from the gateway's own Prometheus text (the admin listener's `/metrics`), to report
/// beside what the load generator measured (the herd's coalesced wait, say).
struct ScrapedHistogram: Equatable {
    /// Upper bounds in seconds and cumulative counts, in order; the last bound is `+Inf`.
    var buckets: [(le: Double, count: Double)]
    var count: Double { buckets.last?.count ?? 0 }

    static func == (a: Self, b: Self) -> Bool { a.buckets.map(\.le) == b.buckets.map(\.le) && a.buckets.map(\.count) == b.buckets.map(\.count) }

    /// The `<name>_bucket` lines whose labels include `labels` (other labels are ignored); nil when
    /// there are none.
    init?(_ text: String, name: String, labels: [String: String]) {
        let wanted = labels.map { "\($0.key)=\"\($0.value)\"" }
        var found: [(le: Double, count: Double)] = []
        for line in text.split(separator: "\n") where line.hasPrefix(name + "_bucket{") {
            guard let close = line.lastIndex(of: "}"), let count = Double(line[line.index(after: close)...].drop { $0 == " " }) else { continue }
            let labelText = line[line.index(line.startIndex, offsetBy: name.count + 8)..<close]
            let pairs = labelText.split(separator: ",").map(String.init)
            guard wanted.allSatisfy(pairs.contains),
                  let le = pairs.first(where: { $0.hasPrefix("le=\"") })?.dropFirst(4).dropLast() else { continue }
            found.append((le == "+Inf" ? .infinity : Double(le) ?? .nan, count))
        }
        guard !found.isEmpty else { return nil }
        buckets = found.sorted { $0.le < $1.le }
    }

    /// The `q` quantile in seconds as Prometheus' `histogram_quantile` estimates it: linear within
    /// the bucket it falls in; the last finite bound when it falls in `+Inf`; nil when empty.
    func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = q * count
        var lower = 0.0, below = 0.0
        for bucket in buckets {
            if bucket.count >= rank {
                guard bucket.le.isFinite else { return lower }
                let inBucket = bucket.count - below
                return inBucket > 0 ? lower + (bucket.le - lower) * (rank - below) / inBucket : bucket.le
            }
            lower = bucket.le.isFinite ? bucket.le : lower
            below = bucket.count
        }
        return lower
    }

    /// The bounds of the bucket the `q` quantile falls in (lower exclusive), nil when empty: all
    /// that the histogram really knows.
    func bucket(containing q: Double) -> (lower: Double, upper: Double)? {
        guard count > 0 else { return nil }
        var lower = 0.0
        for bucket in buckets {
            if bucket.count >= q * count { return (lower, bucket.le) }
            lower = bucket.le
        }
        return nil
    }
}
