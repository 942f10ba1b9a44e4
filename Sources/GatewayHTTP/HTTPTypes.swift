/// Header fields in the order they were received or added.
///
/// Names keep their original spelling; every lookup compares ASCII case-insensitively
/// (RFC 9110 §5.1) without allocating. Values are bytes, not UTF-8: the parser gives each byte
/// 0x80-0xFF as the scalar U+0080-U+00FF and the writer turns such scalars back into that byte
/// (`FieldBytes`), so a value is relayed exactly as received.
public struct HTTPHeaders: Sendable, Sequence, Equatable {
    public typealias Field = (name: String, value: String)

    @usableFromInline
    var fields: [Field]

    public init() { fields = [] }

    public init(_ fields: [(String, String)]) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }

    public mutating func reserveCapacity(_ n: Int) { fields.reserveCapacity(n) }

    /// Appends a field, keeping any existing fields of the same name.
    public mutating func add(name: String, value: String) {
        fields.append((name: name, value: value))
    }

    /// Removes every field with this name.
    public mutating func remove(name: String) {
        fields.removeAll { HTTPHeaders.equalsIgnoringCase($0.name, name) }
    }

    /// Replaces every field with this name by a single one (appended if there was none).
    public mutating func replaceOrAdd(name: String, value: String) {
        remove(name: name)
        add(name: name, value: value)
    }

    /// The first value of the field with this name.
    public subscript(name: String) -> String? {
        for field in fields where HTTPHeaders.equalsIgnoringCase(field.name, name) {
            return field.value
        }
        return nil
    }

    /// Every value of the fields with this name, in order.
    public func values(_ name: String) -> [String] {
        fields.compactMap { HTTPHeaders.equalsIgnoringCase($0.name, name) ? $0.value : nil }
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// ASCII case-insensitive comparison; header names are ASCII tokens.
    @inlinable
    static func asciiLower(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }

    @inlinable
    public static func equalsIgnoringCase(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                guard x.count == y.count else { return false }
                for i in 0..<x.count where x[i] != y[i] {
                    if asciiLower(x[i]) != asciiLower(y[i]) { return false }
                }
                return true
            }
        }
    }
}

public struct HTTPVersion: Sendable, Equatable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public init(major: Int, minor: Int) { self.major = major; self.minor = minor }
    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)
    public var description: String { "HTTP/\(major).\(minor)" }
}

/// A parsed request line and header section.
public struct HTTPRequestHead: Sendable {
    /// The method token as sent (methods are case-sensitive, RFC 9110 §9.1).
    public var method: String
    /// The request-target exactly as sent: origin-form (`/a?b`), absolute-form, or `*`.
    public var target: String
    /// The path part of the target (origin-form; for absolute-form the path after the authority).
    public var path: String
    /// The query without the leading `?`, or nil when the target has none.
    public var query: String?
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    /// Whether the connection may stay open after this exchange
    /// (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    public var keepAlive: Bool

    public init(
        method: String, target: String, path: String, query: String?,
        version: HTTPVersion, headers: HTTPHeaders, keepAlive: Bool
    ) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.keepAlive = keepAlive
    }

    public var isHead: Bool { method == "HEAD" }
}

/// A complete request: head and the whole (de-chunked) body.
public struct HTTPRequest: Sendable {
    public var head: HTTPRequestHead
    public var body: [UInt8]
    public init(head: HTTPRequestHead, body: [UInt8] = []) {
        self.head = head
        self.body = body
    }
}

/// A response to write. The connection adds `Content-Length`, `Connection` and `Date` when
/// missing, strips the body for HEAD requests and for statuses that have none (1xx, 204, 304).
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    /// A slice, so that a body can be written straight from a larger buffer it sits in (a
    /// cached entry as read from Redis) without being copied out first.
    public var body: ArraySlice<UInt8>

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body[...]
    }

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), bodySlice: ArraySlice<UInt8>) {
        self.status = status
        self.headers = headers
        self.body = bodySlice
    }

    /// A small plain-text response, for errors and the health check.
    public static func text(_ status: Int, _ text: String) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        return HTTPResponse(status: status, headers: headers, body: Array((text + "\n").utf8))
    }
}

/// Why a request was rejected, with the status the client gets. The connection is always closed
/// after a parse error: after one the framing of the byte stream can no longer be trusted.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var reason: String
    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }
    public var description: String { "\(status) \(HTTPStatus.reasonPhrase(status)): \(reason)" }
}

/// Limits the parser enforces. Defaults follow common servers (nginx: 8 KiB lines, 4 buffers).
public struct HTTPParserLimits: Sendable, Equatable {
    /// Request line plus all header lines, in bytes (431 beyond; 414 if the request line alone is over).
    public var maxHeaderBytes: Int = 16 * 1024
    /// Number of header fields (431 beyond).
    public var maxHeaderCount: Int = 100
    /// Decoded body size in bytes (413 beyond).
    public var maxBodyBytes: Int = 8 * 1024 * 1024
    public init() {}
    public init(maxHeaderBytes: Int, maxHeaderCount: Int, maxBodyBytes: Int) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
    }
}

public enum HTTPStatus {
    /// The reason phrase for a status code (RFC 9110 §15); "Unknown" for codes it does not list.
    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 203: "Non-Authoritative Information"
        case 204: "No Content"
        case 206: "Partial Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 417: "Expectation Failed"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        default: "Unknown"
        }
    }
}
