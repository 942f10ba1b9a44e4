internal import CHiredis
import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One blocking hiredis connection (`redisContext`) for the long-lived connections that own a
/// thread: ``RedisSubscriber`` and ``RedisStreamConsumer``.
///
/// Waiting for a reply is `poll(2)` with a deadline, and hiredis reads only once bytes are there.
/// Why not hiredis's own read timeout: in 0.14.1 a timed-out blocking read sets `REDIS_ERR_IO` on
/// the context, which is unusable afterwards, so "nothing for 5 s" could not be told apart from
/// "dead" without losing the connection. The socket timeout (`redisSetTimeout`) is still set: it
/// bounds writes (a full send buffer towards a vanished peer) and is the backstop for reads.
/// TCP keepalive (`redisEnableKeepAlive`: first probe after 15 s idle in 0.14.1, fixed there) lets
/// the kernel find a dead peer on a connection that has nothing in flight.
///
/// Not thread-safe: used only on its owner's thread, except ``fd``, which `stop()` may `shutdown`
/// from another thread to wake a `poll` (the fd stays open until ``close()``).
final class BlockingRedisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    private let arguments = CommandArguments()
    /// The socket, for `shutdown(2)` from `stop()`.
    let fd: Int32

    private init(context: UnsafeMutablePointer<redisContext>) {
        self.context = context
        self.fd = context.pointee.fd
    }

    deinit { redisFree(context) }

    /// Connects (`redisConnectWithTimeout`, or `redisConnectUnixWithTimeout` for a unix socket),
    /// sets the socket timeout to `replyTimeout`, enables TCP keepalive, and sends `AUTH` and
    /// `SELECT` when `configuration` asks for them.
    static func connect(
        _ configuration: RedisConfiguration, replyTimeout: Duration
    ) -> Result<BlockingRedisConnection, RedisError> {
        let timeout = timeval(configuration.connectTimeout)
        let made = configuration.unixSocketPath.map { redisConnectUnixWithTimeout($0, timeout) }
            ?? redisConnectWithTimeout(configuration.host, Int32(clamping: configuration.port), timeout)
        guard let context = made else { return .failure(.connectFailed("redisConnectWithTimeout: out of memory")) }
        let connection = BlockingRedisConnection(context: context)  // frees the context from here on
        if context.pointee.err != 0 { return .failure(.connectFailed(connection.errorText)) }
        _ = redisSetTimeout(context, timeval(replyTimeout))
        // Keepalive is a TCP option: a unix socket has no peer that can vanish unnoticed.
        if configuration.unixSocketPath == nil { _ = redisEnableKeepAlive(context) }
        if let password = configuration.password {
            var auth: [[UInt8]] = [Array("AUTH".utf8)]
            if let user = configuration.username { auth.append(Array(user.utf8)) }
            auth.append(Array(password.utf8))
            if case .failure(let error) = connection.command(auth, timeout: replyTimeout) { return .failure(error) }
        }
        if configuration.database != 0 {
            let select = [Array("SELECT".utf8), Array(String(configuration.database).utf8)]
            if case .failure(let error) = connection.command(select, timeout: replyTimeout) { return .failure(error) }
        }
        return .success(connection)
    }

    /// Sends one command and waits up to `timeout` for its reply. An error reply is
    /// ``RedisError/server(_:)``; no reply in time is ``RedisError/timeout`` (the connection must
    /// then be dropped: a late reply would be taken for the next command's).
    func command(_ argv: [[UInt8]], timeout: Duration) -> Result<RedisReply, RedisError> {
        if case .failure(let error) = send(argv) { return .failure(error) }
        switch readReply(until: DispatchTime.now().uptimeNanoseconds &+ timeout.clampedNanoseconds) {
        case .failure(let error): return .failure(error)
        case .success(nil): return .failure(.timeout)
        case .success(.error(let message)?): return .failure(.server(message))
        case .success(let reply?): return .success(reply)
        }
    }

    /// Formats `argv` (`redisAppendCommandArgv`) and writes it out (`redisBufferWrite` until done;
    /// each write is bounded by the socket timeout).
    func send(_ argv: [[UInt8]]) -> Result<Void, RedisError> {
        arguments.reset()
        for argument in argv { arguments.append(argument) }
        let appended = arguments.withArgv { argc, pointers, lengths in
            redisAppendCommandArgv(context, argc, pointers, lengths)
        }
        guard appended == REDIS_OK else { return .failure(.disconnected) }
        var done: Int32 = 0
        repeat {
            guard redisBufferWrite(context, &done) == REDIS_OK else { return .failure(.disconnected) }
        } while done == 0
        return .success(())
    }

    /// The next reply, or `nil` if none is complete by `deadline` (uptime nanoseconds). Replies
    /// hiredis has already buffered come first, without a syscall. A top-level error reply is
    /// returned as ``RedisReply/error(_:)``. Fails with ``RedisError/disconnected`` when the
    /// connection breaks (or was shut down by `stop()`).
    func readReply(until deadline: UInt64) -> Result<RedisReply?, RedisError> {
        while true {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReplyFromReader(context, &raw) == REDIS_OK else {
                return .failure(.protocolError(errorText))
            }
            if let raw {
                // Copied out at once: the reply is freed right after.
                let reply = RedisReply(copying: raw.assumingMemoryBound(to: redisReply.self))
                freeReplyObject(raw)
                return .success(reply)
            }
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= deadline { return .success(nil) }
            var watched = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(clamping: (deadline - now + 999_999) / 1_000_000)
            let ready = poll(&watched, 1, milliseconds)
            if ready < 0 {
                if errno == EINTR { continue }
                return .failure(.disconnected)
            }
            if ready == 0 { continue }  // the deadline is checked again above
            // Readable, hung up or shut down: hiredis reads what is there or reports EOF.
            guard redisBufferRead(context) == REDIS_OK else { return .failure(.disconnected) }
        }
    }

    /// hiredis's error text for the context (`errstr`, a `char[128]`).
    var errorText: String {
        withUnsafeBytes(of: context.pointee.errstr) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

extension timeval {
    /// A `timeval` from a duration (negative counts as zero).
    init(_ duration: Duration) {
        let nanoseconds = duration.clampedNanoseconds
        self.init(tv_sec: Int(clamping: nanoseconds / 1_000_000_000), tv_usec: Int(nanoseconds % 1_000_000_000 / 1_000))
    }
}
