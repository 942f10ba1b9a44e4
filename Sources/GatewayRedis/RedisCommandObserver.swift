/// The kind of command a reply answered, as a metric label: a small fixed set, never the command's
/// arguments (keys hold paths and identity digests).
public enum RedisCommandKind: Int, Sendable, CaseIterable {
    /// ``RedisConnection/get(_:completion:)``.
    case get
    /// ``RedisConnection/set(_:_:ttlMilliseconds:completion:)``.
    case set
    /// Anything sent with ``RedisConnection/send(_:completion:)``.
    case other

    public var name: String {
        switch self {
        case .get: "get"
        case .set: "set"
        case .other: "other"
        }
    }
}

/// Told of every reply a ``RedisConnection`` receives for a caller's command, on its queue, with the
/// time since the command was written. Not told of commands that failed without a reply.
public protocol RedisCommandObserver: AnyObject, Sendable {
    func redisReplied(_ kind: RedisCommandKind, nanoseconds: UInt64)
}

/// A cluster redirection a ``RedisClusterConnection`` followed, as a metric label.
public enum RedisRedirectKind: Int, Sendable, CaseIterable {
    /// `-MOVED`: the slot map was out of date.
    case moved
    /// `-ASK`: the key's slot was migrating.
    case ask

    public var name: String {
        switch self {
        case .moved: "moved"
        case .ask: "ask"
        }
    }
}

/// Told of every cluster redirection followed, on the cluster connection's queue.
public protocol RedisRedirectObserver: AnyObject, Sendable {
    func redisRedirected(_ kind: RedisRedirectKind)
}
