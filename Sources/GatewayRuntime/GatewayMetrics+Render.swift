import Dispatch
import GatewayCore
import GatewayHTTP

extension GatewayMetrics {
    /// The registry's text exposition after writing `scrape`'s values into it.
    func prometheusText(_ scrape: MetricsScrape) -> String {
        scrapeLock.withLock { _ in
            levels.apply(scrape)
            return registry.emitToString()
        }
    }

    /// The status page's JSON. The per-route numbers are read back from the registry's own
    /// exposition (swift-prometheus keeps its values private), so the page and `/metrics` can
    /// never disagree; every number is cumulative, the page computes rates from deltas.
    func statsJSON(_ scrape: MetricsScrape) -> String {
        let samples = ExpositionSamples(prometheusText(scrape))
        var routes: [String] = []
        for name in currentRouteNames + [Self.unroutedName] {
            let requests = CacheOutcome.allCases.map { outcome in
                let value = samples.value("cachegateway_requests_total", ["route": name, "outcome": outcome.rawValue])
                return "\"\(outcome.rawValue)\":\(Int(value ?? 0))"
            }
            let histogram = "cachegateway_request_duration_seconds"
            let counts = Self.latencyBuckets.map { le in
                Int(samples.value(histogram + "_bucket", ["route": name, "le": "\(le)"]) ?? 0)
            }
            let count = Int(samples.value(histogram + "_count", ["route": name]) ?? 0)
            let sum = samples.value(histogram + "_sum", ["route": name]) ?? 0
            routes.append(
                "{\"name\":\(JSON.string(name)),\"requests\":{\(requests.joined(separator: ","))},"
                    + "\"latency\":{\"le_seconds\":[\(Self.latencyBuckets.map { "\($0)" }.joined(separator: ","))],"
                    + "\"counts\":[\(counts.map(String.init).joined(separator: ","))],\"count\":\(count),\"sum_seconds\":\(sum)}}")
        }
        let uptime = Double(DispatchTime.now().uptimeNanoseconds &- startedAt) / 1e9
        let local = scrape.local
        let connectedLoops = scrape.loops.filter(\.redisConnected).count
        var stream = "null"
        if let s = scrape.stream {
            stream = "{\"applied\":\(s.applied),\"poison\":\(s.poison),\"retried\":\(s.retried),\"claimed\":\(s.claimed),"
                + "\"lag\":\(s.lag.map(String.init) ?? "null"),\"connected\":\(s.isConnected)}"
        }
        // Only for redis+sentinel://; master null while no Sentinel has named one.
        var sentinel = "null"
        if scrape.sentinel {
            sentinel = "{\"master\":\(scrape.redisMaster.map(JSON.string) ?? "null"),"
                + "\"master_switches\":\(masterSwitchCount.load(ordering: .relaxed))}"
        }
        var reload = "null"
        if let r = lastReload {
            reload = "{\"time_ms\":\(r.timeMilliseconds),\"ok\":\(r.ok),\"errors\":[\(r.errors.map(JSON.string).joined(separator: ","))]}"
        }
        return "{\"version\":\(JSON.string(GatewayRelease.version)),\"instance_id\":\(JSON.string(instanceID)),\"uptime_seconds\":\(uptime),"
            + "\"time_ms\":\(WallClock.nowMilliseconds()),\"totals\":\(scrape.statsJSON),"
            + "\"routes\":[\(routes.joined(separator: ","))],"
            + "\"in_flight_keys\":\(scrape.inFlightKeys),\"uncacheable_keys\":\(scrape.uncacheableKeys),"
            + "\"open_connections\":\(scrape.openConnections),"
            + "\"upstream\":{\"in_flight\":\(scrape.upstreamRunning),\"queued\":\(scrape.upstreamQueued),\"max_connections\":\(scrape.upstreamLimit)},"
            + "\"redis\":{\"loops\":\(scrape.loops.count),\"connected_loops\":\(connectedLoops),\"errors\":\(scrape.stats.redisErrors)},"
            + "\"sentinel\":\(sentinel),"
            + "\"local_tier\":{\"hits\":\(local.hits),\"entries\":\(local.entries),\"bytes\":\(local.bytes),\"evictions\":\(local.evictions)},"
            + "\"stream\":\(stream),\"last_reload\":\(reload)}"
    }
}

/// The samples of a text exposition, by metric name and label set: what the status page reads
/// back from the registry. Lenient: lines it cannot read are skipped (the registry writes them).
struct ExpositionSamples {
    private var values: [String: [(labels: [String: String], value: Double)]] = [:]

    init(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else {
                values[String(series), default: []].append(([:], value))
                continue
            }
            guard let labels = Self.labels(series[series.index(after: brace)...].dropLast()) else { continue }
            values[String(series[..<brace]), default: []].append((labels, value))
        }
    }

    /// The value of the sample of `name` whose labels are exactly `labels`.
    func value(_ name: String, _ labels: [String: String]) -> Double? {
        values[name]?.first { $0.labels == labels }?.value
    }

    /// `a="x",b="y\"z"` (without the braces), unescaping `\\`, `\"` and `\n`.
    private static func labels(_ text: Substring) -> [String: String]? {
        var result: [String: String] = [:]
        var rest = text[...]
        while !rest.isEmpty {
            guard let equals = rest.firstIndex(of: "="), rest[rest.index(after: equals)...].first == "\"" else { return nil }
            let name = String(rest[..<equals])
            var value = ""
            var index = rest.index(equals, offsetBy: 2)
            var closed = false
            while index < rest.endIndex {
                let c = rest[index]
                index = rest.index(after: index)
                if c == "\"" { closed = true; break }
                if c == "\\", index < rest.endIndex {
                    value.append(rest[index] == "n" ? "\n" : rest[index])
                    index = rest.index(after: index)
                } else {
                    value.append(c)
                }
            }
            guard closed else { return nil }
            result[name] = value
            rest = rest[index...]
            if rest.first == "," { rest = rest.dropFirst() }
        }
        return result
    }
}

/// JSON text for values the gateway writes by hand.
enum JSON {
    /// `value` as a JSON string literal, escaped as the access log escapes it.
    static func string(_ value: String) -> String {
        var out: [UInt8] = []
        LogText.appendJSONString(value.utf8, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
