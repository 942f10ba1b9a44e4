/// A Redis reply (RESP2), copied out of hiredis's memory.
public enum RedisReply: Sendable, Equatable {
    /// A bulk string: arbitrary bytes.
    case string([UInt8])
    /// A simple string such as `OK` or `PONG`.
    case status(String)
    case integer(Int64)
    /// A nil bulk string or nil array.
    case null
    case array([RedisReply])
    /// An error reply nested inside an array (for example in an `EXEC` result). A top-level error
    /// reply is delivered as `.failure(RedisError.server(message))` instead.
    case error(String)
}
