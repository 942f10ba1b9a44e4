/// An incremental HTTP/1.1 response parser, fed whatever `recv` returned.
///
/// It keeps only the head (to read the status, the framing and `Cache-Status`); body bytes are
/// counted, not stored. Framing: no body for HEAD, 1xx, 204 and 304; else chunked, else
/// `Content-Length`, else until the server closes. Interim 1xx responses are skipped. Lenient
/// about bare LF line ends (a benchmark is not a conformance test), strict about framing.
struct ResponseParser {
    enum Outcome: Equatable {
        /// Everything given was consumed; the response is not complete yet.
        case needMore
        /// The response ended after `consumed` bytes of the last input.
        case complete(consumed: Int)
        /// Not a response we can frame: the connection cannot be reused.
        case invalid
    }

    private enum State {
        case head
        case fixed
        case chunkSize
        case chunkExtension
        case chunkSizeLF
        case chunkData
        case chunkDataCR
        case chunkDataLF
        case trailer
        case untilClose
        case complete
        case invalid
    }

    /// Longest head accepted.
    static let maxHeadBytes = 64 * 1024

    private var state = State.head
    /// The response head, up to and including its empty line.
    private(set) var head: [UInt8] = []
    private var lineLength = 0
    private var headLines = 0
    private var remaining = 0
    private var sawDigit = false
    private var isHeadRequest = false

    /// The status code, once the head is complete.
    private(set) var status = 0
    /// Where the (trimmed) `Cache-Status` value is in `head`, if the response had one.
    private(set) var cacheStatus: Range<Int>?
    /// The connection cannot carry another request (`Connection: close`, HTTP/1.0 without
    /// keep-alive, or a body delimited by the close).
    private(set) var mustClose = false
    /// Body bytes so far (without chunk framing).
    private(set) var bodyBytes = 0
    /// Some of the response has arrived.
    private(set) var receivedAny = false

    init() { head.reserveCapacity(512) }

    /// Gets ready for the response to a new request.
    mutating func reset(isHeadRequest: Bool) {
        state = .head
        head.removeAll(keepingCapacity: true)
        lineLength = 0
        headLines = 0
        remaining = 0
        sawDigit = false
        self.isHeadRequest = isHeadRequest
        status = 0
        cacheStatus = nil
        mustClose = false
        bodyBytes = 0
        receivedAny = false
    }

    var isComplete: Bool { state == .complete }

    /// Feeds bytes received. After `.complete`, the rest of `bytes` (if any) was not consumed.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return .needMore }
        let count = bytes.count
        if count > 0 { receivedAny = true }
        var i = 0
        while i < count {
            switch state {
            case .head:
                // Find the empty line that ends the head, then keep the head in one copy.
                let start = i
                var end = -1
                while i < count {
                    let b = base[i]
                    i += 1
                    if b == 10 {
                        if lineLength == 0 && headLines > 0 {
                            end = i
                            break
                        }
                        if lineLength > 0 { headLines += 1 }
                        lineLength = 0
                    } else if b != 13 {
                        lineLength += 1
                    }
                }
                head.append(contentsOf: UnsafeBufferPointer(start: base + start, count: i - start))
                if head.count > Self.maxHeadBytes { return fail() }
                if end < 0 { return .needMore }
                guard parseHead() else { return fail() }
                if state == .complete { return .complete(consumed: i) }
            case .fixed, .chunkData:
                let n = min(remaining, count - i)
                remaining -= n
                bodyBytes += n
                i += n
                if remaining == 0 {
                    if state == .fixed {
                        state = .complete
                        return .complete(consumed: i)
                    }
                    state = .chunkDataCR
                }
            case .untilClose:
                bodyBytes += count - i
                i = count
            case .chunkSize:
                let b = base[i]
                i += 1
                if let d = Self.hexValue(b) {
                    guard remaining <= (Int.max >> 4) else { return fail() }
                    remaining = remaining << 4 | d
                    sawDigit = true
                } else if sawDigit && (b == UInt8(ascii: ";") || b == UInt8(ascii: " ") || b == UInt8(ascii: "\t")) {
                    state = .chunkExtension
                } else if sawDigit && b == 13 {
                    state = .chunkSizeLF
                } else if sawDigit && b == 10 {
                    endOfChunkSize()
                } else {
                    return fail()
                }
            case .chunkExtension:
                let b = base[i]
                i += 1
                if b == 10 { endOfChunkSize() }
            case .chunkSizeLF:
                let b = base[i]
                i += 1
                guard b == 10 else { return fail() }
                endOfChunkSize()
            case .chunkDataCR:
                let b = base[i]
                i += 1
                if b == 13 {
                    state = .chunkDataLF
                } else if b == 10 {
                    startChunkSize()
                } else {
                    return fail()
                }
            case .chunkDataLF:
                let b = base[i]
                i += 1
                guard b == 10 else { return fail() }
                startChunkSize()
            case .trailer:
                let b = base[i]
                i += 1
                if b == 10 {
                    if lineLength == 0 {
                        state = .complete
                        return .complete(consumed: i)
                    }
                    lineLength = 0
                } else if b != 13 {
                    lineLength += 1
                }
            case .complete:
                return .complete(consumed: i)
            case .invalid:
                return .invalid
            }
        }
        return state == .complete ? .complete(consumed: i) : .needMore
    }

    /// The server closed the connection: completes a response delimited by the close.
    mutating func endOfInput() -> Outcome {
        switch state {
        case .untilClose:
            state = .complete
            return .complete(consumed: 0)
        case .complete:
            return .complete(consumed: 0)
        default:
            return .invalid
        }
    }

    private mutating func fail() -> Outcome {
        state = .invalid
        return .invalid
    }

    private mutating func startChunkSize() {
        state = .chunkSize
        remaining = 0
        sawDigit = false
    }

    private mutating func endOfChunkSize() {
        if remaining == 0 {
            state = .trailer
            lineLength = 0
        } else {
            state = .chunkData
        }
    }

    // MARK: Head

    /// Reads the status line and the fields that matter; sets the body state.
    private mutating func parseHead() -> Bool {
        var contentLength = -1
        var chunked = false
        var closeToken = false
        var keepAliveToken = false
        var http10 = false
        cacheStatus = nil
        let ok: Bool = head.withUnsafeBufferPointer { h in
            var lineStart = 0
            var first = true
            while lineStart < h.count {
                var lineEnd = lineStart
                while lineEnd < h.count && h[lineEnd] != 10 { lineEnd += 1 }
                var contentEnd = lineEnd
                if contentEnd > lineStart && h[contentEnd - 1] == 13 { contentEnd -= 1 }
                defer { lineStart = lineEnd + 1 }
                if contentEnd == lineStart {
                    if first { continue }  // a stray empty line before the status line
                    break
                }
                if first {
                    first = false
                    // HTTP/1.x SSS reason
                    guard contentEnd - lineStart >= 12,
                          Self.matches(h, lineStart, "HTTP/1."),
                          h[lineStart + 8] == 32 else { return false }
                    http10 = h[lineStart + 7] == UInt8(ascii: "0")
                    var code = 0
                    for k in 9..<12 {
                        let d = Int(h[lineStart + k]) - 48
                        guard d >= 0 && d <= 9 else { return false }
                        code = code * 10 + d
                    }
                    guard code >= 100 else { return false }
                    status = code
                    continue
                }
                var colon = lineStart
                while colon < contentEnd && h[colon] != UInt8(ascii: ":") { colon += 1 }
                guard colon < contentEnd, colon > lineStart else { return false }
                var valueStart = colon + 1
                var valueEnd = contentEnd
                while valueStart < valueEnd && (h[valueStart] == 32 || h[valueStart] == 9) { valueStart += 1 }
                while valueEnd > valueStart && (h[valueEnd - 1] == 32 || h[valueEnd - 1] == 9) { valueEnd -= 1 }
                switch colon - lineStart {
                case 14 where Self.namesEqual(h, lineStart, "content-length"):
                    var n = 0
                    guard valueStart < valueEnd else { return false }
                    for k in valueStart..<valueEnd {
                        let d = Int(h[k]) - 48
                        guard d >= 0 && d <= 9, n < Int.max / 10 - 10 else { return false }
                        n = n * 10 + d
                    }
                    if contentLength >= 0 && contentLength != n { return false }
                    contentLength = n
                case 17 where Self.namesEqual(h, lineStart, "transfer-encoding"):
                    // chunked must be the last coding; anything else leaves the body unframed.
                    chunked = valueEnd - valueStart >= 7 && Self.namesEqual(h, valueEnd - 7, "chunked")
                    if !chunked { contentLength = -2 }
                case 10 where Self.namesEqual(h, lineStart, "connection"):
                    if Self.contains(h, valueStart, valueEnd, "close") { closeToken = true }
                    if Self.contains(h, valueStart, valueEnd, "keep-alive") { keepAliveToken = true }
                case 12 where Self.namesEqual(h, lineStart, "cache-status"):
                    cacheStatus = valueStart..<valueEnd
                default:
                    break
                }
            }
            return !first
        }
        guard ok else { return false }

        if status < 200 {
            // 101 would switch protocols: not something a load test can follow.
            guard status != 101 else { return false }
            // An interim response: the real one follows.
            head.removeAll(keepingCapacity: true)
            lineLength = 0
            headLines = 0
            cacheStatus = nil
            state = .head
            return true
        }
        mustClose = closeToken || (http10 && !keepAliveToken)
        if isHeadRequest || status == 204 || status == 304 {
            state = .complete
        } else if chunked {
            startChunkSize()
        } else if contentLength >= 0 {
            remaining = contentLength
            state = contentLength == 0 ? .complete : .fixed
        } else {
            mustClose = true
            state = .untilClose
        }
        return true
    }

    private static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case 48...57: Int(b) - 48
        case 65...70: Int(b) - 55
        case 97...102: Int(b) - 87
        default: nil
        }
    }

    /// `h[at...]` starts with `literal` (exact bytes).
    private static func matches(_ h: UnsafeBufferPointer<UInt8>, _ at: Int, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard at + n <= h.count else { return false }
        let p = literal.utf8Start
        for k in 0..<n where h[at + k] != p[k] { return false }
        return true
    }

    /// `h[at...]` starts with `lowercase`, ignoring ASCII case.
    private static func namesEqual(_ h: UnsafeBufferPointer<UInt8>, _ at: Int, _ lowercase: StaticString) -> Bool {
        let n = lowercase.utf8CodeUnitCount
        guard at >= 0, at + n <= h.count else { return false }
        let p = lowercase.utf8Start
        // `| 0x20` lowercases letters and leaves `-` and digits as they are.
        for k in 0..<n where h[at + k] | 0x20 != p[k] { return false }
        return true
    }

    /// `h[from..<to]` contains `lowercase` somewhere, ignoring ASCII case.
    private static func contains(_ h: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int, _ lowercase: StaticString) -> Bool {
        let n = lowercase.utf8CodeUnitCount
        guard to - from >= n else { return false }
        for start in from...(to - n) where namesEqual(h, start, lowercase) { return true }
        return false
    }
}
