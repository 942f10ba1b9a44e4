internal import CHiredis
import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One hiredis async context, the two Dispatch sources that drive it, and the commands pending on it.
///
/// One per TCP connection: a reconnect makes a new one, so a late callback from an old context can
/// never complete a command of a new one. Touched only on the owner's queue.
///
/// Lifetime (see shared/FACTS.md, "hiredis 0.14.1 async on Dispatch"):
/// - hiredis holds one retain, taken in ``connect(owner:configuration:queue:)`` and stored in `ac->data` and
///   `ac->ev.data`. The `cleanup` hook gives it back *asynchronously*: hiredis still uses the context
///   after `cleanup` returns (it would call `onDisconnect` then). `cleanup` is the one signal that
///   comes for every end, a refused connect included, so no `onDisconnect` callback is set.
/// - The sources watch a `dup()` of hiredis's fd, because hiredis closes its fd right after `cleanup`;
///   the dup is closed in the second source's cancel handler.
/// - A source is only released after it was cancelled *and* resumed; releasing a suspended or
///   never-resumed source crashes in libdispatch.
/// - The context strongly references its ``RedisConnection``, so the connection lives at least as
///   long as hiredis holds either of them.
final class HiredisContext: @unchecked Sendable {
    let owner: RedisConnection
    private let ac: UnsafeMutablePointer<redisAsyncContext>
    private let queue: DispatchQueue
    private var readSource: DispatchSourceRead?
    private var writeSource: DispatchSourceWrite?
    private var reading = false
    private var writing = false

    /// Commands written and not yet answered, oldest first. hiredis answers in order, so every reply
    /// callback (or nil-reply callback while the context is freed) pops the first one.
    private(set) var pending = RingBuffer<PendingCommand>(initialCapacity: 64)

    /// No more commands may be written: hiredis is freeing the context or was asked to.
    private(set) var hasEnded = false
    /// `cleanup` ran: `ac` is freed (or about to be); never touch it again.
    private var isFreed = false
    /// Inside `onConnect`, where hiredis does not defer `redisAsyncFree` (it would free under its own feet).
    private var inConnectCallback = false
    /// The error given to pending commands when the context is freed without their replies.
    private var failure: RedisError = .disconnected

    private init(owner: RedisConnection, ac: UnsafeMutablePointer<redisAsyncContext>, queue: DispatchQueue, fd: Int32) {
        self.owner = owner
        self.ac = ac
        self.queue = queue
        let read = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        let write = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        let closer = CloseAfterCancels(fd: fd, sources: 2)
        read.setCancelHandler { closer.sourceCancelled() }
        write.setCancelHandler { closer.sourceCancelled() }
        readSource = read
        writeSource = write
        // Strong captures: the cycle source → handler → self is broken when the source is cancelled
        // (libdispatch drops its handlers then), which `cleanup` always does.
        read.setEventHandler { self.readable() }
        write.setEventHandler { self.writable() }
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
        owner: RedisConnection, configuration: RedisConfiguration, queue: DispatchQueue
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
        let fd = dup(ac.pointee.c.fd)
        guard fd >= 0 else {
            let reason = "dup: \(String(cString: strerror(errno)))"
            redisAsyncFree(ac)
            return .failure(ConnectFailure(reason: reason))
        }
        let context = HiredisContext(owner: owner, ac: ac, queue: queue, fd: fd)
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

    fileprivate func didReceive(_ reply: UnsafeMutableRawPointer?) {
        guard let command = pending.popFirst() else {
            assertionFailure("hiredis answered a command that is not pending")
            return
        }
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
        owner.contextDidReply(to: command)
        command.completion.complete(with: reply)
    }

    private func didConnect(_ ac: UnsafePointer<redisAsyncContext>, status: Int32) {
        if status == REDIS_OK {
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
        guard on != reading, let source = readSource else { return }
        reading = on
        if on { source.resume() } else { source.suspend() }
    }

    private func setWriting(_ on: Bool) {
        guard on != writing, let source = writeSource else { return }
        writing = on
        if on { source.resume() } else { source.suspend() }
    }

    private func readable() {
        guard !isFreed else { return }
        // hiredis reads at most 16 KiB per call. Drain what the kernel already holds in this one
        // event, instead of one Dispatch wake-up per 16 KiB (a 64 KiB entry took four of them).
        let pending = Int(readSource?.data ?? 0)
        var rounds = max(1, min(64, (pending + 16_383) / 16_384))
        while rounds > 0 && !isFreed {
            redisAsyncHandleRead(ac)
            rounds -= 1
        }
    }

    private func writable() {
        guard !isFreed else { return }
        redisAsyncHandleWrite(ac)
    }

    /// hiredis is freeing the context: every pending callback already ran; it closes its fd and frees
    /// `ac` after this returns.
    private func cleanup() {
        markEnded(reason: ac.pointee.err != 0 ? ac.pointee.errstr.map { String(cString: $0) } : nil)
        isFreed = true
        if let source = readSource {
            source.cancel()
            if !reading { source.resume() }  // a cancelled source must be resumed before release
        }
        if let source = writeSource {
            source.cancel()
            if !writing { source.resume() }
        }
        readSource = nil
        writeSource = nil
        reading = false
        writing = false
        // Defensive: hiredis ran every callback before cleanup, so this is empty.
        while let command = pending.popFirst() { command.completion.fail(failure) }
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

/// Closes a dup'ed fd once every source watching it has run its cancel handler.
private final class CloseAfterCancels {
    private let fd: Int32
    private var remaining: Int

    init(fd: Int32, sources: Int) {
        self.fd = fd
        self.remaining = sources
    }

    func sourceCancelled() {
        remaining -= 1
        if remaining == 0 { _ = close(fd) }
    }
}
