internal import CHiredis
import Dispatch
import GatewayIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One hiredis async context, its place in the owning loop's epoll set, and the commands pending
/// on it.
///
/// One per TCP connection: a reconnect makes a new one, so a late callback from an old context can
/// never complete a command of a new one. Touched only on the owner's queue.
///
/// Readiness: the socket sits in the loop's ``ReadinessSet`` with the loop's client connections,
/// so a reply wakes the loop with its clients, not a Dispatch thread of its own. A command does
/// not write at once: the write waits for the end of the batch of ready descriptors, so every
/// command the batch's requests sent goes out in one `write(2)` (pipelined). `EPOLLOUT` is asked
/// for only while connecting and while a write could not finish.
///
/// Lifetime (see shared/FACTS.md, "hiredis 0.14.1 async on Dispatch"):
/// - hiredis holds one retain, taken in ``connect(owner:configuration:readiness:)`` and stored in
///   `ac->data` and `ac->ev.data`. The `cleanup` hook gives it back *asynchronously*: hiredis
///   still uses the context after `cleanup` returns (it would call `onDisconnect` then). `cleanup`
///   is the one signal that comes for every end, a refused connect included, so no
///   `onDisconnect` callback is set.
/// - `cleanup` takes the socket out of the epoll set; hiredis closes it right after.
/// - The set holds the context until then, and the context strongly references its
///   ``RedisConnection``, so the connection lives at least as long as hiredis holds either.
final class HiredisContext: ReadinessHandler, BatchEndHandler, @unchecked Sendable {
    let owner: RedisConnection
    private let ac: UnsafeMutablePointer<redisAsyncContext>
    private let readiness: ReadinessSet
    private var queue: DispatchQueue { readiness.queue }
    private let fd: Int32
    private var token: UInt64 = 0
    /// What hiredis asked for (its `addRead`/`addWrite` hooks).
    private var reading = false
    private var writing = false
    /// `EPOLLOUT` is in the interest set: connecting, or a write the kernel could not take whole.
    private var watchingWritable = false
    private var interest: UInt32 = 0
    private var flushQueued = false
    private var inWrite = false
    private var connected = false

    /// Commands written and not yet answered, oldest first. hiredis answers in order, so every reply
    /// callback (or nil-reply callback while the context is freed) pops the first one.
    private(set) var pending = RingBuffer<PendingCommand>(initialCapacity: 64)

    /// The bytes of the top-level bulk string hiredis is building a reply for, when the command it
    /// answers is a `GET` (see ``BulkStringSink``), and that reply; taken by ``didReceive(_:)``.
    fileprivate var sunkBulk: (reply: UnsafeMutableRawPointer, bytes: [UInt8])?

    /// No more commands may be written: hiredis is freeing the context or was asked to.
    private(set) var hasEnded = false
    /// `cleanup` ran: `ac` is freed (or about to be); never touch it again.
    private var isFreed = false
    /// Inside `onConnect`, where hiredis does not defer `redisAsyncFree` (it would free under its own feet).
    private var inConnectCallback = false
    /// The error given to pending commands when the context is freed without their replies.
    private var failure: RedisError = .disconnected

    private init(owner: RedisConnection, ac: UnsafeMutablePointer<redisAsyncContext>, readiness: ReadinessSet) {
        self.owner = owner
        self.ac = ac
        self.readiness = readiness
        self.fd = ac.pointee.c.fd
    }

    struct ConnectFailure: Error {
        let reason: String
    }

    /// Starts a non-blocking connect (`redisAsyncConnect`), installs the event hooks and callbacks,
    /// and watches for the connect to finish; the owner hears of it through `contextDidConnect` or
    /// `contextDidEnd`.
    ///
    /// A unix socket is connected with `redisAsyncConnectUnix`; a `host` is resolved with a blocking
    /// `getaddrinfo`: prefer an IP literal.
    static func connect(
        owner: RedisConnection, configuration: RedisConfiguration, readiness: ReadinessSet
    ) -> Result<HiredisContext, ConnectFailure> {
        let made = configuration.unixSocketPath.map { redisAsyncConnectUnix($0) }
            ?? redisAsyncConnect(configuration.host, Int32(clamping: configuration.port))
        guard let ac = made else {
            return .failure(ConnectFailure(reason: "redisAsyncConnect: out of memory"))
        }
        if ac.pointee.err != 0 {  // e.g. an unknown host, or a connect refused at once
            let reason = ac.pointee.errstr.map { String(cString: $0) } ?? "error \(ac.pointee.err)"
            redisAsyncFree(ac)  // no hooks installed yet: frees at once, calls nothing of ours
            return .failure(ConnectFailure(reason: reason))
        }
        // hiredis frees its read buffer each time it empties with more than 16 KiB spare, then
        // grows it again by doubling (a realloc and a copy per step) for the next large reply:
        // every 64 KiB entry paid for that. 0 keeps the buffer.
        ac.pointee.c.reader.pointee.maxbuf = 0
        let context = HiredisContext(owner: owner, ac: ac, readiness: readiness)
        BulkStringSink.install(on: ac.pointee.c.reader, context: Unmanaged.passUnretained(context).toOpaque())
        // In the set before the hooks: setting the connect callback asks for writability at once.
        guard let token = readiness.add(context.fd, events: 0, handler: context) else {
            let reason = "epoll_ctl: \(String(cString: strerror(errno)))"
            redisAsyncFree(ac)
            return .failure(ConnectFailure(reason: reason))
        }
        context.token = token
        let retained = Unmanaged.passRetained(context).toOpaque()  // given back after cleanup()
        ac.pointee.data = retained
        ac.pointee.ev.data = retained
        ac.pointee.ev.addRead = { HiredisContext.from($0).setReading(true) }
        ac.pointee.ev.delRead = { HiredisContext.from($0).setReading(false) }
        ac.pointee.ev.addWrite = { HiredisContext.from($0).setWriting(true) }
        ac.pointee.ev.delWrite = { HiredisContext.from($0).setWriting(false) }
        ac.pointee.ev.cleanup = { HiredisContext.from($0).cleanup() }
        // Hooks first: setting the connect callback calls addWrite, whose event reports the connect.
        _ = redisAsyncSetConnectCallback(ac) { ac, status in
            guard let ac else { return }
            HiredisContext.from(ac.pointee.data).didConnect(ac, status: status)
        }
        return .success(context)
    }

    private static func from(_ pointer: UnsafeMutableRawPointer?) -> HiredisContext {
        Unmanaged<HiredisContext>.fromOpaque(pointer!).takeUnretainedValue()
    }

    // MARK: Commands

    /// Writes a command. Returns `false` (and keeps nothing) when the context takes no more commands.
    func enqueue(_ arguments: CommandArguments, _ command: PendingCommand) -> Bool {
        guard !hasEnded else { return false }
        let status = arguments.withArgv { argc, argv, argvlen in
            redisAsyncCommandArgv(ac, gatewayRedisReplyCallback, nil, argc, argv, argvlen)
        }
        guard status == REDIS_OK else { return false }
        // Nothing can answer before this line: the callback fires from a later read event.
        pending.append(command)
        readiness.expect(1)
        return true
    }

    /// Frees the context: every pending command fails with `error` (inside this call, or right after
    /// the hiredis callback we are in returns), and the connection is closed.
    ///
    /// The owner must have moved on already; it is not told about the end of this context.
    func abort(with error: RedisError) {
        guard !hasEnded else { return }
        hasEnded = true
        failure = error
        if inConnectCallback {
            // hiredis does not defer redisAsyncFree while it runs onConnect.
            queue.async { self.freeNow() }
        } else {
            freeNow()
        }
    }

    private func freeNow() {
        guard !isFreed else { return }
        redisAsyncFree(ac)  // defers itself while a reply callback runs
    }

    // MARK: Callbacks from hiredis

    /// The oldest pending command is a `GET`: its reply's bytes may go straight into a `[UInt8]`.
    fileprivate var nextReplyIsBulkString: Bool {
        if case .bulkString = pending.first?.completion { return true }
        return false
    }

    fileprivate func didReceive(_ reply: UnsafeMutableRawPointer?) {
        guard let command = pending.popFirst() else {
            assertionFailure("hiredis answered a command that is not pending")
            return
        }
        readiness.expect(-1)
        guard let reply = reply?.assumingMemoryBound(to: redisReply.self) else {
            // hiredis is freeing the context: tell the owner first, so that code run by the
            // completion already sees the connection as down.
            markEnded()
            command.completion.fail(failure)
            return
        }
        if case .handshake(let isLast) = command.completion {
            let r = reply.pointee
            if r.type == REDIS_REPLY_ERROR {
                let message = r.str.map {
                    String(decoding: UnsafeRawBufferPointer(start: $0, count: r.len), as: UTF8.self)
                } ?? ""
                owner.contextHandshakeFailed(self, message: message)
            } else if isLast {
                owner.contextBecameReady(self)
            }
            return
        }
        var bytes: [UInt8]?
        if let sunk = sunkBulk {
            sunkBulk = nil
            if sunk.reply == UnsafeMutableRawPointer(reply) { bytes = sunk.bytes }
        }
        owner.contextDidReply(to: command)
        command.completion.complete(with: reply, bulkBytes: bytes)
    }

    private func didConnect(_ ac: UnsafePointer<redisAsyncContext>, status: Int32) {
        if status == REDIS_OK {
            connected = true
            inConnectCallback = true
            defer { inConnectCallback = false }
            // TCP keepalive, 15 s: finds a silently dead peer on an idle connection. Not on a unix
            // socket, where it fails with EOPNOTSUPP and leaves that error on the context.
            if self.ac.pointee.c.connection_type == REDIS_CONN_TCP { _ = redisEnableKeepAlive(&self.ac.pointee.c) }
            owner.contextDidConnect(self)
        } else {
            // hiredis frees the context right after this callback; no onDisconnect follows.
            markEnded(reason: errorText(ac.pointee.c))
        }
    }

    private func setReading(_ on: Bool) {
        guard on != reading else { return }
        reading = on
        updateInterest()
    }

    /// hiredis asks again while it already wants to write (a flush the kernel did not take
    /// whole calls `addWrite` from inside `redisAsyncHandleWrite`): that ask must still turn
    /// `EPOLLOUT` on, or the rest of the output would wait for a flush nobody queues.
    private func setWriting(_ on: Bool) {
        guard on else {
            guard writing else { return }
            writing = false
            watchingWritable = false
            updateInterest()
            return
        }
        writing = true
        if !connected || inWrite {
            // Connecting (writable means connected), or a write the kernel did not take whole:
            // the kernel says when there is room.
            guard !watchingWritable else { return }
            watchingWritable = true
            updateInterest()
        } else if !flushQueued && !watchingWritable {
            flushQueued = true
            readiness.runAtBatchEnd(self)
        }
    }

    /// Reads and answers whatever the socket holds now (the command timer's last look before it
    /// declares a timeout).
    func readWhatHasArrived() {
        guard !isFreed, connected, ReadinessSet.readableBytes(fd) > 0 else { return }
        readable()
    }

    private func updateInterest() {
        guard !isFreed else { return }
        let wanted = (reading ? Epoll.in : 0) | (watchingWritable ? Epoll.out : 0)
        guard wanted != interest else { return }
        interest = wanted
        readiness.modify(fd, token: token, events: wanted)
    }

    /// The end of the loop's batch: everything written meanwhile goes out in one write.
    func batchEnded() {
        flushQueued = false
        guard writing, !watchingWritable else { return }
        writable()
    }

    func handle(events: UInt32) {
        if events & Epoll.out != 0 { writable() }
        // An error or hang-up is read too: hiredis finds the EOF or the error and ends the context
        // (a level-triggered HUP nobody reads would come back at every turn).
        if events & (Epoll.in | Epoll.hup | Epoll.err) != 0 { readable() }
    }

    private func readable() {
        guard !isFreed else { return }
        let c = ac.pointee.c
        guard ReadinessSet.readableBytes(fd) > 0, c.flags & REDIS_CONNECTED != 0, c.err == 0, let reader = c.reader, reader.pointee.err == 0
        else {
            // Connecting, EOF, an error or a hang-up: hiredis's own read finds it and ends the
            // context (a level-triggered HUP nobody reads would come back at every turn).
            redisAsyncHandleRead(ac)
            return
        }
        // hiredis's own read takes 16 KiB per read(2) into a stack buffer and appends it to its
        // reader buffer: four reads and a copy for each 64 KiB entry. Here the bytes go from the
        // kernel straight into the reader's buffer, as many as the reply in progress still needs
        // (plus the start of the next one), then hiredis parses them and runs the callbacks.
        // Replies keep arriving while their callbacks run (Redis writes on the other core): read
        // on until the socket is empty, up to 1 MiB per event so that clients get their turn,
        // instead of going back to epoll_wait and Dispatch for each 64 KiB.
        var total = 0
        while total < 1 << 20 && !isFreed {
            // A reply hiredis could not parse ends the context; should it not have yet, its
            // own read reports the error.
            guard ac.pointee.c.err == 0, reader.pointee.err == 0 else { return redisAsyncHandleRead(ac) }
            let want = Self.readSize(reader.pointee)
            let n = Self.read(fd, into: reader, count: want)
            guard n > 0 else {
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }  // empty after all
                // EOF or an error: hiredis's read sees the same and ends the context.
                redisAsyncHandleRead(ac)
                return
            }
            total += n
            redisProcessCallbacks(ac)  // may free the context: isFreed is checked above
            if n < want && ReadinessSet.readableBytes(fd) == 0 { return }  // drained
        }
    }

    /// The next read's size: what the bulk string at the reader's cursor still lacks, if one is
    /// there, plus 16 KiB for the start of the reply after it (hiredis moves the unparsed rest to
    /// the front of its buffer after each reply, so the rest is kept short); at most 1 MiB.
    private static func readSize(_ r: redisReader) -> Int {
        let lookahead = 16_384
        guard let buf = r.buf, r.len > r.pos else { return lookahead }
        // Unparsed bytes: `$<length>\r\n<body>\r\n`, or the same without the `$` when hiredis
        // already took the type byte and waits for the body.
        var i = r.pos
        if buf[i] == UInt8(ascii: "$") { i += 1 }
        var length = 0
        var digits = 0
        while i < r.len, digits < 10, case let d = UInt8(bitPattern: buf[i]), d >= 0x30 && d <= 0x39 {
            length = length * 10 + Int(d - 0x30)
            digits += 1
            i += 1
        }
        guard digits > 0, i + 1 < r.len, buf[i] == 0x0D, buf[i + 1] == 0x0A else { return lookahead }
        let end = i + 2 + length + 2  // after the body's CRLF
        return min(max(end - r.len, 0) + lookahead, 1 << 20)
    }

    /// read(2) into the reader's buffer, growing it first (interop: the buffer is an hiredis sds
    /// string, grown with sdsMakeRoomFor and lengthened with sdsIncrLen, as redisReaderFeed would
    /// after copying; `r->len` follows it). Returns read's result, or -1 when out of memory.
    private static func read(_ fd: Int32, into reader: UnsafeMutablePointer<redisReader>, count: Int) -> Int {
        guard let grown = sdsMakeRoomFor(reader.pointee.buf, count) else { return -1 }
        reader.pointee.buf = grown
        let n = Glibc.read(fd, grown + sdslen(grown), count)
        if n > 0 {
            sdsIncrLen(grown, Int32(n))  // n ≤ 1 MiB
            reader.pointee.len = sdslen(grown)
        }
        return n
    }

    private func writable() {
        guard !isFreed else { return }
        inWrite = true
        redisAsyncHandleWrite(ac)
        inWrite = false
    }

    /// hiredis is freeing the context: every pending callback already ran; it closes its fd and frees
    /// `ac` after this returns.
    private func cleanup() {
        markEnded(reason: ac.pointee.err != 0 ? ac.pointee.errstr.map { String(cString: $0) } : nil)
        isFreed = true
        readiness.remove(fd, token: token)  // still open: hiredis closes it after this returns
        reading = false
        writing = false
        // Defensive: hiredis ran every callback before cleanup, so this is empty.
        while let command = pending.popFirst() {
            readiness.expect(-1)
            command.completion.fail(failure)
        }
        // hiredis still reads `ac->data` after cleanup; give its retain back once it is done.
        queue.async { Unmanaged.passUnretained(self).release() }
    }

    /// Records that hiredis ended the context on its own (error, EOF, refused connect) and tells the owner once.
    private func markEnded(reason: String? = nil) {
        guard !hasEnded else { return }
        hasEnded = true
        owner.contextDidEnd(self, reason: reason ?? errorTextIfAny())
    }

    private func errorTextIfAny() -> String? {
        guard !isFreed, ac.pointee.err != 0 || ac.pointee.c.err != 0 else { return nil }
        return errorText(ac.pointee.c)
    }
}

/// The reply callback for every command; finds the context through `ac->data`.
private func gatewayRedisReplyCallback(
    _ ac: UnsafeMutablePointer<redisAsyncContext>?, _ reply: UnsafeMutableRawPointer?, _ privdata: UnsafeMutableRawPointer?
) {
    guard let ac, let data = ac.pointee.data else { return }
    Unmanaged<HiredisContext>.fromOpaque(data).takeUnretainedValue().didReceive(reply)
}

/// `redisContext.errstr` (a `char[128]`) as a String.
private func errorText(_ c: redisContext) -> String {
    withUnsafeBytes(of: c.errstr) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return String(decoding: bytes, as: UTF8.self)
    }
}


/// hiredis's reply-object functions with one change: the top-level bulk string answering a `GET`
/// is copied once, from hiredis's read buffer into the `[UInt8]` the gateway keeps (decoding
/// slices the body out of it and the client write sends that), instead of into a `malloc`'d
/// `reply->str` that ``PendingCommand`` then copied again.
///
/// Interop (hence the raw pointers): hiredis calls `createString` with the reader's `privdata`
/// (the context, unretained: hiredis frees its reader before it gives the context's retain back)
/// while it parses, and runs the reply's callback right after it built the reply. Such a reply is a
/// `redisReply` of type `REDIS_REPLY_STRING` with `str == NULL` and the real `len`, which
/// `freeReplyObject` frees like any other (free(NULL) is a no-op). Every other object goes through
/// hiredis's own functions.
enum BulkStringSink {
    /// hiredis's default functions (one static table, found through a reader made for the purpose),
    /// and a copy of them with `createString` replaced; made once, never freed.
    nonisolated(unsafe) private static let tables: (defaults: redisReplyObjectFunctions, sink: UnsafeMutablePointer<redisReplyObjectFunctions>)? = {
        guard let probe = redisReaderCreate() else { return nil }
        defer { redisReaderFree(probe) }
        guard let defaults = probe.pointee.fn?.pointee, defaults.createString != nil else { return nil }
        let sink = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        sink.initialize(to: defaults)
        sink.pointee.createString = sinkCreateString
        return (defaults, sink)
    }()

    /// Makes `reader` build its replies with the sink's functions, for `context`.
    static func install(on reader: UnsafeMutablePointer<redisReader>, context: UnsafeMutableRawPointer) {
        guard let tables else { return }  // out of memory at start: hiredis's own copies then
        reader.pointee.fn = tables.sink
        reader.pointee.privdata = context
    }

    fileprivate static func fallback(
        _ task: UnsafePointer<redisReadTask>?, _ str: UnsafeMutablePointer<CChar>?, _ len: Int
    ) -> UnsafeMutableRawPointer? {
        tables!.defaults.createString!(task, str, len)
    }
}

private func sinkCreateString(
    _ task: UnsafePointer<redisReadTask>?, _ str: UnsafeMutablePointer<CChar>?, _ len: Int
) -> UnsafeMutableRawPointer? {
    guard let task, task.pointee.parent == nil, task.pointee.type == REDIS_REPLY_STRING,
        let data = task.pointee.privdata
    else { return BulkStringSink.fallback(task, str, len) }
    let context = Unmanaged<HiredisContext>.fromOpaque(data).takeUnretainedValue()
    context.sunkBulk = nil
    guard len > 0, let str, context.nextReplyIsBulkString else { return BulkStringSink.fallback(task, str, len) }
    guard let raw = calloc(1, MemoryLayout<redisReply>.size) else { return nil }  // nil: hiredis reports OOM
    let reply = raw.bindMemory(to: redisReply.self, capacity: 1)
    reply.pointee.type = REDIS_REPLY_STRING
    reply.pointee.len = len  // str stays NULL (calloc): the bytes are in `sunkBulk`
    let bytes = [UInt8](unsafeUninitializedCapacity: len) { buffer, count in
        memcpy(buffer.baseAddress!, str, len)
        count = len
    }
    context.sunkBulk = (raw, bytes)
    return raw
}
