/// Where a ``RedisConnection`` connects and how it behaves when Redis is slow or gone.
///
/// Every field has a default suited to a cache on the same host: a cache that answers late is
/// worth less than a miss, so the timeouts are short and reconnecting is quick.
public struct RedisConfiguration: Sendable, Equatable {
    /// Host name or IP address. Resolved with `getaddrinfo` on the owner queue at every connect,
    /// so prefer an IP literal. Default: `"127.0.0.1"`.
    public var host: String

    /// TCP port. Default: `6379`.
    public var port: Int

    /// A unix domain socket to connect to instead of ``host`` and ``port`` (`redisConnectUnix`),
    /// e.g. `/run/redis/redis.sock`. Default: `nil` (TCP).
    public var unixSocketPath: String?

    /// Database index selected with `SELECT` after connecting; `0` sends no `SELECT`. Default: `0`.
    public var database: Int

    /// ACL user name sent with `AUTH username password`; needs ``password``. Default: `nil`.
    public var username: String?

    /// Password sent with `AUTH` as the first command of every connection. Default: `nil` (no `AUTH`).
    public var password: String?

    /// How long a command may wait for its reply. When the oldest pending command is older than
    /// this, every pending command fails with ``RedisError/timeout`` and the connection is dropped
    /// and re-established (a late reply could not be matched to its command otherwise).
    /// Default: 250 ms.
    public var commandTimeout: Duration

    /// How long connecting may take: from the TCP connect until the handshake (`AUTH` and `SELECT`
    /// when configured, then `PING`) is answered, which proves the server answers; a paused server
    /// still accepts TCP connects. Default: 500 ms.
    public var connectTimeout: Duration

    /// Delay before the first reconnect attempt; it doubles with each failed attempt up to
    /// ``reconnectBackoffMax`` and starts over once a connection is ready. Default: 50 ms.
    public var reconnectBackoffMin: Duration

    /// Longest delay between reconnect attempts: after Redis comes back, the cache is used again
    /// within about this long. Default: 1 s.
    public var reconnectBackoffMax: Duration

    /// The seed nodes of a Redis Cluster (``host`` and ``port`` are then the first one's), for
    /// the clients that find the node owning a key themselves (``RedisStreamConsumer``); empty
    /// for a standalone Redis. ``RedisConnection`` ignores it. Default: empty.
    public var clusterSeeds: [ClusterNode] = []

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        database: Int = 0,
        username: String? = nil,
        password: String? = nil,
        commandTimeout: Duration = .milliseconds(250),
        connectTimeout: Duration = .milliseconds(500),
        reconnectBackoffMin: Duration = .milliseconds(50),
        reconnectBackoffMax: Duration = .seconds(1),
        unixSocketPath: String? = nil
    ) {
        self.host = host
        self.port = port
        self.database = database
        self.username = username
        self.password = password
        self.commandTimeout = commandTimeout
        self.connectTimeout = connectTimeout
        self.reconnectBackoffMin = reconnectBackoffMin
        self.reconnectBackoffMax = reconnectBackoffMax
        self.unixSocketPath = unixSocketPath
    }

    /// Where it connects, for logs and messages: `host:port`, or the unix socket's path.
    public var address: String {
        unixSocketPath ?? (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to `0...UInt64.max` (negative durations count as zero).
    var clampedNanoseconds: UInt64 {
        guard self > .zero else { return 0 }
        let (seconds, attoseconds) = components
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (total, overflow2) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return overflow2 ? .max : total
    }
}
