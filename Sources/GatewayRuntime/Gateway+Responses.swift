import GatewayCore
import GatewayHTTP

/// Responses the gateway writes itself.
extension Gateway {
    /// An entry as the answer to `request`: `Age` from its store (or 0 for one fetched just now),
    /// `Cache-Status`, and a 304 when the client already holds it.
    static func fromCache(_ entry: CachedResponse, for request: HTTPRequestHead, status: CacheStatus, age: Bool = true) -> HTTPResponse {
        var headers = entry.headers
        // A just-fetched entry (`age: false`) has its storedAt set back by the origin's Age only,
        // so it is served with that Age, not 0 (RFC 9111 §5.1); a stored one adds its time here.
        headers.add(name: "Age", value: String(entry.age(at: nowMilliseconds())))
        headers.add(name: "Cache-Status", value: status.description)
        if Conditional.notModified(request.headers, entry: entry) {
            return HTTPResponse(status: 304, headers: headers)
        }
        return HTTPResponse(status: entry.status, headers: headers, bodySlice: entry.body)
    }

    static func error(_ code: Int, _ message: String, status: CacheStatus? = nil) -> HTTPResponse {
        var response = HTTPResponse.text(code, message)
        if let status { response.headers.add(name: "Cache-Status", value: status.description) }
        return response
    }

    static func nowMilliseconds() -> UInt64 { WallClock.nowMilliseconds() }
}


