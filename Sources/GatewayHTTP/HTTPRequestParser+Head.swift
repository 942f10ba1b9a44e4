// The request line, the header fields and what they mean for framing (RFC 9112 §3, §5, §6).

extension HTTPRequestParser {
    /// The head being parsed, and what the framing fields said so far.
    struct PendingHead: Sendable {
        var method = ""
        var target = ""
        var path = ""
        var query: String?
        var version = HTTPVersion.http1_1
        var headers = HTTPHeaders()
        var keepAlive = true

        var hostCount = 0
        var contentLength: Int?
        var transferEncoding = TransferEncoding()
        var connectionClose = false
        var connectionKeepAlive = false
        var expectContinue = false
        var unsupportedExpectation = false

        struct TransferEncoding: Sendable {
            var present = false
            var chunkedCount = 0
            var chunkedIsLast = false
            var otherCoding = false
        }

        consuming func makeHead() -> HTTPRequestHead {
            HTTPRequestHead(
                method: method, target: target, path: path, query: query,
                version: version, headers: headers, keepAlive: keepAlive)
        }
    }

    // MARK: - Request line

    /// Parses `method SP request-target SP HTTP-version` (RFC 9112 §3) into `head`.
    mutating func parseRequestLine(_ bytes: UnsafeBufferPointer<UInt8>, _ line: Range<Int>) throws(HTTPParseError) {
        let end = line.upperBound
        var i = line.lowerBound
        while i < end, ASCIISet.token.contains(bytes[i]) { i += 1 }
        let methodRange = line.lowerBound..<i
        guard i < end, bytes[i] == ASCII.space else {
            throw .badRequest(i == end ? "request line has no request-target" : "method contains invalid character")
        }
        guard !methodRange.isEmpty else { throw .badRequest("request line does not start with a method") }

        // The version follows the last SP; a SP inside the target is then reported as such.
        var lastSpace = end - 1
        while lastSpace > i, bytes[lastSpace] != ASCII.space { lastSpace -= 1 }
        guard lastSpace > i else { throw .badRequest("request line has no HTTP version") }
        let targetRange = (i + 1)..<lastSpace
        head.version = try Self.parseVersion(bytes, (lastSpace + 1)..<end)

        if bytes.equals(methodRange, "CONNECT") {
            // A gateway in front of one origin does not tunnel; authority-form is CONNECT-only.
            throw HTTPParseError(status: 501, reason: "CONNECT is not supported")
        }
        head.method = bytes.string(methodRange)
        try parseTarget(bytes, targetRange, isOptions: bytes.equals(methodRange, "OPTIONS"))
    }

    /// `HTTP/1.1` or `HTTP/1.0`; 505 for other well-formed versions, 400 for malformed ones.
    static func parseVersion(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) throws(HTTPParseError) -> HTTPVersion {
        let s = range.lowerBound
        guard range.count == 8, bytes.equals(s..<(s + 5), "HTTP/"),
            ASCII.isDigit(bytes[s + 5]), bytes[s + 6] == UInt8(ascii: "."), ASCII.isDigit(bytes[s + 7])
        else { throw .badRequest("malformed HTTP version") }
        let major = Int(bytes[s + 5] - 0x30)
        let minor = Int(bytes[s + 7] - 0x30)
        guard major == 1, minor <= 1 else {
            throw HTTPParseError(status: 505, reason: "HTTP version not supported")
        }
        return minor == 1 ? .http1_1 : .http1_0
    }

    /// Origin-form, absolute-form (`http`/`https`), or asterisk-form for OPTIONS (RFC 9112 §3.2).
    mutating func parseTarget(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, isOptions: Bool) throws(HTTPParseError) {
        guard !range.isEmpty else { throw .badRequest("empty request-target") }
        let first = bytes[range.lowerBound]

        if first == ASCII.slash {
            let question = try Self.validatePathAndQuery(bytes, range)
            head.target = bytes.string(range)
            if let question {
                head.path = bytes.string(range.lowerBound..<question)
                head.query = bytes.string((question + 1)..<range.upperBound)
            } else {
                head.path = head.target
            }
            return
        }

        if range.count == 1 && first == ASCII.asterisk {
            guard isOptions else { throw .badRequest("asterisk-form request-target is only allowed for OPTIONS") }
            head.target = "*"
            head.path = "*"
            return
        }

        let schemeLength: Int
        if range.count >= 7 && bytes.equalsIgnoringCase(range.lowerBound..<(range.lowerBound + 7), "http://") {
            schemeLength = 7
        } else if range.count >= 8 && bytes.equalsIgnoringCase(range.lowerBound..<(range.lowerBound + 8), "https://") {
            schemeLength = 8
        } else {
            throw .badRequest("request-target is not origin-form or absolute-form")
        }

        // authority = everything up to the path or query; no userinfo.
        let authorityStart = range.lowerBound + schemeLength
        var i = authorityStart
        while i < range.upperBound {
            let byte = bytes[i]
            if byte == ASCII.slash || byte == ASCII.question { break }
            if ASCIISet.authority.contains(byte) {
                i += 1
            } else if byte == ASCII.percent {
                try Self.checkPercentEncoding(bytes, at: i, end: range.upperBound)
                i += 3
            } else {
                throw .badRequest("request-target contains invalid character")
            }
        }
        guard i > authorityStart else { throw .badRequest("absolute-form request-target has no host") }

        let rest = i..<range.upperBound
        let question = try Self.validatePathAndQuery(bytes, rest)
        head.target = bytes.string(range)
        let pathEnd = question ?? rest.upperBound
        head.path = pathEnd > rest.lowerBound ? bytes.string(rest.lowerBound..<pathEnd) : "/"
        if let question {
            head.query = bytes.string((question + 1)..<rest.upperBound)
        }
    }

    /// Checks path and query characters (RFC 3986 pchar, `/`, `?`, `%XX`).
    /// - Returns: the index of the first `?`, or nil.
    static func validatePathAndQuery(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) throws(HTTPParseError) -> Int? {
        var question: Int?
        var i = range.lowerBound
        while i < range.upperBound {
            let byte = bytes[i]
            if ASCIISet.pathQuery.contains(byte) {
                if byte == ASCII.question && question == nil { question = i }
                i += 1
            } else if question != nil, ASCIISet.lenientQuery.contains(byte) {
                // Browsers send these unencoded in queries (`?filter={"a":[1]}` arrives with raw
                // `{`, `[`, `|`...); they cannot change where the path ends, so they are accepted.
                i += 1
            } else if byte == ASCII.percent {
                try checkPercentEncoding(bytes, at: i, end: range.upperBound)
                i += 3
            } else {
                throw .badRequest("request-target contains invalid character")
            }
        }
        return question
    }

    @inline(__always)
    static func checkPercentEncoding(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int, end: Int) throws(HTTPParseError) {
        guard i + 2 < end, ASCII.hexValue(bytes[i + 1]) != nil, ASCII.hexValue(bytes[i + 2]) != nil else {
            throw .badRequest("invalid percent-encoding in request-target")
        }
    }

    // MARK: - Field lines

    /// Splits and checks `field-name ":" OWS field-value OWS` (RFC 9112 §5).
    /// - Returns: the name and the value without surrounding whitespace.
    static func scanFieldLine(_ bytes: UnsafeBufferPointer<UInt8>, _ line: Range<Int>) throws(HTTPParseError) -> (name: Range<Int>, value: Range<Int>) {
        let start = line.lowerBound, end = line.upperBound
        if ASCII.isWhitespace(bytes[start]) {
            throw .badRequest("obsolete line folding (line starts with whitespace)")
        }
        var i = start
        while i < end, ASCIISet.token.contains(bytes[i]) { i += 1 }
        guard i < end else { throw .badRequest("header line has no colon") }
        let byte = bytes[i]
        if byte != ASCII.colon {
            throw .badRequest(
                ASCII.isWhitespace(byte)
                    ? "whitespace between header name and colon" : "header name contains invalid character")
        }
        guard i > start else { throw .badRequest("empty header name") }

        let value = bytes.trimmingWhitespace((i + 1)..<end)
        guard bytes.allFieldValueBytes(value) else { throw .badRequest("header value contains control character") }
        return (start..<i, value)
    }

    /// Adds a header field to `head`, interpreting the ones that matter for framing.
    mutating func addField(_ bytes: UnsafeBufferPointer<UInt8>, _ line: Range<Int>) throws(HTTPParseError) {
        let (name, value) = try Self.scanFieldLine(bytes, line)
        guard head.headers.count < limits.maxHeaderCount else {
            throw HTTPParseError(status: 431, reason: "too many header fields")
        }
        switch name.count {
        case 4 where bytes.equalsIgnoringCase(name, "host"):
            head.hostCount += 1
            guard head.hostCount == 1 else { throw .badRequest("more than one Host header") }
            try Self.checkHost(bytes, value)
        case 6 where bytes.equalsIgnoringCase(name, "expect"):
            if bytes.equalsIgnoringCase(value, "100-continue") {
                head.expectContinue = true
            } else {
                head.unsupportedExpectation = true
            }
        case 10 where bytes.equalsIgnoringCase(name, "connection"):
            parseConnection(bytes, value)
        case 14 where bytes.equalsIgnoringCase(name, "content-length"):
            try parseContentLength(bytes, value)
        case 17 where bytes.equalsIgnoringCase(name, "transfer-encoding"):
            try parseTransferEncoding(bytes, value)
        default:
            break
        }
        if head.headers.fields.capacity == 0 { head.headers.reserveCapacity(16) }
        head.headers.add(name: bytes.string(name), value: FieldBytes.string(UnsafeBufferPointer(rebasing: bytes[value])))
    }

    /// `Host = uri-host [ ":" port ]`; may be empty (RFC 9110 §7.2). No userinfo, no path.
    static func checkHost(_ bytes: UnsafeBufferPointer<UInt8>, _ value: Range<Int>) throws(HTTPParseError) {
        var i = value.lowerBound
        while i < value.upperBound {
            let byte = bytes[i]
            if ASCIISet.authority.contains(byte) {
                i += 1
            } else if byte == ASCII.percent,
                i + 2 < value.upperBound, ASCII.hexValue(bytes[i + 1]) != nil, ASCII.hexValue(bytes[i + 2]) != nil
            {
                i += 3
            } else {
                throw .badRequest("invalid Host header")
            }
        }
    }

    /// `Content-Length = 1*DIGIT`, possibly repeated as a list or in several fields with the same
    /// value (RFC 9110 §8.6). Anything else is 400.
    mutating func parseContentLength(_ bytes: UnsafeBufferPointer<UInt8>, _ value: Range<Int>) throws(HTTPParseError) {
        var i = value.lowerBound
        let end = value.upperBound
        repeat {
            i = bytes.skipWhitespace(from: i, to: end)
            let digitsStart = i
            var length = 0
            while i < end, ASCII.isDigit(bytes[i]) {
                let (times10, o1) = length.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int(bytes[i] - 0x30))
                guard !o1, !o2 else { throw .badRequest("Content-Length too large") }
                length = sum
                i += 1
            }
            guard i > digitsStart else { throw .badRequest("invalid Content-Length") }
            i = bytes.skipWhitespace(from: i, to: end)
            if i < end {
                guard bytes[i] == ASCII.comma else { throw .badRequest("invalid Content-Length") }
                i += 1
                // A trailing comma leaves nothing to parse: the next round's digit check fails.
                if i == end { throw .badRequest("invalid Content-Length") }
            }
            if let previous = head.contentLength, previous != length {
                throw .badRequest("conflicting Content-Length values")
            }
            head.contentLength = length
        } while i < end
    }

    /// Records the transfer codings of one `Transfer-Encoding` field (RFC 9112 §6.1); whether they
    /// are acceptable is decided with the whole head in `finishHead()`.
    mutating func parseTransferEncoding(_ bytes: UnsafeBufferPointer<UInt8>, _ value: Range<Int>) throws(HTTPParseError) {
        head.transferEncoding.present = true
        var i = value.lowerBound
        let end = value.upperBound
        while i < end {
            let elementStart = i
            while i < end, bytes[i] != ASCII.comma { i += 1 }
            let element = bytes.trimmingWhitespace(elementStart..<i)
            i += 1  // past the comma (or past the end, which ends the loop)
            if element.isEmpty { continue }  // empty list elements are ignored (RFC 9110 §5.6.1)

            var nameEnd = element.lowerBound
            while nameEnd < element.upperBound, ASCIISet.token.contains(bytes[nameEnd]) { nameEnd += 1 }
            let name = element.lowerBound..<nameEnd
            guard !name.isEmpty else { throw .badRequest("invalid Transfer-Encoding") }
            if bytes.equalsIgnoringCase(name, "chunked") {
                guard nameEnd == element.upperBound else { throw .badRequest("chunked with parameters") }
                head.transferEncoding.chunkedCount += 1
                head.transferEncoding.chunkedIsLast = true
            } else {
                head.transferEncoding.otherCoding = true
                head.transferEncoding.chunkedIsLast = false
            }
        }
    }

    /// `Connection = #connection-option`; only `close` and `keep-alive` matter here.
    mutating func parseConnection(_ bytes: UnsafeBufferPointer<UInt8>, _ value: Range<Int>) {
        var i = value.lowerBound
        let end = value.upperBound
        while i < end {
            let elementStart = i
            while i < end, bytes[i] != ASCII.comma { i += 1 }
            let option = bytes.trimmingWhitespace(elementStart..<i)
            i += 1
            if bytes.equalsIgnoringCase(option, "close") {
                head.connectionClose = true
            } else if bytes.equalsIgnoringCase(option, "keep-alive") {
                head.connectionKeepAlive = true
            }
        }
    }

    // MARK: - End of head

    /// Checks the head as a whole and sets up the body (RFC 9112 §6.3).
    /// - Returns: the request when it has no body; nil when the body comes next.
    mutating func finishHead() throws(HTTPParseError) -> HTTPParserEvent? {
        let isHTTP11 = head.version == .http1_1
        if isHTTP11 && head.hostCount == 0 { throw .badRequest("missing Host header") }

        var chunked = false
        let te = head.transferEncoding
        if te.present {
            if !isHTTP11 { throw .badRequest("Transfer-Encoding in an HTTP/1.0 request") }
            if head.contentLength != nil { throw .badRequest("Content-Length and Transfer-Encoding together") }
            if te.chunkedCount > 1 { throw .badRequest("chunked transfer coding given twice") }
            if te.chunkedCount == 1 && !te.chunkedIsLast {
                throw .badRequest("chunked is not the last transfer coding")
            }
            if te.otherCoding { throw HTTPParseError(status: 501, reason: "transfer coding not supported") }
            if te.chunkedCount == 0 { throw .badRequest("empty Transfer-Encoding") }
            chunked = true
        }
        if head.unsupportedExpectation { throw HTTPParseError(status: 417, reason: "unsupported expectation") }

        let length = head.contentLength ?? 0
        if length > limits.maxBodyBytes {
            throw HTTPParseError(status: 413, reason: "Content-Length exceeds the body limit")
        }

        head.keepAlive = !head.connectionClose && (isHTTP11 || head.connectionKeepAlive)
        // RFC 9110 §10.1.1: ignore 100-continue from HTTP/1.0; no body, nothing to wait for.
        expectContinuePending = head.expectContinue && isHTTP11 && (chunked || length > 0)

        if chunked {
            state = .chunkSize
            return nil
        }
        if length > 0 {
            body.reserveCapacity(min(length, Self.maxBodyReservation))
            state = .fixedBody(remaining: length)
            return nil
        }
        return finishRequest()
    }
}

extension HTTPParseError {
    static func badRequest(_ reason: String) -> HTTPParseError {
        HTTPParseError(status: 400, reason: reason)
    }
}
