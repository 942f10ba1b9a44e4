/// What the parser yields, in order, for each request on a connection.
public enum HTTPParserEvent: Sendable {
    /// The head asked for `Expect: 100-continue` and its body has not fully arrived yet:
    /// the server should send `100 Continue` (once) before the client sends the body.
    case expectContinue
    /// A complete request, body included.
    case request(HTTPRequest)
}

/// Where the parser is inside the current message (for timeouts: idle vs. head vs. body).
public enum HTTPParserPhase: Sendable, Equatable {
    /// No byte of the next request has been buffered.
    case idle
    /// Part of a request line or header section is buffered.
    case head
    /// The head is complete; the body is still arriving.
    case body
}

/// A strict, incremental HTTP/1.1 request parser (RFC 9112). PLACEHOLDER: replaced by the real one.
public struct HTTPRequestParser: Sendable {
    public init(limits: HTTPParserLimits = HTTPParserLimits()) {}
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {}
    public mutating func append(contentsOf bytes: [UInt8]) {}
    public mutating func next() throws(HTTPParseError) -> HTTPParserEvent? { nil }
    public var phase: HTTPParserPhase { .idle }
    public var bufferedByteCount: Int { 0 }
}
