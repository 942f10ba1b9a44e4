import Logging

/// What a tracking listener tells its owner, on the listener's own thread, in order.
public enum RedisTrackingEvent: Sendable, Equatable {
    /// Tracking is on and the invalidation channel subscribed: from now on every change under the
    /// prefixes is reported. What was cached before may have changed unheard.
    case established
    /// These keys changed in Redis (written, deleted, expired, evicted).
    case invalidated([[UInt8]])
    /// Everything may have changed (`FLUSHALL`, `FLUSHDB`).
    case flushed
    /// The connection is gone: changes are not heard until the next ``established``.
    case lost
    /// Redis refused `CLIENT TRACKING` (older than 6, or an ACL without `CLIENT`), with its
    /// message. The listener keeps trying, with the usual backoff.
    case refused(String)
}

extension RedisSubscriber {
    /// The channel Redis sends RESP2 tracking invalidations on.
    public static let trackingChannel = "__redis__:invalidate"

    /// A listener for Redis server-assisted client-side caching in broadcasting mode, on one
    /// connection of its own: on each new connection it asks its `CLIENT ID`, turns on
    /// `CLIENT TRACKING on REDIRECT <its own id> BCAST PREFIX <p>…` and subscribes to
    /// `__redis__:invalidate`, so that Redis sends it every change of a key under `prefixes`,
    /// whoever made it (this instance too: `NOLOOP` would only skip this connection's own writes,
    /// and it writes none).
    ///
    /// Why BCAST and one connection: in the default mode Redis remembers which keys each reading
    /// connection read, so every connection that GETs would need tracking re-enabled on each
    /// reconnect and re-pointed at a new listener whenever that one reconnects — and in RESP2
    /// nothing tells the reader that its `REDIRECT` target vanished. Here the connection that
    /// tracks is the one that listens: losing it is losing tracking, at once and visibly.
    ///
    /// - Parameter onEvent: called on the listener's thread, in order.
    public static func tracking(
        configuration: RedisConfiguration, prefixes: [String], liveness: RedisLiveness = RedisLiveness(),
        logger: Logger, onEvent: @escaping @Sendable (RedisTrackingEvent) -> Void
    ) -> RedisSubscriber {
        RedisSubscriber(
            configuration: configuration, channel: trackingChannel, liveness: liveness, logger: logger,
            prelude: { connection in
                let id: Int64
                switch connection.command([Array("CLIENT".utf8), Array("ID".utf8)], timeout: liveness.replyTimeout) {
                case .success(.integer(let value)): id = value
                case .success(let other): return .failure(.protocolError("CLIENT ID answered \(other)"))
                case .failure(let error):
                    if let message = error.serverMessage { onEvent(.refused(message)) }
                    return .failure(error)
                }
                var tracking = ["CLIENT", "TRACKING", "on", "REDIRECT", String(id), "BCAST"].map { Array($0.utf8) }
                for prefix in prefixes { tracking += [Array("PREFIX".utf8), Array(prefix.utf8)] }
                switch connection.command(tracking, timeout: liveness.replyTimeout) {
                case .success: return .success(())
                case .failure(let error):
                    if let message = error.serverMessage { onEvent(.refused(message)) }
                    return .failure(error)
                }
            },
            onSubscribed: { _ in onEvent(.established) },
            onLost: { onEvent(.lost) },
            onPayload: { payload in
                switch payload {
                case .array(let keys):
                    let names = keys.compactMap { key -> [UInt8]? in if case .string(let name) = key { name } else { nil } }
                    onEvent(.invalidated(names))
                case .null:
                    onEvent(.flushed)
                default:
                    break
                }
            })
    }
}
