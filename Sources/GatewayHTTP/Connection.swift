import GatewayIO
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// One client connection, pinned to one event loop for its whole life.
///
/// Reads feed the parser; each complete request gets a sequence number and a slot, and the
/// handler's answer fills that slot, possibly out of order and from another thread. Slots are
/// written strictly in order, so pipelined requests are answered in the order they came.
/// Writes never block the loop: what the socket does not take is kept, and the loop's epoll set
/// says when the socket takes more.
final class Connection: ReadinessHandler, @unchecked Sendable {
    private struct Slot {
        var sequence: Int
        var isHead: Bool
        var keepAlive: Bool
        var version: HTTPVersion
        var response: HTTPResponse?
        /// Written before anything else in the slot: `100 Continue`.
        var interim: [UInt8]?
    }

    private enum State {
        case open
        /// No more requests are read; close once every pending slot is written.
        case closingAfterWrites
        case closed
    }

    let fd: Int32
    let loop: EventLoop
    let peer: SocketAddress
    private unowned let server: HTTPServer
    private let configuration: HTTPServerConfiguration

    private var parser: HTTPRequestParser
    private var state = State.open
    private var slots: [Slot] = []
    private var nextSequence = 0
    private var requestsRead = 0

    private var outbound: [ArraySlice<UInt8>] = []
    private var outboundOffset = 0
    private var outboundBytes = 0

    /// This connection's key in the loop's table and epoll set; 0 until `start`.
    private var token: UInt64 = 0
    /// The epoll events currently asked for.
    private var interest: UInt32 = 0
    private var readSuspended = false
    private var writeResumed = false

    // Deadlines, in DispatchTime uptime nanoseconds; 0 when not armed.
    private var idleSince: UInt64
    private var headStartedAt: UInt64 = 0
    private var lastBodyProgress: UInt64 = 0
    private var lastWriteProgress: UInt64 = 0

    /// Pipelined requests being handled at once before reading pauses.
    private static let maxPipelined = 16
    /// Unwritten response bytes before reading pauses (a client that does not read).
    private static let maxOutboundBytes = 4 * 1024 * 1024

    init(fd: Int32, peer: SocketAddress, loop: EventLoop, server: HTTPServer) {
        self.fd = fd
        self.peer = peer
        self.loop = loop
        self.server = server
        self.configuration = server.configuration
        self.parser = HTTPRequestParser(limits: server.configuration.parserLimits)
        self.idleSince = DispatchTime.now().uptimeNanoseconds
    }

    /// Called on the loop: joins the loop's table and epoll set, and starts reading.
    func start() {
        loop.assertInEventLoop()
        interest = Connection.wanted(reading: true, writing: false)
        guard let token = loop.register(self, events: interest) else {
            state = .closed
            Syscall.close(fd)
            server.connectionClosed(self)
            return
        }
        self.token = token
    }

    /// Level-triggered epoll interest: reading (with peer half-close) and/or writing.
    private static func wanted(reading: Bool, writing: Bool) -> UInt32 {
        (reading ? (Epoll.`in` | Epoll.rdhup) : 0) | (writing ? Epoll.out : 0)
    }

    private func updateInterest() {
        guard !isClosed else { return }
        let wanted = Connection.wanted(reading: !readSuspended, writing: writeResumed)
        if wanted != interest {
            interest = wanted
            loop.watch(self, token: token, events: wanted)
        }
    }

    /// Called by the loop with the epoll events that fired for this socket.
    func handle(events: UInt32) {
        if events & Epoll.err != 0 {
            close()
            return
        }
        if events & Epoll.out != 0 { writable() }
        if events & (Epoll.`in` | Epoll.rdhup | Epoll.hup) != 0 {
            if readSuspended {
                // HUP cannot be masked; a peer that hung up while we were not reading is done.
                if events & Epoll.hup != 0 { close() }
                return
            }
            readable()
        }
    }

    // MARK: Reading

    private func readable() {
        guard case .open = state else { return }
        let buffer = loop.readBuffer
        do throws(SystemError) {
            switch try Syscall.read(fd, into: buffer) {
            case .bytes(let n):
                let wasIdle = parser.phase == .idle
                parser.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                let now = DispatchTime.now().uptimeNanoseconds
                if wasIdle { headStartedAt = now }
                lastBodyProgress = now
                processRequests()
            case .wouldBlock:
                return
            case .eof:
                // The client finished sending. Answer what it already asked for, then close.
                if slots.isEmpty { close() } else { pauseReading(); state = .closingAfterWrites }
            }
        } catch {
            close()
        }
    }

    /// Pulls complete requests out of the parser while there is room for them.
    private func processRequests() {
        while case .open = state {
            if slots.count >= Connection.maxPipelined || outboundBytes >= Connection.maxOutboundBytes {
                pauseReading()
                return
            }
            let event: HTTPParserEvent?
            do throws(HTTPParseError) {
                event = try parser.next()
            } catch {
                reject(error)
                return
            }
            guard let event else { break }
            switch event {
            case .expectContinue:
                sendContinue()
            case .request(let request):
                dispatch(request)
            }
        }
        resumeReading()
        if parser.phase == .idle && slots.isEmpty { idleSince = DispatchTime.now().uptimeNanoseconds }
    }

    private func dispatch(_ request: HTTPRequest) {
        requestsRead += 1
        var keepAlive = request.head.keepAlive
        if requestsRead >= configuration.maxRequestsPerConnection || server.isDraining {
            keepAlive = false
        }
        let sequence = nextSequence
        nextSequence += 1
        slots.append(Slot(sequence: sequence, isHead: request.head.isHead, keepAlive: keepAlive, version: request.head.version))
        if !keepAlive {
            // Nothing after this request will be answered: stop reading now.
            state = .closingAfterWrites
            pauseReading()
        }
        let responder = HTTPResponder(connection: self, sequence: sequence)
        server.handler.handle(request, context: HTTPRequestContext(loop: loop, peer: peer), responder: responder)
    }

    private func reject(_ error: HTTPParseError) {
        let sequence = nextSequence
        nextSequence += 1
        var response = HTTPResponse.text(error.status, error.reason)
        response.headers.add(name: "Connection", value: "close")
        slots.append(Slot(sequence: sequence, isHead: false, keepAlive: false, version: .http1_1, response: response))
        state = .closingAfterWrites
        pauseReading()
        flushSlots()
        server.handler.rejected(status: error.status, reason: error.reason, context: HTTPRequestContext(loop: loop, peer: peer))
    }

    private func sendContinue() {
        // The interim response belongs to the request being read, which comes after every slot.
        if slots.isEmpty {
            enqueue(Connection.continueResponse)
            writePending()
        } else {
            continuePending = true
        }
    }

    private static let continueResponse = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
    private var continuePending = false

    // MARK: Responses

    /// Fills slot `sequence`; called on the loop.
    func complete(sequence: Int, response: HTTPResponse) {
        loop.assertInEventLoop()
        guard !isClosed, let index = slots.firstIndex(where: { $0.sequence == sequence }) else { return }
        guard slots[index].response == nil else { return }
        slots[index].response = response
        flushSlots()
    }

    private var isClosed: Bool { if case .closed = state { return true } else { return false } }

    private func flushSlots() {
        var closeAfter = false
        while let first = slots.first, let response = first.response {
            slots.removeFirst()
            serialize(response, for: first)
            if !first.keepAlive {
                closeAfter = true
                slots.removeAll()
                break
            }
        }
        if continuePending && slots.isEmpty && !closeAfter {
            continuePending = false
            enqueue(Connection.continueResponse)
        }
        if closeAfter { state = .closingAfterWrites }
        writePending()
        if case .open = state, readSuspended, parser.bufferedByteCount > 0 || slots.count < Connection.maxPipelined {
            processRequests()
        }
    }

    private func serialize(_ response: HTTPResponse, for slot: Slot) {
        let status = response.status
        let bodyAllowed = !(status < 200 || status == 204 || status == 304)
        // The previous response's head buffer, reused: once the socket took it, the outbound
        // queue let go of it and its storage is ours again, so a response costs no allocation for
        // its head. While it is still queued, `removeAll` gets fresh storage (copy-on-write), so
        // queued bytes are never touched.
        var head = [UInt8]()
        swap(&head, &headBuffer)
        head.removeAll(keepingCapacity: true)
        head.reserveCapacity(256 + response.headers.count * 32)
        head.append(contentsOf: Connection.statusLine(status))
        var hasDate = false
        var hasContentLength = false
        for field in response.headers {
            switch Connection.role(ofField: field.name) {
            case .contentLength:
                // For HEAD (and 304) a Content-Length the upstream sent describes the body not sent.
                if slot.isHead || status == 304 { hasContentLength = true } else { continue }
            case .framing:
                continue  // framing is ours to decide
            case .date:
                hasDate = true
            case .other:
                break
            }
            Connection.appendBytes(of: field.name, to: &head)
            head.append(UInt8(ascii: ":")); head.append(UInt8(ascii: " "))
            FieldBytes.append(field.value, to: &head)
            head.append(UInt8(ascii: "\r")); head.append(UInt8(ascii: "\n"))
        }
        if !hasDate {
            head.append(contentsOf: "Date: ".utf8)
            Connection.appendBytes(of: loop.httpDate, to: &head)
            head.append(contentsOf: "\r\n".utf8)
        }
        if bodyAllowed && !hasContentLength {
            head.append(contentsOf: "Content-Length: ".utf8)
            DecimalText.append(UInt64(response.body.count), to: &head)
            head.append(contentsOf: "\r\n".utf8)
        }
        if !slot.keepAlive {
            head.append(contentsOf: "Connection: close\r\n".utf8)
        } else if slot.version == .http1_0 {
            head.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        head.append(contentsOf: "\r\n".utf8)
        enqueue(head)
        headBuffer = head
        if bodyAllowed && !slot.isHead && !response.body.isEmpty {
            enqueue(response.body)
        }
    }

    /// See `serialize`: the last head written, kept for its storage.
    private var headBuffer: [UInt8] = []

    /// What the writer does with a response field, by its name.
    private enum FieldRole { case contentLength, framing, date, other }

    /// The name's length picks the one name it could be: most fields (`Content-Type`, `ETag`,
    /// `Cache-Status`) then need no comparison at all, where each used to be compared with all five
    /// (`equalsIgnoringCase` was 0.7 % of a hit's profile).
    private static func role(ofField name: String) -> FieldRole {
        switch name.utf8.count {
        case 14: HTTPHeaders.equalsIgnoringCase(name, "content-length") ? .contentLength : .other
        case 10: HTTPHeaders.equalsIgnoringCase(name, "connection") || HTTPHeaders.equalsIgnoringCase(name, "keep-alive") ? .framing : .other
        case 17: HTTPHeaders.equalsIgnoringCase(name, "transfer-encoding") ? .framing : .other
        case 4: HTTPHeaders.equalsIgnoringCase(name, "date") ? .date : .other
        default: .other
        }
    }

    /// A string's UTF-8, copied from its storage in one go where it has contiguous storage.
    private static func appendBytes(of text: String, to out: inout [UInt8]) {
        let done: Void? = text.utf8.withContiguousStorageIfAvailable { out.append(contentsOf: $0) }
        if done == nil { out.append(contentsOf: text.utf8) }
    }

    /// `HTTP/1.1 200 OK\r\n` and friends, formatted once per status.
    private static let commonStatusLines: [Int: [UInt8]] = Dictionary(
        uniqueKeysWithValues: [100, 200, 201, 204, 301, 302, 304, 400, 404, 408, 413, 414, 431, 500, 501, 502, 503, 504, 505]
            .map { ($0, Array("HTTP/1.1 \($0) \(HTTPStatus.reasonPhrase($0))\r\n".utf8)) })

    private static func statusLine(_ status: Int) -> [UInt8] {
        commonStatusLines[status] ?? Array("HTTP/1.1 \(status) \(HTTPStatus.reasonPhrase(status))\r\n".utf8)
    }

    // MARK: Writing

    private func enqueue(_ bytes: [UInt8]) {
        enqueue(bytes[...])
    }

    private func enqueue(_ bytes: ArraySlice<UInt8>) {
        outbound.append(bytes)
        outboundBytes += bytes.count
    }

    /// Writes as much as the socket takes now; arms the write source for the rest.
    private func writePending() {
        guard !isClosed else { return }
        while !outbound.isEmpty {
            let result: Syscall.IOResult
            do throws(SystemError) {
                result = try writeSome()
            } catch {
                close()
                return
            }
            switch result {
            case .bytes(let n):
                consume(n)
                lastWriteProgress = DispatchTime.now().uptimeNanoseconds
            case .wouldBlock, .eof:
                if !writeResumed {
                    writeResumed = true
                    updateInterest()
                }
                return
            }
        }
        if writeResumed {
            writeResumed = false
            updateInterest()
        }
        lastWriteProgress = 0
        if case .closingAfterWrites = state, slots.isEmpty {
            close()
        } else if slots.isEmpty && parser.phase == .idle {
            idleSince = DispatchTime.now().uptimeNanoseconds
        }
    }

    private func writable() {
        writePending()
    }

    private func writeSome() throws(SystemError) -> Syscall.IOResult {
        let count = min(outbound.count, 64)
        let outcome: Result<Syscall.IOResult, SystemError> = withUnsafeTemporaryAllocation(
            of: iovec.self, capacity: count
        ) { iov in
            // Pin each chunk's storage for the duration of the syscall.
            func fill(_ i: Int) -> Result<Syscall.IOResult, SystemError> {
                if i == count {
                    return Result { () throws(SystemError) in
                        try Syscall.writev(fd, UnsafePointer(iov.baseAddress!), count: Int32(count))
                    }
                }
                let skip = i == 0 ? outboundOffset : 0
                return outbound[i].withUnsafeBytes { bytes in
                    iov[i] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress! + skip), iov_len: bytes.count - skip)
                    return fill(i + 1)
                }
            }
            return fill(0)
        }
        return try outcome.get()
    }

    private func consume(_ written: Int) {
        var n = written
        outboundBytes -= written
        while n > 0, let first = outbound.first {
            let left = first.count - outboundOffset
            if n >= left {
                n -= left
                outbound.removeFirst()
                outboundOffset = 0
            } else {
                outboundOffset += n
                n = 0
            }
        }
    }

    // MARK: Flow control and closing

    private func pauseReading() {
        if !readSuspended {
            readSuspended = true
            updateInterest()
        }
    }

    private func resumeReading() {
        if readSuspended, case .open = state {
            readSuspended = false
            updateInterest()
        }
    }

    /// Whether a timeout has passed; checked by the loop's sweep timer.
    func isExpired(now: UInt64) -> Bool {
        if lastWriteProgress != 0 {
            return now &- lastWriteProgress > configuration.idleTimeout.nanoseconds
        }
        guard slots.isEmpty else { return false }  // the handler is working on it
        switch parser.phase {
        case .idle:
            return now &- idleSince > configuration.idleTimeout.nanoseconds
        case .head:
            return now &- headStartedAt > configuration.headerTimeout.nanoseconds
        case .body:
            return now &- lastBodyProgress > configuration.bodyTimeout.nanoseconds
        }
    }

    func timedOut() {
        if parser.phase != .idle && outbound.isEmpty {
            // Tell a slow client why; best effort, the connection closes either way.
            let response = Array("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
            _ = response.withUnsafeBytes { Syscall.write(fd, $0) }
        }
        close()
    }

    /// Closes an idle connection during a drain; busy ones close after their current response.
    func drain() {
        if slots.isEmpty && outbound.isEmpty && parser.phase == .idle {
            close()
        } else if !slots.isEmpty {
            // Answer what was asked, say `Connection: close` on the last answer, then close.
            slots[slots.count - 1].keepAlive = false
            state = .closingAfterWrites
            pauseReading()
        }
        // A request still arriving is read; `dispatch` marks it as the last one.
    }

    func close() {
        guard !isClosed else { return }
        state = .closed
        slots.removeAll()
        outbound.removeAll()
        // Out of the epoll set first: a closed descriptor number is soon reused.
        loop.unregister(self, token: token)
        Syscall.close(fd)
        server.connectionClosed(self)
    }
}


extension Duration {
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}
