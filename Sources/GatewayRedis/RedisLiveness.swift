/// How a long-lived blocking connection (``RedisSubscriber``, ``RedisStreamConsumer``) finds out
/// that Redis went silent without closing it: a partition, a paused or frozen server, a dropped
/// NAT entry.
///
/// TCP alone does not notice: with nothing in flight the connection looks idle forever, and with
/// unacknowledged data the kernel retransmits for about 15 minutes before giving up. So the
/// connection itself proves the server answers: a `PING` after ``pingInterval`` of silence, and
/// every reply awaited at most ``replyTimeout``. TCP keepalive (hiredis 0.14.1's fixed 15 s) is
/// enabled as well, for the kernel's sake.
public struct RedisLiveness: Sendable, Equatable {
    /// Silence after which a subscribed connection sends a `PING` (in RESP2 subscribed mode the
    /// answer is `["pong", ""]`). Any message or reply resets it. Default: 5 s.
    public var pingInterval: Duration

    /// How long any reply may take (the `PING`'s, a command's, or an `XREADGROUP`'s beyond its
    /// `BLOCK` time) before the connection is taken for dead, logged once, dropped and made again.
    /// Also the socket's send/receive timeout (`redisSetTimeout`). Default: 2 s.
    public var replyTimeout: Duration

    public init(pingInterval: Duration = .seconds(5), replyTimeout: Duration = .seconds(2)) {
        self.pingInterval = pingInterval
        self.replyTimeout = replyTimeout
    }
}
