import Dispatch
import Logging
import Synchronization

extension RedisError {
    /// When Redis refused the connection's settings (`AUTH` or `SELECT` in the handshake) rather
    /// than failed, what to change; nil for any other error. Retrying cannot fix these: someone
    /// has to edit the config (or the server's), so they are worth one clear line, not a stream.
    public var settingsHint: String? {
        guard let message = serverMessage?.uppercased() else { return nil }
        if message.hasPrefix("WRONGPASS") || message.contains("INVALID PASSWORD") {
            return "the password (or the ACL user) is wrong: check the password in redis.url or redis.password_file"
        }
        if message.hasPrefix("NOAUTH") {
            return "this Redis requires a password: put it in redis.url (redis://:PASSWORD@host) or in redis.password_file"
        }
        if message.contains("WITHOUT ANY PASSWORD CONFIGURED") || message.contains("NO PASSWORD IS SET") {
            return "this Redis has no password set: remove the password from redis.url / redis.password_file, or set requirepass on the server"
        }
        if message.contains("DB INDEX IS OUT OF RANGE") {
            return "this Redis has no such database: set redis.url's /N below the server's `databases` setting (16 unless changed)"
        }
        if message.hasPrefix("NOPERM") {
            return "the ACL user may not run the gateway's commands: grant them on the server, or use another user in redis.url"
        }
        return nil
    }
}

/// Logs handshake refusals once, then at most once per `interval` for the same address and
/// message, however many connections (every loop's, the subscriber's, the stream consumer's)
/// retry meanwhile: a wrong password used to print a line twice a second per connection forever.
/// Shared by every connection of the process; the lock guards only the table.
final class HandshakeRefusalLog: Sendable {
    static let shared = HandshakeRefusalLog(intervalNanoseconds: 60_000_000_000)

    private struct Entry {
        var nextAllowed: UInt64
        var suppressed: Int
    }

    private let intervalNanoseconds: UInt64
    private let entries = Mutex<[String: Entry]>([:])

    init(intervalNanoseconds: UInt64) {
        self.intervalNanoseconds = intervalNanoseconds
    }

    /// Whether to log now, and how many were held back since the last line.
    func admit(_ key: String, now: UInt64) -> (log: Bool, suppressed: Int) {
        entries.withLock { entries in
            if var entry = entries[key] {
                guard now >= entry.nextAllowed else {
                    entry.suppressed += 1
                    entries[key] = entry
                    return (false, 0)
                }
                entries[key] = Entry(nextAllowed: now &+ intervalNanoseconds, suppressed: 0)
                return (true, entry.suppressed)
            }
            // A handful of distinct messages per address at most; bound it anyway.
            if entries.count >= 256 { entries.removeAll() }
            entries[key] = Entry(nextAllowed: now &+ intervalNanoseconds, suppressed: 0)
            return (true, 0)
        }
    }

    /// Logs `error` (a refused `AUTH`/`SELECT`) for a connection to `address` unless the same
    /// refusal was logged within the interval. Settings problems are errors, naming the fix;
    /// anything else (`LOADING`, `BUSY`) is a warning.
    func log(_ error: RedisError, address: String, connection: String, logger: Logger) {
        let (admitted, suppressed) = admit("\(address) \(error)", now: DispatchTime.now().uptimeNanoseconds)
        guard admitted else { return }
        var metadata: Logger.Metadata = [
            "redis.address": "\(address)", "redis.connection": "\(connection)",
            "redis.error": "\(error.serverMessage ?? "\(error)")",
        ]
        if suppressed > 0 { metadata["redis.repeated"] = "\(suppressed)" }
        if let hint = error.settingsHint {
            metadata["redis.fix"] = "\(hint)"
            logger.error("redis refuses the configured settings; retrying (logged at most once a minute)", metadata: metadata)
        } else {
            logger.warning("redis refused the handshake; retrying (logged at most once a minute)", metadata: metadata)
        }
    }
}
