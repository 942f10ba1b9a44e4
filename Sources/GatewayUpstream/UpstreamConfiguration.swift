/// Settings of one ``UpstreamClient``: where the upstream is, how long to wait, how much to hold.
///
/// Every limit applies to one client, that is to one event loop, unless `permits` is shared: then
/// the transfers and the waiting requests of all clients sharing it are bounded together.
public struct UpstreamConfiguration: Sendable {
    /// Scheme, host, port and an optional base path, e.g. `"http://127.0.0.1:9000"` or
    /// `"http://monolith:8080/api"`. A request's `pathAndQuery` is appended to it; a trailing `/` is
    /// ignored. Only `http` and `https`.
    public var baseURL: String

    /// Longest time to establish a TCP (and TLS) connection; past it the request fails with
    /// ``UpstreamError/connectFailed``. Default 2 s. Capped by what is left of `timeout`.
    public var connectTimeout: Duration

    /// Longest time for the whole exchange, counted from ``UpstreamClient/execute(_:completion:)``:
    /// time spent waiting for a connection slot, connecting, sending and receiving. Past it the request
    /// fails with ``UpstreamError/timeout``. Default 30 s.
    public var timeout: Duration

    /// Cap on upstream connections of this client (`CURLMOPT_MAX_HOST_CONNECTIONS`,
    /// `CURLMOPT_MAX_TOTAL_CONNECTIONS` and the size of the keep-alive cache), and on its concurrent
    /// transfers unless `permits` is given. Default 8. Must be at least 1.
    ///
    /// With shared `permits` set it to `permits.limit`: the transfers are capped by the permits, and
    /// idle keep-alive connections may then number up to `maxConnections` per client.
    public var maxConnections: Int

    /// Requests that may wait for a free connection beyond `maxConnections`; a request past
    /// `maxConnections + maxQueued` fails at once with ``UpstreamError/overloaded``. Default 256. May be 0.
    /// Not used when `permits` is given (its own `maxQueued` applies).
    public var maxQueued: Int

    /// Admission shared with other clients, so that a cap holds for all of them together (one client
    /// per event loop, one cap per gateway). Nil: this client has its own, of `maxConnections`
    /// permits and `maxQueued` waiting places.
    public var permits: UpstreamPermits?

    /// Largest response body accepted, in bytes (after chunked decoding). A larger one aborts the
    /// transfer with ``UpstreamError/bodyTooLarge`` (at the headers when `Content-Length` announces it,
    /// otherwise once the limit is crossed). Default 8 MiB.
    public var maxResponseBodyBytes: Int

    /// Largest response header section accepted, in bytes, status line and CRLFs included (the final
    /// response's; interim 1xx responses count separately). A larger one fails with
    /// ``UpstreamError/invalidResponse``. Default 64 KiB.
    public var maxResponseHeaderBytes: Int

    public init(
        baseURL: String,
        connectTimeout: Duration = .seconds(2),
        timeout: Duration = .seconds(30),
        maxConnections: Int = 8,
        maxQueued: Int = 256,
        maxResponseBodyBytes: Int = 8 << 20,
        maxResponseHeaderBytes: Int = 64 << 10,
        permits: UpstreamPermits? = nil
    ) {
        self.baseURL = baseURL
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.maxConnections = maxConnections
        self.maxQueued = maxQueued
        self.maxResponseBodyBytes = maxResponseBodyBytes
        self.maxResponseHeaderBytes = maxResponseHeaderBytes
        self.permits = permits
    }

    /// Checks the settings; ``UpstreamClient/init(configuration:queue:)`` traps on what this rejects,
    /// so a configuration loader calls it first.
    ///
    /// - Throws: ``UpstreamError/invalidConfiguration`` naming the first bad setting.
    public func validate() throws(UpstreamError) {
        func bad(_ message: String) -> UpstreamError { UpstreamError.invalidConfiguration.with(detail: message) }
        let lowered = baseURL.lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") else {
            throw bad("baseURL must start with http:// or https://, got '\(baseURL)'")
        }
        guard baseURL.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") && $0 != UInt8(ascii: "?") }) else {
            throw bad("baseURL must be printable ASCII without spaces, '?' or '#', got '\(baseURL)'")
        }
        let afterScheme = baseURL.split(separator: "/", omittingEmptySubsequences: false).dropFirst(2).first ?? ""
        guard !afterScheme.isEmpty else { throw bad("baseURL has no host: '\(baseURL)'") }
        guard connectTimeout > .zero else { throw bad("connectTimeout must be positive") }
        guard timeout > .zero else { throw bad("timeout must be positive") }
        guard maxConnections >= 1 else { throw bad("maxConnections must be at least 1, got \(maxConnections)") }
        guard maxQueued >= 0 else { throw bad("maxQueued must not be negative, got \(maxQueued)") }
        guard maxResponseBodyBytes >= 0 else { throw bad("maxResponseBodyBytes must not be negative") }
        guard maxResponseHeaderBytes >= 64 else { throw bad("maxResponseHeaderBytes must be at least 64") }
    }
}

extension Duration {
    /// Whole milliseconds, rounded up, at least 1: libcurl's `*_MS` options read 0 as "no limit".
    var curlMilliseconds: Int {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int(max(1, min(ms, Int64(Int32.max))))
    }

    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }
}
