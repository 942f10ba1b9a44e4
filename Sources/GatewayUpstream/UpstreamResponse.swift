/// The upstream's final response (interim 1xx responses are skipped).
public struct UpstreamResponse: Sendable {
    /// The status code of the final response.
    public var status: Int
    /// Header fields of the final response in the order received, names as spelled by the upstream,
    /// values with surrounding whitespace removed, each byte 0x80-0xFF as the scalar U+0080-U+00FF
    /// (values are bytes, not UTF-8; the HTTP server writes such scalars back as those bytes). Chunked transfer coding is already decoded in `body`,
    /// but `Transfer-Encoding` is still listed here: it is hop-by-hop and the caller removes it.
    /// Trailer fields are not included.
    public var headers: [(name: String, value: String)]
    /// The body bytes as sent (no content decoding). Empty for HEAD, 1xx, 204 and 304.
    public var body: [UInt8]
    /// Whether the message's framing proves the body complete: `true` for `Content-Length` (checked
    /// against the bytes received), chunked coding (terminated by its last chunk) and responses that
    /// have no body by definition (HEAD, 204, 304); `false` for a body delimited by the connection
    /// closing, which looks the same as a cut-off one, so such a response must not be cached.
    public var isCompleteByFraming: Bool

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8], isCompleteByFraming: Bool) {
        self.status = status
        self.headers = headers
        self.body = body
        self.isCompleteByFraming = isCompleteByFraming
    }

    /// The value of the first header field with this name (ASCII case-insensitive).
    public func headerValue(_ name: String) -> String? {
        headers.first { asciiCaseInsensitiveEquals($0.name, name) }?.value
    }

    /// Every value of the header fields with this name, in order.
    public func headerValues(_ name: String) -> [String] {
        headers.compactMap { asciiCaseInsensitiveEquals($0.name, name) ? $0.value : nil }
    }
}
