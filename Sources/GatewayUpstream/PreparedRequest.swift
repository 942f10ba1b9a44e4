/// An ``UpstreamRequest`` checked and turned into what libcurl needs; built in `execute`, before the
/// request may wait in the queue, so that a bad request fails at once and nothing of it is sent.
struct PreparedRequest {
    enum BodyMode {
        /// No body and no `Content-Length` (GET, DELETE, ... with an empty body).
        case none
        /// HEAD: `CURLOPT_NOBODY`, so libcurl does not wait for a body.
        case head
        /// `Content-Length: body.count` and the bytes (possibly none: POST, PUT, PATCH).
        case send
    }

    var method: String
    /// Base URL with the path prefix, and the exact request target for `CURLOPT_REQUEST_TARGET`.
    var url: String
    var target: String
    /// `Name: value` lines for `CURLOPT_HTTPHEADER`, in order, then the lines that stop libcurl from
    /// adding fields of its own (`Accept:`, `Expect:`, `Content-Type:`). NUL-terminated bytes, values
    /// encoded back one byte per scalar (``FieldBytes``).
    var headerLines: [[UInt8]]
    var body: [UInt8]
    var bodyMode: BodyMode
    /// `DispatchTime.uptimeNanoseconds` past which the request fails with `.timeout`.
    var deadline: UInt64

    /// Checks `request` and builds the prepared form.
    ///
    /// - Parameters:
    ///   - request: What to send.
    ///   - origin: `scheme://host[:port]` of the base URL.
    ///   - basePath: The base URL's path without a trailing `/` (`""` for none).
    ///   - deadline: See ``deadline``.
    /// - Returns: The prepared request, or `.invalidRequest` naming the first problem.
    static func make(
        _ request: UpstreamRequest, origin: String, basePath: String, deadline: UInt64
    ) -> Result<PreparedRequest, UpstreamError> {
        func invalid(_ message: String) -> Result<PreparedRequest, UpstreamError> {
            .failure(UpstreamError.invalidRequest.with(detail: message))
        }
        let method = request.method
        guard !method.isEmpty, method.utf8.allSatisfy(isTokenByte) else {
            return invalid("method is not a token")
        }
        guard method != "CONNECT" else { return invalid("CONNECT is not forwarded") }

        let path = request.pathAndQuery
        let target: String
        if path == "*" {
            guard method == "OPTIONS" else { return invalid("target '*' is only valid with OPTIONS") }
            target = basePath.isEmpty ? "*" : basePath + "/"
        } else {
            guard path.utf8.first == UInt8(ascii: "/") else { return invalid("target must start with '/'") }
            guard path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "#") }) else {
                return invalid("target contains a control character, a space, '#' or a non-ASCII byte")
            }
            target = basePath + path
        }

        let bodyMode: BodyMode
        if method == "HEAD" {
            guard request.body.isEmpty else { return invalid("HEAD with a body") }
            bodyMode = .head
        } else if !request.body.isEmpty || method == "POST" || method == "PUT" || method == "PATCH" {
            bodyMode = .send
        } else {
            bodyMode = .none
        }

        var lines: [[UInt8]] = []
        lines.reserveCapacity(request.headers.count + 3)
        var hasAccept = false, hasExpect = false, hasContentType = false
        for (name, value) in request.headers {
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else {
                return invalid("header name is not a token")
            }
            guard !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) else {
                return invalid("header '\(name)' has CR, LF or NUL in its value")
            }
            // We frame the body ourselves; a second Content-Length or a Transfer-Encoding would desync.
            if asciiCaseInsensitiveEquals(name, "Content-Length") || asciiCaseInsensitiveEquals(name, "Transfer-Encoding") {
                continue
            }
            if asciiCaseInsensitiveEquals(name, "Accept") { hasAccept = true }
            if asciiCaseInsensitiveEquals(name, "Expect") { hasExpect = true }
            if asciiCaseInsensitiveEquals(name, "Content-Type") { hasContentType = true }
            var line: [UInt8] = []
            line.reserveCapacity(name.utf8.count + value.utf8.count + 3)
            line.append(contentsOf: name.utf8)
            if value.isEmpty {
                // libcurl reads "Name:" as "remove Name" and sends "Name;" as an empty field.
                line.append(UInt8(ascii: ";"))
            } else {
                line.append(contentsOf: ": ".utf8)
                FieldBytes.append(value, to: &line)
            }
            line.append(0)
            lines.append(line)
        }
        if !hasAccept { lines.append(Array("Accept:\0".utf8)) }
        if !hasExpect { lines.append(Array("Expect:\0".utf8)) }
        if !hasContentType && bodyMode == .send { lines.append(Array("Content-Type:\0".utf8)) }

        return .success(PreparedRequest(
            method: method, url: origin + "/", target: target, headerLines: lines,
            body: request.body, bodyMode: bodyMode, deadline: deadline))
    }
}
