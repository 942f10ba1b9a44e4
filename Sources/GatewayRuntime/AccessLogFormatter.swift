import GatewayCore
import GatewayHTTP

/// Turns request records into access log lines (`access_log.format`), appending to a reused
/// buffer. One per event loop: it caches the current second's calendar text.
struct AccessLogFormatter: Sendable {
    let format: GatewayConfig.AccessLog.Format
    let query: GatewayConfig.AccessLog.Query
    private var clock = LogText.Clock()
    private var scratch: [UInt8] = []

    init(format: GatewayConfig.AccessLog.Format, query: GatewayConfig.AccessLog.Query) {
        self.format = format
        self.query = query
        scratch.reserveCapacity(512)
    }

    /// Appends one line, newline included.
    mutating func append(_ r: RequestRecord, to out: inout [UInt8]) {
        scratch.removeAll(keepingCapacity: true)
        LogText.appendTarget(r.target, query: query, to: &scratch)
        switch format {
        case .json: appendFields(r, json: true, to: &out)
        case .logfmt: appendFields(r, json: false, to: &out)
        case .combined: appendCombined(r, to: &out)
        }
        out.append(UInt8(ascii: "\n"))
    }

    /// JSON and logfmt: the same fields in the same order. Timings absent from the record
    /// (no upstream call, no Redis, no wait) are left out.
    private mutating func appendFields(_ r: RequestRecord, json: Bool, to out: inout [UInt8]) {
        var line = LogText.FieldWriter(json: json)
        line.key("time", to: &out)
        line.raw(quoted: true, to: &out) { clock.appendRFC3339(milliseconds: r.startedAt, to: &$0) }
        line.key("client", to: &out)
        line.string(r.client.host, to: &out)
        line.key("method", to: &out)
        line.string(r.method, to: &out)
        line.key("path", to: &out)
        line.string(scratch, to: &out)
        line.key("status", to: &out)
        LogText.appendDecimal(r.status, to: &out)
        line.key("bytes", to: &out)
        LogText.appendDecimal(r.bodyBytes, to: &out)
        line.key("duration_ms", to: &out)
        LogText.appendMilliseconds(nanoseconds: r.durationNanoseconds, to: &out)
        line.key("route", to: &out)
        line.string(r.route, to: &out)
        line.key("outcome", to: &out)
        line.string(r.outcome.rawValue, to: &out)
        line.key("cache_status", to: &out)
        line.string(r.cacheStatus?.description, to: &out)
        if let ns = r.upstreamNanoseconds {
            line.key("upstream_ms", to: &out)
            LogText.appendMilliseconds(nanoseconds: ns, to: &out)
        }
        if let ns = r.redisNanoseconds {
            line.key("redis_ms", to: &out)
            LogText.appendMilliseconds(nanoseconds: ns, to: &out)
        }
        if let ns = r.waitNanoseconds {
            line.key("wait_ms", to: &out)
            LogText.appendMilliseconds(nanoseconds: ns, to: &out)
        }
        line.key("request_id", to: &out)
        line.string(r.requestID, to: &out)
        line.end(to: &out)
    }

    /// nginx's `combined` (`$remote_addr - $remote_user [$time_local] "$request" $status
    /// $body_bytes_sent "$http_referer" "$http_user_agent"`), referer and user agent always `-`
    /// (records hold no header values), then the fields nginx users append: `rt` (request time,
    /// seconds), `urt` (upstream time; nginx's `$upstream_response_time`), `rdt` (Redis time),
    /// `wt` (collapsed wait), `cs` (Cache-Status), `rid`, `route`, `outcome`.
    private mutating func appendCombined(_ r: RequestRecord, to out: inout [UInt8]) {
        func seconds(_ ns: UInt64?, _ out: inout [UInt8]) {
            if let ns { LogText.appendSeconds(nanoseconds: ns, to: &out) } else { out.append(UInt8(ascii: "-")) }
        }
        LogText.appendCombinedEscaped(r.client.host.utf8, to: &out)
        key(" - - [", &out)
        clock.appendCommonLogTime(milliseconds: r.startedAt, to: &out)
        key("] \"", &out)
        LogText.appendCombinedEscaped(r.method.utf8, to: &out)
        out.append(UInt8(ascii: " "))
        LogText.appendCombinedEscaped(scratch, to: &out)
        key(" HTTP/1.1\" ", &out)
        LogText.appendDecimal(r.status, to: &out)
        out.append(UInt8(ascii: " "))
        LogText.appendDecimal(r.bodyBytes, to: &out)
        key(" \"-\" \"-\" rt=", &out)
        seconds(r.durationNanoseconds, &out)
        key(" urt=", &out)
        seconds(r.upstreamNanoseconds, &out)
        key(" rdt=", &out)
        seconds(r.redisNanoseconds, &out)
        key(" wt=", &out)
        seconds(r.waitNanoseconds, &out)
        key(" cs=\"", &out)
        LogText.appendCombinedEscaped((r.cacheStatus?.description ?? "-").utf8, to: &out)
        key("\" rid=", &out)
        LogText.appendCombinedEscaped((r.requestID ?? "-").utf8, to: &out)
        key(" route=", &out)
        LogText.appendCombinedEscaped((r.route ?? "-").utf8, to: &out)
        key(" outcome=", &out)
        out.append(contentsOf: r.outcome.rawValue.utf8)
    }
}

/// A literal's bytes, without making a `String` of it.
private func key(_ literal: StaticString, _ out: inout [UInt8]) {
    out.append(contentsOf: UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
}
