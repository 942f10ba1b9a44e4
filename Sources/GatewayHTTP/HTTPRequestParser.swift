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

/// A strict, incremental HTTP/1.1 request parser (RFC 9112).
///
/// The connection appends bytes as they are read, then calls ``next()`` until it returns nil.
/// Requests already buffered (pipelining) come out one per call, so the connection may stop
/// calling ``next()`` for a while and resume later without appending anything.
///
/// Strict where leniency enables request smuggling: lines must end in CRLF (bare CR or LF → 400),
/// no obs-fold, no whitespace before a header colon, `Content-Length` with `Transfer-Encoding` → 400,
/// only `chunked` as transfer coding. Statuses: 400 malformed, 413 body over
/// ``HTTPParserLimits/maxBodyBytes``, 414 request line alone over
/// ``HTTPParserLimits/maxHeaderBytes``, 417 unknown `Expect`, 431 header section or trailer section
/// over ``HTTPParserLimits/maxHeaderBytes`` (request line, field lines and the empty line ending the
/// section, CRLFs included) or more than ``HTTPParserLimits/maxHeaderCount`` fields, 501 CONNECT or a
/// transfer coding other than chunked, 505 a well-formed version other than 1.0/1.1.
/// Limits are enforced as bytes arrive: the parser never waits for a CRLF beyond them.
/// Empty lines before a request line are skipped (RFC 9112 §2.2), up to `maxHeaderBytes` of them
/// (400 beyond). Request-targets are checked against RFC 3986 (`pchar`, `/`, `?`, `%XX`): raw
/// `"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`, `[`, `]` in a path or query are rejected (400).
///
/// After ``next()`` throws, it throws the same error again: close the connection.
///
/// Cost: each byte is looked at a bounded number of times however the input is split (a partial
/// line is not rescanned); the buffer is a `[UInt8]` with a read index, compacted only when the
/// consumed prefix is at least half of it. Allocations per request: the header array, one String
/// per header name and value (none for ≤ 15 bytes), the target strings, the body.
public struct HTTPRequestParser: Sendable {
    /// Total bytes of chunk extensions accepted in one chunked body (400 beyond).
    static let maxChunkExtensionBytes = 4096
    /// Longest chunk-size line without its CRLF: hex digits (leading zeros included) and extensions.
    static let maxChunkSizeLineBytes = maxChunkExtensionBytes + 64
    /// A fully consumed buffer keeps its storage up to this capacity; larger storage is freed.
    static let retainedBufferCapacity = 128 * 1024
    /// Body storage reserved up front from Content-Length is capped here (the rest grows as it arrives).
    static let maxBodyReservation = 1 << 20

    enum State: Sendable, Equatable {
        /// Before the request line (leading empty lines are skipped here).
        case requestLine
        case fieldLines
        case fixedBody(remaining: Int)
        /// Expecting a chunk-size line.
        case chunkSize
        case chunkData(remaining: Int)
        /// Expecting the CRLF after a chunk's data.
        case chunkDataEnd
        case trailerLines
    }

    let limits: HTTPParserLimits
    /// Bytes received; `buffer[readIndex...]` is not consumed yet.
    var buffer: [UInt8] = []
    var readIndex = 0
    /// How many bytes after `readIndex` were already searched for the LF of the current line.
    var scanned = 0
    var state = State.requestLine
    /// The request being parsed.
    var head = PendingHead()
    /// Bytes of the current head section consumed so far (from the request line on).
    var headBytes = 0
    /// Bytes of the empty lines skipped before the current request line.
    var skippedEmptyLineBytes = 0
    var body: [UInt8] = []
    var chunkExtensionBytes = 0
    var trailerBytes = 0
    var trailerCount = 0
    /// Set when the head asked for 100-continue; cleared once `.expectContinue` is yielded.
    var expectContinuePending = false
    /// The error already thrown: the parser stays failed.
    var failure: HTTPParseError?

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
    }

    /// Buffers bytes just read from the socket. Call ``next()`` to parse them.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        compactBeforeAppend()
        bytes.withMemoryRebound(to: UInt8.self) { buffer.append(contentsOf: $0) }
    }

    /// Buffers bytes just read from the socket. Call ``next()`` to parse them.
    public mutating func append(contentsOf bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        compactBeforeAppend()
        buffer.append(contentsOf: bytes)
    }

    /// The next event from the buffered bytes.
    ///
    /// - Returns: `.expectContinue` (at most once per request, before its `.request`), a complete
    ///   `.request`, or nil when more bytes are needed.
    /// - Throws: ``HTTPParseError`` with the status to answer; the connection must then be closed.
    public mutating func next() throws(HTTPParseError) -> HTTPParserEvent? {
        if let failure { throw failure }
        // A second reference to the storage (no copy: nothing appends while we parse) lets the
        // state machine mutate `self` while reading the bytes through one unsafe buffer.
        let storage = buffer
        do throws(HTTPParseError) {
            return try storage.withUnsafeBufferPointer { (bytes) throws(HTTPParseError) in
                try self.step(bytes)
            }
        } catch {
            failure = error
            throw error
        }
    }

    /// Where the parser is inside the current message.
    ///
    /// Empty lines skipped before a request line count as part of that request: `.head`, not
    /// `.idle`, so a client cannot hold a connection with a trickle of CRLFs under the idle timeout.
    public var phase: HTTPParserPhase {
        switch state {
        case .requestLine: skippedEmptyLineBytes == 0 && readIndex == buffer.count ? .idle : .head
        case .fieldLines: .head
        case .fixedBody, .chunkSize, .chunkData, .chunkDataEnd, .trailerLines: .body
        }
    }

    /// Bytes buffered and not yet consumed (body bytes already moved into a request are consumed).
    public var bufferedByteCount: Int { buffer.count - readIndex }

    // MARK: - State machine

    private mutating func step(_ bytes: UnsafeBufferPointer<UInt8>) throws(HTTPParseError) -> HTTPParserEvent? {
        while true {
            switch state {
            case .requestLine:
                let line: Range<Int>
                switch try takeLine(bytes, budget: limits.maxHeaderBytes) {
                case .line(let l): line = l
                case .incomplete: return nil
                case .tooLong: throw HTTPParseError(status: 414, reason: "request line too long")
                }
                if line.isEmpty {
                    // RFC 9112 §2.2: empty lines before a request line are ignored, within a bound.
                    skippedEmptyLineBytes += 2
                    guard skippedEmptyLineBytes <= limits.maxHeaderBytes else {
                        throw .badRequest("too many empty lines before the request line")
                    }
                    continue
                }
                headBytes = line.count + 2
                try parseRequestLine(bytes, line)
                state = .fieldLines

            case .fieldLines:
                let line: Range<Int>
                switch try takeLine(bytes, budget: limits.maxHeaderBytes - headBytes) {
                case .line(let l): line = l
                case .incomplete: return nil
                case .tooLong: throw HTTPParseError(status: 431, reason: "header section too large")
                }
                headBytes += line.count + 2
                if line.isEmpty {
                    if let event = try finishHead() { return event }
                } else {
                    try addField(bytes, line)
                }

            case .fixedBody(let remaining):
                let moved = moveBody(bytes, upTo: remaining)
                if moved == remaining { return finishRequest() }
                state = .fixedBody(remaining: remaining - moved)
                return needMoreBytes()

            case .chunkSize:
                let line: Range<Int>
                switch try takeLine(bytes, budget: Self.maxChunkSizeLineBytes + 2) {
                case .line(let l): line = l
                case .incomplete: return needMoreBytes()
                case .tooLong: throw HTTPParseError(status: 400, reason: "chunk size line too long")
                }
                try startChunk(bytes, line)

            case .chunkData(let remaining):
                let moved = moveBody(bytes, upTo: remaining)
                guard moved == remaining else {
                    state = .chunkData(remaining: remaining - moved)
                    return needMoreBytes()
                }
                state = .chunkDataEnd

            case .chunkDataEnd:
                let available = bytes.count - readIndex
                if available >= 1 && bytes[readIndex] != ASCII.cr
                    || available >= 2 && bytes[readIndex + 1] != ASCII.lf
                {
                    throw HTTPParseError(status: 400, reason: "chunk data not followed by CRLF")
                }
                guard available >= 2 else { return needMoreBytes() }
                readIndex += 2
                state = .chunkSize

            case .trailerLines:
                let line: Range<Int>
                switch try takeLine(bytes, budget: limits.maxHeaderBytes - trailerBytes) {
                case .line(let l): line = l
                case .incomplete: return needMoreBytes()
                case .tooLong: throw HTTPParseError(status: 431, reason: "trailer section too large")
                }
                trailerBytes += line.count + 2
                if line.isEmpty { return finishRequest() }
                // Trailer fields follow the header rules, then are discarded (RFC 9112 §7.1.2).
                _ = try Self.scanFieldLine(bytes, line)
                trailerCount += 1
                guard trailerCount <= limits.maxHeaderCount else {
                    throw HTTPParseError(status: 431, reason: "too many trailer fields")
                }
            }
        }
    }

    enum LineScan {
        /// A complete line, without its CRLF; already consumed.
        case line(Range<Int>)
        case incomplete
        /// The line is, or will be, at least `length` bytes long with its terminator: over budget.
        case tooLong(length: Int)
    }

    /// Consumes the CRLF-terminated line at `readIndex` if it has fully arrived.
    ///
    /// Resumes the LF search where the previous call stopped. A line that cannot fit in `budget`
    /// bytes (CRLF included) is reported as soon as that is certain, without waiting for its end.
    /// - Throws: 400 when the line ends in a bare LF.
    @inline(__always)
    private mutating func takeLine(_ bytes: UnsafeBufferPointer<UInt8>, budget: Int) throws(HTTPParseError) -> LineScan {
        let start = readIndex
        guard let lf = bytes.firstLineFeed(from: start + scanned, to: bytes.count) else {
            scanned = bytes.count - start
            // The LF is still to come: the line will be at least scanned + 1 bytes.
            return scanned >= budget ? .tooLong(length: scanned + 1) : .incomplete
        }
        scanned = 0
        let length = lf + 1 - start
        if length > budget { return .tooLong(length: length) }
        guard lf > start, bytes[lf - 1] == ASCII.cr else {
            throw HTTPParseError(status: 400, reason: "line ends in bare LF")
        }
        readIndex = lf + 1
        return .line(start..<(lf - 1))
    }

    /// Moves up to `remaining` buffered bytes into the body; returns how many were moved.
    @inline(__always)
    private mutating func moveBody(_ bytes: UnsafeBufferPointer<UInt8>, upTo remaining: Int) -> Int {
        let count = min(bytes.count - readIndex, remaining)
        if count > 0 {
            body.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[readIndex..<(readIndex + count)]))
            readIndex += count
        }
        return count
    }

    /// Called when the body needs more bytes: yields the pending `.expectContinue`, once.
    @inline(__always)
    private mutating func needMoreBytes() -> HTTPParserEvent? {
        guard expectContinuePending else { return nil }
        expectContinuePending = false
        return .expectContinue
    }

    /// Hands out the request and resets for the next one on the connection.
    mutating func finishRequest() -> HTTPParserEvent {
        // Move the head and body out rather than copying them (saves a retain/release per field).
        let finished = exchange(&head, with: PendingHead())
        let request = HTTPRequest(head: finished.makeHead(), body: exchange(&body, with: []))
        headBytes = 0
        skippedEmptyLineBytes = 0
        chunkExtensionBytes = 0
        trailerBytes = 0
        trailerCount = 0
        expectContinuePending = false
        state = .requestLine
        return .request(request)
    }

    // MARK: - Buffer

    /// Drops the consumed prefix when that is cheap (all consumed) or amortised (at least half),
    /// so a burst of pipelined requests costs at most one memmove of the rest per doubling.
    private mutating func compactBeforeAppend() {
        guard readIndex > 0 else { return }
        if readIndex == buffer.count {
            if buffer.capacity > Self.retainedBufferCapacity {
                buffer = []
            } else {
                buffer.removeAll(keepingCapacity: true)
            }
            readIndex = 0
        } else if readIndex >= buffer.count - readIndex {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }
}
