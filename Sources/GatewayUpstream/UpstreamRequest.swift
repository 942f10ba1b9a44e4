/// One request to forward to the upstream, as plain values.
///
/// Sent as given: the method, the target and the header fields in their order and spelling. The client
/// frames the body itself (`Content-Length`), so `Content-Length` and `Transfer-Encoding` fields given
/// here are dropped; hop-by-hop fields (`Connection`, `Keep-Alive`, `TE`, `Upgrade`, ...) are the
/// caller's to remove.
public struct UpstreamRequest: Sendable {
    /// An HTTP method token (`GET`, `POST`, `PURGE`, ...). `CONNECT` is refused.
    public var method: String
    /// The request target in origin form, `"/path?query"`, appended to the base URL's path; or `"*"`
    /// with `OPTIONS`. Printable ASCII only (no spaces, no `#`).
    public var pathAndQuery: String
    /// Header fields in the order to send them. Names must be tokens; values must not contain CR, LF or
    /// NUL. An empty value is sent as an empty field.
    public var headers: [(name: String, value: String)]
    /// The exact body bytes. An empty body is sent as `Content-Length: 0` for POST, PUT and PATCH and
    /// not at all for other methods; HEAD must have none.
    public var body: [UInt8]

    public init(
        method: String = "GET",
        pathAndQuery: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = []
    ) {
        self.method = method
        self.pathAndQuery = pathAndQuery
        self.headers = headers
        self.body = body
    }
}
