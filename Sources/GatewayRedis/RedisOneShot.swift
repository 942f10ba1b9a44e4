/// One command on a connection of its own, blocking: for command-line tools (`gateway purge`),
/// which send one command and exit. Connects, sends `AUTH`/`SELECT` when `configuration` asks
/// for them, sends `argv`, waits for the reply, and closes the connection.
///
/// Not for the request path: it blocks the calling thread for up to
/// ``RedisConfiguration/connectTimeout`` plus ``RedisConfiguration/commandTimeout``.
public enum RedisOneShot {
    /// Sends `argv` (the command and its arguments, as bytes) and returns the reply.
    ///
    /// - Parameters:
    ///   - argv: The command name and its arguments, e.g. `XADD stream * event {...}`.
    ///   - configuration: Where to connect; `connectTimeout` bounds the connect and the handshake,
    ///     `commandTimeout` the wait for the reply.
    /// - Throws: ``RedisError/connectFailed(_:)`` when Redis is unreachable,
    ///   ``RedisError/server(_:)`` for an error reply, ``RedisError/timeout`` when no reply came in
    ///   time, ``RedisError/invalidCommand(_:)`` for an empty `argv`.
    public static func send(_ argv: [[UInt8]], configuration: RedisConfiguration) throws(RedisError) -> RedisReply {
        guard !argv.isEmpty else { throw .invalidCommand("no arguments") }
        let connection: BlockingRedisConnection
        // On a cluster, a keyed command (`XADD`) goes to its slot's master; a keyless one
        // (`PUBLISH`, `PING`) to the first seed.
        var target = Result<RedisConfiguration, RedisError>.success(configuration)
        if let key = ClusterSlots.routingKey(of: argv) {
            target = configuration.locatingClusterNode(owning: key, replyTimeout: configuration.connectTimeout)
        }
        switch target.flatMap({ BlockingRedisConnection.connect($0, replyTimeout: configuration.connectTimeout) }) {
        case .success(let c): connection = c
        case .failure(let error): throw error
        }
        switch connection.command(argv, timeout: configuration.commandTimeout) {
        case .success(let reply): return reply
        case .failure(let error): throw error
        }
    }
}
