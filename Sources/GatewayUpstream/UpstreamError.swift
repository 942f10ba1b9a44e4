/// Why a request to the upstream produced no usable response.
///
/// A struct rather than an enum so that codes can be added without breaking callers. Compare with the
/// static members (`error == .timeout`): equality looks at the code only, never at ``detail``.
public struct UpstreamError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Code: Sendable, Equatable {
        case connectFailed, timeout, truncated, invalidResponse, invalidRequest, overloaded
        case bodyTooLarge, shutdown, transferFailed, invalidConfiguration
    }

    let code: Code
    /// What happened, for logs: libcurl's message or the check that failed. Not bounded: never use it
    /// as a metric label (use ``shortDescription``).
    public let detail: String?

    init(_ code: Code, detail: String? = nil) {
        self.code = code
        self.detail = detail
    }

    func with(detail: String) -> UpstreamError { UpstreamError(code, detail: detail) }

    /// No connection to the upstream could be made in time (refused, unreachable, unresolvable host,
    /// connect timeout). The request was not sent.
    public static let connectFailed = UpstreamError(.connectFailed)
    /// The whole exchange took longer than ``UpstreamConfiguration/timeout`` (waiting for a slot included).
    public static let timeout = UpstreamError(.timeout)
    /// The upstream closed the connection inside the response: in the header section, short of
    /// `Content-Length`, or inside a chunked body (broken chunk syntax included).
    public static let truncated = UpstreamError(.truncated)
    /// The upstream's answer is not acceptable HTTP/1.x: empty reply, bad status line or header line
    /// (a control character other than HTAB included), a 1xx status other than 100 and 103, bad
    /// `Content-Length`, header section over the limit.
    public static let invalidResponse = UpstreamError(.invalidResponse)
    /// The request cannot be forwarded as given (bad method, target or header field: CR, LF or NUL in
    /// a value would inject headers). Nothing was sent.
    public static let invalidRequest = UpstreamError(.invalidRequest)
    /// Every connection slot and every queue place is taken. Nothing was sent.
    public static let overloaded = UpstreamError(.overloaded)
    /// The response body is larger than ``UpstreamConfiguration/maxResponseBodyBytes``; the transfer
    /// was aborted.
    public static let bodyTooLarge = UpstreamError(.bodyTooLarge)
    /// The client was shut down before the request finished.
    public static let shutdown = UpstreamError(.shutdown)
    /// The connection failed while sending or receiving, outside the cases above (reset, send error).
    public static let transferFailed = UpstreamError(.transferFailed)
    /// ``UpstreamConfiguration/validate()`` rejected a setting.
    public static let invalidConfiguration = UpstreamError(.invalidConfiguration)

    /// A short constant name, safe as a metric label: `connect_failed`, `timeout`, `truncated`, ...
    public var shortDescription: String {
        switch code {
        case .connectFailed: "connect_failed"
        case .timeout: "timeout"
        case .truncated: "truncated"
        case .invalidResponse: "invalid_response"
        case .invalidRequest: "invalid_request"
        case .overloaded: "overloaded"
        case .bodyTooLarge: "body_too_large"
        case .shutdown: "shutdown"
        case .transferFailed: "transfer_failed"
        case .invalidConfiguration: "invalid_configuration"
        }
    }

    /// The status a gateway answers its own client with: 504 for a timeout, 503 when overloaded or
    /// shutting down, 400 for a request that cannot be forwarded, 502 for everything the upstream did.
    public var suggestedStatus: Int {
        switch code {
        case .timeout: 504
        case .overloaded, .shutdown: 503
        case .invalidRequest: 400
        case .connectFailed, .truncated, .invalidResponse, .bodyTooLarge, .transferFailed: 502
        case .invalidConfiguration: 500
        }
    }

    public var description: String {
        let what: String = switch code {
        case .connectFailed: "could not connect to the upstream"
        case .timeout: "the upstream did not answer in time"
        case .truncated: "the upstream's response was cut off"
        case .invalidResponse: "the upstream's response is not valid HTTP/1.1"
        case .invalidRequest: "the request cannot be forwarded"
        case .overloaded: "too many upstream requests in flight and queued"
        case .bodyTooLarge: "the upstream's response body is over the limit"
        case .shutdown: "the upstream client is shut down"
        case .transferFailed: "the upstream connection failed"
        case .invalidConfiguration: "invalid upstream configuration"
        }
        return detail.map { "upstream: \(what): \($0)" } ?? "upstream: \(what)"
    }

    public static func == (lhs: UpstreamError, rhs: UpstreamError) -> Bool { lhs.code == rhs.code }
}
