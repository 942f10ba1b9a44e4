/// Why a Redis command failed.
///
/// An open set: match on the static members (`error == .timeout`) or on ``shortDescription``,
/// never exhaustively, so that new cases can be added.
public struct RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    private enum Code: Hashable, Sendable {
        case notConnected
        case connectFailed(String)
        case timeout
        case disconnected
        case closed
        case protocolError(String)
        case invalidCommand(String)
        case server(String)
    }

    private let code: Code

    private init(_ code: Code) { self.code = code }

    /// No connection is ready (connecting, or waiting to reconnect); the command was not sent.
    public static let notConnected = RedisError(.notConnected)

    /// A blocking connection (``RedisSubscriber``, ``RedisStreamConsumer``) could not be made:
    /// refused, unreachable, or the connect timed out.
    public static func connectFailed(_ detail: String) -> RedisError { RedisError(.connectFailed(detail)) }

    /// The command was not answered within ``RedisConfiguration/commandTimeout``, or it was pending
    /// on a connection dropped because another command timed out. It may or may not have run.
    public static let timeout = RedisError(.timeout)

    /// The connection was lost while the command was pending. It may or may not have run.
    public static let disconnected = RedisError(.disconnected)

    /// ``RedisConnection/close()`` was called before the command was answered, or before it was sent.
    public static let closed = RedisError(.closed)

    /// The reply did not have the shape the command promises (for example an integer to `GET`).
    public static func protocolError(_ detail: String) -> RedisError { RedisError(.protocolError(detail)) }

    /// The command was refused before sending: no arguments, an invalid TTL, or a command that
    /// would change the connection's protocol state (`SUBSCRIBE`, `MONITOR`, `HELLO`, `RESET`, …).
    public static func invalidCommand(_ detail: String) -> RedisError { RedisError(.invalidCommand(detail)) }

    /// Redis answered with an error reply, such as `WRONGTYPE …` or `NOAUTH …`.
    public static func server(_ message: String) -> RedisError { RedisError(.server(message)) }

    /// The server's error message when this is a ``server(_:)`` error.
    public var serverMessage: String? {
        if case .server(let message) = code { return message }
        return nil
    }

    /// A short, bounded identifier of the kind of error, suitable as a metric label.
    public var shortDescription: String {
        switch code {
        case .notConnected: "not_connected"
        case .connectFailed: "connect_failed"
        case .timeout: "timeout"
        case .disconnected: "disconnected"
        case .closed: "closed"
        case .protocolError: "protocol_error"
        case .invalidCommand: "invalid_command"
        case .server: "server_error"
        }
    }

    public var description: String {
        switch code {
        case .notConnected: "redis: not connected"
        case .connectFailed(let detail): "redis: cannot connect: \(detail)"
        case .timeout: "redis: command timed out"
        case .disconnected: "redis: connection lost while the command was pending"
        case .closed: "redis: connection closed"
        case .protocolError(let detail): "redis: unexpected reply: \(detail)"
        case .invalidCommand(let detail): "redis: invalid command: \(detail)"
        case .server(let message): "redis: server error: \(message)"
        }
    }
}
