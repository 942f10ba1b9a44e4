// libFuzzer target for `HTTPRequestParser` (scripts/fuzz.sh builds it).
//
// Compiled into the module `GatewayHTTP` together with the parser's own source files, so it can
// look at the parser's internal state too. Each input is parsed three ways: whole, split in two at a
// point derived from the input, and in small pieces with `next()` called only a few times between
// appends (the connection may stop pulling requests and resume later). Beyond "does not crash":
//
// - all three yield the same requests (head and body) and the same error, and end in the same
//   phase with the same number of unconsumed bytes;
// - bytes consumed never decrease and never exceed the bytes appended; after an error, `next()`
//   throws the same error again; statuses are the documented ones;
// - every request is well formed: token method, no CONNECT, HTTP/1.0 or 1.1, one Host in 1.1,
//   header names are tokens, values have no CR/LF/NUL/controls nor surrounding whitespace, never
//   Content-Length with Transfer-Encoding, `keepAlive` follows `Connection` and the version;
// - a body's length matches its framing (Content-Length exactly, nothing without framing, the
//   body limit always), and all bodies together are no longer than the input;
// - `.expectContinue` comes at most once per request, only before an HTTP/1.1 request that asked
//   for it and has a body;
// - the requests, written back out canonically (one chunk for a chunked body), parse to the same
//   requests.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPRequestParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    var rng = SplitMix64(seed: fnv1a(input))
    let limits = rng.limits()

    let whole = feed(input, cuts: [], pullsPerAppend: nil, limits: limits)
    let split = Int(rng.next() % UInt64(input.count + 1))
    let halves = feed(input, cuts: [split], pullsPerAppend: nil, limits: limits)
    var cuts: [Int] = []
    var at = 0
    while true {
        at += 1 + Int(rng.next() % 8)
        if at >= input.count { break }
        cuts.append(at)
    }
    let pieces = feed(input, cuts: cuts, pullsPerAppend: Int(rng.next() % 3), limits: limits)

    require(whole == halves, "whole vs split at \(split)", whole, halves)
    require(whole == pieces, "whole vs small pieces", whole, pieces)
    checkRoundTrip(whole, limits: limits)
    return 0
}

// MARK: - Feeding

/// What one way of feeding the input produced.
struct Outcome: Equatable, CustomStringConvertible {
    /// Requests and the error, in order. `.expectContinue` is checked in `feed` but not compared:
    /// whether it comes depends on whether the body had already arrived.
    var events: [Event] = []
    /// Unconsumed bytes and phase at the end (compared only when no error was thrown).
    var buffered = 0
    var phase = HTTPParserPhase.idle

    enum Event: Equatable {
        case request(Snapshot)
        case failure(status: Int, reason: String)
    }

    var failed: Bool { if case .failure = events.last { true } else { false } }

    static func == (a: Outcome, b: Outcome) -> Bool {
        a.events == b.events && (a.failed || (a.buffered == b.buffered && a.phase == b.phase))
    }

    var description: String {
        "\(events.count) events, last: \(events.last.map { "\($0)" } ?? "none"), buffered \(buffered), \(phase)"
    }
}

/// A request in comparable form (`HTTPRequestHead` is not `Equatable`).
struct Snapshot: Equatable {
    var method: String
    var target: String
    var path: String
    var query: String?
    var version: HTTPVersion
    var headers: HTTPHeaders
    var keepAlive: Bool
    var body: [UInt8]

    init(_ request: HTTPRequest) {
        let h = request.head
        (method, target, path, query) = (h.method, h.target, h.path, h.query)
        (version, headers, keepAlive, body) = (h.version, h.headers, h.keepAlive, request.body)
    }
}

/// Appends `input` cut at `cuts`; after each append calls `next()` up to `pullsPerAppend` times
/// (nil: until it returns nil), then drains what is left.
func feed(_ input: [UInt8], cuts: [Int], pullsPerAppend: Int?, limits: HTTPParserLimits) -> Outcome {
    var parser = HTTPRequestParser(limits: limits)
    var outcome = Outcome()
    var appended = 0
    var consumed = 0
    var bodyBytes = 0
    var continuePending = false
    var failure: HTTPParseError?

    func checkBuffer() {
        let buffered = parser.bufferedByteCount
        require(buffered >= 0 && buffered <= appended, "buffered \(buffered) of \(appended) appended")
        require(parser.readIndex <= parser.buffer.count, "readIndex \(parser.readIndex) past \(parser.buffer.count)")
        require(appended - buffered >= consumed, "consumed went back from \(consumed) to \(appended - buffered)")
        consumed = appended - buffered
        require(bodyBytes <= consumed, "\(bodyBytes) body bytes from \(consumed) consumed bytes")
    }

    func pull(_ limit: Int?) {
        var calls = 0
        while failure == nil, limit.map({ calls < $0 }) ?? true {
            calls += 1
            let event: HTTPParserEvent?
            do {
                event = try parser.next()
            } catch {
                failure = error
                require([400, 413, 414, 417, 431, 501, 505].contains(error.status), "undocumented status \(error)")
                outcome.events.append(.failure(status: error.status, reason: error.reason))
                checkBuffer()
                return
            }
            checkBuffer()
            switch event {
            case nil:
                return
            case .expectContinue:
                require(!continuePending, "two .expectContinue for one request")
                continuePending = true
            case .request(let request):
                checkRequest(request, limits: limits, afterContinue: continuePending)
                continuePending = false
                bodyBytes += request.body.count
                require(bodyBytes <= consumed, "\(bodyBytes) body bytes from \(consumed) consumed bytes")
                outcome.events.append(.request(Snapshot(request)))
            }
        }
    }

    var start = 0
    for (n, end) in (cuts + [input.count]).enumerated() {
        let piece = input[start..<end]
        start = end
        if n % 2 == 0 {
            parser.append(contentsOf: Array(piece))
        } else {
            piece.withUnsafeBytes { parser.append($0) }
        }
        appended += piece.count
        checkBuffer()
        pull(pullsPerAppend)
    }
    pull(nil)

    if let failure {
        do {
            _ = try parser.next()
            require(false, "next() after \(failure) did not throw")
        } catch {
            require(error == failure, "next() after \(failure) threw \(error)")
        }
    }
    outcome.buffered = parser.bufferedByteCount
    outcome.phase = parser.phase
    return outcome
}

// MARK: - Properties of one request

func checkRequest(_ request: HTTPRequest, limits: HTTPParserLimits, afterContinue: Bool) {
    let head = request.head
    let headers = head.headers
    func fail(_ what: String) -> Never {
        fatalError("\(what): \(head.method) \(head.target) \(head.version), \(Array(headers)), body \(request.body.count) bytes")
    }

    if head.method.isEmpty || !head.method.utf8.allSatisfy(ASCIISet.token.contains) { fail("method not a token") }
    if head.method == "CONNECT" { fail("CONNECT accepted") }
    if head.version != .http1_1 && head.version != .http1_0 { fail("version") }
    if head.target.isEmpty || head.path.isEmpty { fail("empty target or path") }
    if head.target == "*" {
        if head.method != "OPTIONS" || head.path != "*" || head.query != nil { fail("asterisk-form") }
    } else if head.target.hasPrefix("/") {
        if !head.target.hasPrefix(head.path) { fail("path not a prefix of the target") }
    } else if !head.path.hasPrefix("/") {
        fail("absolute-form path does not start with /")
    }
    if let query = head.query, !head.target.hasSuffix("?" + query) { fail("query not the end of the target") }

    if headers.count > limits.maxHeaderCount { fail("more than \(limits.maxHeaderCount) headers") }
    for field in headers {
        if field.name.isEmpty || !field.name.utf8.allSatisfy(ASCIISet.token.contains) { fail("header name not a token") }
        let value = Array(field.value.utf8)
        if !value.allSatisfy(ASCII.isFieldValueByte) { fail("control byte in a header value") }
        if let first = value.first, let last = value.last, ASCII.isWhitespace(first) || ASCII.isWhitespace(last) {
            fail("header value not trimmed")
        }
    }

    let hosts = headers.values("Host").count
    if head.version == .http1_1 ? hosts != 1 : hosts > 1 { fail("\(hosts) Host headers") }
    if !headers.values("Expect").allSatisfy({ HTTPHeaders.equalsIgnoringCase($0, "100-continue") }) {
        fail("unsupported Expect accepted")
    }

    let connection = headers.values("Connection").flatMap { listElements($0) }
    let close = connection.contains { HTTPHeaders.equalsIgnoringCase($0, "close") }
    let keepAliveOption = connection.contains { HTTPHeaders.equalsIgnoringCase($0, "keep-alive") }
    if head.keepAlive != (!close && (head.version == .http1_1 || keepAliveOption)) { fail("keepAlive") }

    // Framing (RFC 9112 §6.3).
    if request.body.count > limits.maxBodyBytes { fail("body over the limit") }
    let transferEncoding = headers.values("Transfer-Encoding")
    let contentLength = headers.values("Content-Length")
    var chunked = false
    if !transferEncoding.isEmpty {
        if !contentLength.isEmpty { fail("Content-Length with Transfer-Encoding") }
        if head.version != .http1_1 { fail("Transfer-Encoding in HTTP/1.0") }
        let codings = transferEncoding.flatMap { listElements($0) }
        if codings.count != 1 || !HTTPHeaders.equalsIgnoringCase(codings[0], "chunked") { fail("codings \(codings)") }
        chunked = true
    } else if let field = contentLength.first {
        let lengths = contentLength.flatMap { listElements($0) }
        guard let length = Int(listElements(field).first ?? ""), lengths.allSatisfy({ Int($0) == length }) else {
            fail("Content-Length values \(contentLength)")
        }
        if request.body.count != length { fail("body of \(request.body.count) bytes for Content-Length \(length)") }
    } else if !request.body.isEmpty {
        fail("body without framing")
    }

    if afterContinue {
        let asked = !headers.values("Expect").isEmpty
        if !asked || head.version != .http1_1 || !(chunked || !request.body.isEmpty) {
            fail(".expectContinue before a request that does not wait for one")
        }
    }
}

/// The non-empty elements of a comma-separated list (RFC 9110 §5.6.1), trimmed of SP/HTAB.
/// Works on bytes as the parser does (a Character can join a comma with a combining mark).
func listElements(_ value: String) -> [String] {
    value.utf8.split(separator: ASCII.comma, omittingEmptySubsequences: false).compactMap { element in
        var bytes = element
        while let b = bytes.first, ASCII.isWhitespace(b) { bytes = bytes.dropFirst() }
        while let b = bytes.last, ASCII.isWhitespace(b) { bytes = bytes.dropLast() }
        return bytes.isEmpty ? nil : String(decoding: Array(bytes), as: UTF8.self)
    }
}

// MARK: - Round trip

/// The requests, written back in canonical form, must parse to the same requests. Limits are
/// roomier for the head only: where values are decoded as UTF-8, a repaired byte (U+FFFD) grows 3×.
func checkRoundTrip(_ outcome: Outcome, limits: HTTPParserLimits) {
    var bytes: [UInt8] = []
    var expected: [Outcome.Event] = []
    for case .request(let r) in outcome.events {
        expected.append(.request(r))
        bytes += Array("\(r.method) \(r.target) \(r.version)\r\n".utf8)
        for field in r.headers { bytes += Array("\(field.name):".utf8) + valueBytes(field.value) + [ASCII.cr, ASCII.lf] }
        bytes += [ASCII.cr, ASCII.lf]
        if r.headers.contains("Transfer-Encoding") {
            if !r.body.isEmpty {
                bytes += Array("\(String(r.body.count, radix: 16))\r\n".utf8) + r.body + [ASCII.cr, ASCII.lf]
            }
            bytes += Array("0\r\n\r\n".utf8)
        } else {
            bytes += r.body
        }
    }
    var roomy = limits
    roomy.maxHeaderBytes = limits.maxHeaderBytes * 3 + 64
    let again = feed(bytes, cuts: [], pullsPerAppend: nil, limits: roomy)
    require(again.events == expected && again.buffered == 0, "round trip", outcome, again)
}

// MARK: - Helpers

/// Whether the parser keeps value bytes one scalar per byte (0x80-0xFF as U+0080-U+00FF, which the
/// writer maps back) rather than decoding them as UTF-8 with repair. Probed once, so the harness
/// fits either version of the parser.
let valuesAreLatin1: Bool = {
    var parser = HTTPRequestParser()
    parser.append(contentsOf: Array("GET / HTTP/1.1\r\nHost: a\r\nX: ".utf8) + [0xE9] + Array("\r\n\r\n".utf8))
    guard case .request(let request)? = try? parser.next() else { fatalError("the probe request does not parse") }
    return request.head.headers["X"] == "\u{E9}"
}()

/// A value's bytes on the wire, as the server's writer would send them.
func valueBytes(_ value: String) -> [UInt8] {
    guard valuesAreLatin1 else { return Array(value.utf8) }
    var out: [UInt8] = []
    for scalar in value.unicodeScalars {
        if scalar.value < 0x100 { out.append(UInt8(scalar.value)) } else { out += Array(String(scalar).utf8) }
    }
    return out
}

func require(_ condition: Bool, _ what: @autoclosure () -> String, _ a: Outcome? = nil, _ b: Outcome? = nil) {
    guard !condition else { return }
    fatalError("\(what())\n  first:  \(a.map { "\($0)" } ?? "-")\n  second: \(b.map { "\($0)" } ?? "-")")
}

func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
}

/// A deterministic generator seeded from the input, so a reproducer replays the same splits.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The default limits, or for one input in four tight ones, so the 413/414/431 paths are reached.
    mutating func limits() -> HTTPParserLimits {
        let r = next()
        guard r % 4 == 0 else { return HTTPParserLimits() }
        return HTTPParserLimits(
            maxHeaderBytes: 24 + Int((r >> 8) % 256), maxHeaderCount: 1 + Int((r >> 16) % 8),
            maxBodyBytes: Int((r >> 24) % 128))
    }
}
