// The upstream response's head, from header lines to status, fields and framing, with no I/O:
// `Transfer` feeds it the lines libcurl hands over, a fuzz target can feed it anything. It imports
// nothing and needs only UpstreamError.swift, so the two files compile on their own
// (`swiftc -parse-as-library ResponseHeadParser.swift UpstreamError.swift fuzz.swift`); the few
// byte helpers the rest of the module shares with it live at the end of this file for that reason.

private let CR = UInt8(ascii: "\r"), LF = UInt8(ascii: "\n"), SP = UInt8(ascii: " "), HT = UInt8(ascii: "\t")

/// How the final response's body is delimited (RFC 9112 §6.3).
enum BodyFraming: Equatable, Sendable {
    /// No body by definition: the answer to HEAD, 204, 304.
    case none
    /// Exactly this many bytes (`Content-Length`, no `Transfer-Encoding`).
    case contentLength(Int)
    /// Chunked is the last transfer coding: the body ends with its last chunk.
    case chunked
    /// The body ends when the connection closes: no length given, or a last transfer coding other than
    /// chunked. Such a body looks the same as a cut-off one.
    case closeDelimited
}

/// The final response's status line and header section, as ``ResponseHeadParser`` understood them.
struct ParsedHead: Sendable {
    /// The final status (200...999; interim 100 and 103 responses are skipped).
    var status: Int
    /// In the order received, names as spelled, values without surrounding SP/HTAB, obs-folds joined
    /// with one space. Each byte 0x80-0xFF of a value is the scalar U+0080-U+00FF (see ``FieldBytes``).
    var headers: [(name: String, value: String)]
    var framing: BodyFraming
}

/// Parses an HTTP/1.x response head line by line: status line, header fields, obs-fold, interim 1xx
/// responses, and the framing fields. Pure: no I/O, no libcurl, no allocation beyond the fields kept.
///
/// What makes a head invalid (``UpstreamError/invalidResponse``):
/// - a status line that is not `HTTP/d.d NNN[ reason]`, or a 1xx status other than 100 and 103 (101
///   would switch protocols nobody asked for; 102 and 104-199 are not interim responses we forward);
/// - a header name that is not a token, a line without a colon, a continuation line first;
/// - any control byte other than HTAB (0x00-0x08, 0x0A-0x1F, 0x7F: a bare CR, NUL, ESC, DEL...)
///   anywhere in a line: a field value may hold only VCHAR, SP, HTAB and obs-text (RFC 9110 §5.5,
///   RFC 9112 §2.2). Relaying a bare CR would let the upstream inject header lines for anyone
///   downstream who splits on it;
/// - a bad or conflicting `Content-Length`; a header section over ``maxHeaderBytes``.
///
/// Lines after the final response's empty line (trailer fields) are accepted and ignored.
struct ResponseHeadParser {
    private enum Phase {
        /// Expecting a status line: at the start, and after an interim response.
        case statusLine
        /// Inside the header section of the response whose status is ``status``.
        case fields
        /// The final response's header section ended.
        case done
    }

    /// Whether the request was HEAD, so the response has no body whatever its fields say.
    let isHead: Bool
    /// The largest header section accepted, status line and line ends included; interim responses
    /// count separately.
    let maxHeaderBytes: Int

    private var phase = Phase.statusLine
    private(set) var status = 0
    private(set) var headers: [(name: String, value: String)] = []
    /// Known once ``isComplete``.
    private(set) var framing = BodyFraming.none
    private var headerBytes = 0
    /// Why ``consume(line:)`` returned `false`; once set, every later line is refused.
    private(set) var error: UpstreamError?

    init(isHead: Bool, maxHeaderBytes: Int) {
        self.isHead = isHead
        self.maxHeaderBytes = maxHeaderBytes
    }

    /// Whether the final response's header section has ended.
    var isComplete: Bool { phase == .done }

    /// The final response's head, once ``isComplete``.
    var head: ParsedHead? {
        isComplete ? ParsedHead(status: status, headers: headers, framing: framing) : nil
    }

    /// Takes one line of the head.
    ///
    /// - Parameters:
    ///   - line: The line's bytes, with or without its LF or CRLF (libcurl's `CURLOPT_HEADERFUNCTION`
    ///     hands it over with). A byte count that includes the line end keeps ``maxHeaderBytes`` exact.
    /// - Returns: `false` if the head is invalid (``error`` says why); `true` otherwise, also for
    ///   trailer lines after the head, which are ignored.
    mutating func consume(line raw: UnsafeRawBufferPointer) -> Bool {
        if error != nil { return false }
        if phase == .done { return true }
        headerBytes += raw.count
        guard headerBytes <= maxHeaderBytes else {
            return fail(.invalidResponse.with(detail: "header section over \(maxHeaderBytes) bytes"))
        }
        var end = raw.count
        if end > 0 && raw[end - 1] == LF { end -= 1 }
        if end > 0 && raw[end - 1] == CR { end -= 1 }
        let line = UnsafeRawBufferPointer(rebasing: raw[0..<end])
        if let bad = line.firstIndex(where: { !Self.isFieldByte($0) }) {
            let hex = String(line[bad], radix: 16, uppercase: true)
            return fail(.invalidResponse.with(
                detail: "control character 0x\(hex.count == 1 ? "0" + hex : hex) in header line '\(Self.printable(line))'"))
        }

        switch phase {
        case .statusLine:
            guard let code = Self.parseStatusLine(line) else {
                return fail(.invalidResponse.with(detail: "bad status line '\(Self.printable(line))'"))
            }
            guard code >= 200 || code == 100 || code == 103 else {
                return fail(.invalidResponse.with(detail: "unexpected informational status \(code)"))
            }
            status = code
            phase = .fields
            return true
        case .fields:
            if line.isEmpty {
                if status < 200 {
                    // 100 Continue, 103 Early Hints: forget it, a status line follows.
                    phase = .statusLine
                    headers.removeAll(keepingCapacity: true)
                    headerBytes = 0
                    return true
                }
                return finish()
            }
            if line[0] == SP || line[0] == HT {
                // obs-fold (RFC 9112 §5.2): a proxy replaces it with a space.
                guard !headers.isEmpty else {
                    return fail(.invalidResponse.with(detail: "continuation line before any header field"))
                }
                // Joined with one space, but an empty side adds none: the value stays trimmed.
                let more = Self.trimmed(line)
                if !more.isEmpty {
                    let last = headers.count - 1
                    headers[last].value += headers[last].value.isEmpty ? more : " " + more
                }
                return true
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else {
                return fail(.invalidResponse.with(detail: "header line without a name '\(Self.printable(line))'"))
            }
            var nameEnd = colon
            while nameEnd > 0 && (line[nameEnd - 1] == SP || line[nameEnd - 1] == HT) { nameEnd -= 1 }
            let name = UnsafeRawBufferPointer(rebasing: line[0..<nameEnd])
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else {
                return fail(.invalidResponse.with(detail: "bad header name '\(Self.printable(name))'"))
            }
            let value = Self.trimmed(UnsafeRawBufferPointer(rebasing: line[(colon + 1)...]))
            headers.append((name: String(decoding: name, as: UTF8.self), value: value))
            return true
        case .done:
            return true
        }
    }

    /// Parses a whole head from a buffer: splits it after each LF and feeds the lines to a fresh
    /// parser, as libcurl would. Bytes after the final response's head (its body) are not looked at.
    /// Meant for tests and fuzz targets.
    ///
    /// - Parameters:
    ///   - bytes: The response as received, from its first status line on.
    ///   - isHead: Whether it answers a HEAD request.
    ///   - maxHeaderBytes: See ``maxHeaderBytes``; the client's default.
    /// - Returns: The final response's head; the parser's error; or ``UpstreamError/truncated`` when
    ///   the bytes end before the head does (an unterminated last line is not a line).
    static func parse(_ bytes: [UInt8], isHead: Bool, maxHeaderBytes: Int = 64 << 10) -> Result<ParsedHead, UpstreamError> {
        var parser = ResponseHeadParser(isHead: isHead, maxHeaderBytes: maxHeaderBytes)
        return bytes.withUnsafeBytes { all in
            var start = 0
            while !parser.isComplete, let lf = all[start...].firstIndex(of: LF) {
                guard parser.consume(line: UnsafeRawBufferPointer(rebasing: all[start...lf])) else {
                    return .failure(parser.error!)
                }
                start = lf + 1
            }
            guard let head = parser.head else {
                return .failure(.truncated.with(detail: "the bytes end inside the response head"))
            }
            return .success(head)
        }
    }

    private mutating func fail(_ error: UpstreamError) -> Bool {
        self.error = error
        return false
    }

    /// The header section ended: learn the body's framing from the fields.
    private mutating func finish() -> Bool {
        var lengths: [Int] = []
        var hasTransferEncoding = false, isChunked = false
        for (name, value) in headers {
            if asciiCaseInsensitiveEquals(name, "Transfer-Encoding") {
                hasTransferEncoding = true
                // The last coding decides: chunked means self-delimited, anything else means close-delimited.
                let last = value.split(separator: ",").last.map { $0.trimmingASCIIWhitespace() } ?? ""
                isChunked = asciiCaseInsensitiveEquals(String(last), "chunked")
            } else if asciiCaseInsensitiveEquals(name, "Content-Length") {
                for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                    let digits = part.trimmingASCIIWhitespace()
                    guard !digits.isEmpty, digits.utf8.count <= 18, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                          let n = Int(digits) else {
                        return fail(.invalidResponse.with(detail: "bad Content-Length '\(Self.printable(value))'"))
                    }
                    lengths.append(n)
                }
            }
        }
        if let first = lengths.first, !lengths.allSatisfy({ $0 == first }) {
            return fail(.invalidResponse.with(detail: "conflicting Content-Length values"))
        }
        if isHead || status == 204 || status == 304 {
            framing = .none  // RFC 9112 §6.3 rules 1 and 2 (1xx never gets here)
        } else if hasTransferEncoding {
            // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3 rule 3).
            framing = isChunked ? .chunked : .closeDelimited
        } else if let length = lengths.first {
            framing = .contentLength(length)
        } else {
            framing = .closeDelimited
        }
        phase = .done
        return true
    }

    /// Whether `byte` may appear in a status line or header line: VCHAR, SP, HTAB, obs-text.
    @inline(__always)
    static func isFieldByte(_ byte: UInt8) -> Bool {
        byte == HT || (byte >= 0x20 && byte != 0x7F)
    }

    /// The status code of `HTTP/x.y NNN reason`, or `nil`.
    static func parseStatusLine(_ line: UnsafeRawBufferPointer) -> Int? {
        // "HTTP/" DIGIT "." DIGIT SP 3DIGIT [SP reason]
        guard line.count >= 12, line.starts(with: "HTTP/".utf8), line[6] == UInt8(ascii: "."), line[8] == SP else {
            return nil
        }
        var code = 0
        for i in 9..<12 {
            let d = line[i]
            guard d >= 0x30 && d <= 0x39 else { return nil }
            code = code * 10 + Int(d - 0x30)
        }
        guard line.count == 12 || line[12] == SP, code >= 100 else { return nil }
        return code
    }

    static func trimmed(_ bytes: UnsafeRawBufferPointer) -> String {
        var lo = 0, hi = bytes.count
        while lo < hi && (bytes[lo] == SP || bytes[lo] == HT) { lo += 1 }
        while hi > lo && (bytes[hi - 1] == SP || bytes[hi - 1] == HT) { hi -= 1 }
        return FieldBytes.string(UnsafeRawBufferPointer(rebasing: bytes[lo..<hi]))
    }

    /// At most 80 bytes, control characters shown as `?`: for error details.
    static func printable(_ bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: bytes.prefix(80).map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
    }

    /// At most 80 scalars of a parsed value, HTAB (the one control character a value may hold) shown as `?`.
    static func printable(_ value: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in value.unicodeScalars.prefix(80) {
            out.append(scalar.value < 0x20 || scalar.value == 0x7F ? "?" : scalar)
        }
        return String(out)
    }
}

// MARK: - Byte helpers shared with the rest of the module

/// Field values are bytes, not UTF-8 (RFC 9110 §5.5: obs-text is opaque). They are kept in a
/// `String` one scalar per byte (ISO-8859-1): 0x80-0xFF becomes U+0080-U+00FF, which maps back to
/// the same byte, so any value goes out exactly as it came in, and two different byte strings never
/// become the same value (a UTF-8 decode would turn both into U+FFFD).
///
/// GatewayHTTP has the same two functions for the client side: neither module imports the other.
enum FieldBytes {
    /// `bytes` one scalar per byte. Pure ASCII (the usual case) takes the plain UTF-8 path.
    static func string(_ bytes: UnsafeRawBufferPointer) -> String {
        var high = 0
        for byte in bytes where byte >= 0x80 { high &+= 1 }
        if high == 0 { return String(decoding: bytes, as: UTF8.self) }
        return String(unsafeUninitializedCapacity: bytes.count + high) { out in
            var i = 0
            for byte in bytes {
                if byte < 0x80 {
                    out[i] = byte
                    i &+= 1
                } else {
                    out[i] = 0xC0 | (byte >> 6)
                    out[i &+ 1] = 0x80 | (byte & 0x3F)
                    i &+= 2
                }
            }
            return i
        }
    }

    /// Appends `value`'s bytes: each scalar up to U+00FF as one byte. A scalar above U+00FF cannot
    /// have come from a parsed message (it was set in code or configuration) and goes out as UTF-8.
    static func append(_ value: String, to out: inout [UInt8]) {
        let utf8 = value.utf8
        if utf8.allSatisfy({ $0 < 0x80 }) {
            out.append(contentsOf: utf8)
            return
        }
        for scalar in value.unicodeScalars {
            if scalar.value < 0x100 {
                out.append(UInt8(truncatingIfNeeded: scalar.value))
            } else {
                UTF8.encode(scalar) { out.append($0) }
            }
        }
    }
}

/// RFC 9110 `tchar`.
@inline(__always)
func isTokenByte(_ c: UInt8) -> Bool {
    switch c {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
         UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
         UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default:
        return false
    }
}

/// Compares two ASCII tokens ignoring case, without allocating.
func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    let x = a.utf8, y = b.utf8
    guard x.count == y.count else { return false }
    for (p, q) in zip(x, y) where p != q {
        guard p | 0x20 == q | 0x20, (p | 0x20) >= 0x61, (p | 0x20) <= 0x7A else { return false }
    }
    return true
}

extension Substring {
    func trimmingASCIIWhitespace() -> Substring {
        var s = self[...]
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }
}
