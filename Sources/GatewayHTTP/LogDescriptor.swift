#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A descriptor that log lines are written to with `write(2)`: stdout, stderr, or a file opened
/// with `O_APPEND`.
///
/// ``reopen()`` (SIGUSR1, after logrotate renamed the file) opens the path anew and `dup2`s the
/// new file onto the same descriptor number, which the kernel does atomically: a writer on
/// another thread writes either to the old file or to the new one, never to a closed or reused
/// descriptor, so no lock is needed between writers and the reopen.
public final class LogDescriptor: Sendable {
    /// The file's path; nil for stdout and stderr (nothing to reopen).
    public let path: String?
    private let fd: Int32

    public static let standardOutput = LogDescriptor(fd: STDOUT_FILENO, path: nil)
    public static let standardError = LogDescriptor(fd: STDERR_FILENO, path: nil)

    private init(fd: Int32, path: String?) {
        self.fd = fd
        self.path = path
    }

    /// Opens (creating, mode 0640) `path` for appending.
    public init(path: String) throws(SystemError) {
        self.path = path
        self.fd = try Self.open(path)
    }

    deinit {
        if path != nil { _ = Glibc.close(fd) }
    }

    private static func open(_ path: String) throws(SystemError) -> Int32 {
        while true {
            let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw SystemError("open \(path)", errno: errno)
        }
    }

    /// Makes the descriptor point at a freshly opened `path` (no-op for stdout and stderr). On
    /// failure the old file stays in use.
    public func reopen() throws(SystemError) {
        guard let path else { return }
        let fresh = try Self.open(path)
        defer { _ = Glibc.close(fresh) }
        while dup2(fresh, fd) < 0 {
            if errno == EINTR { continue }
            throw SystemError("dup2 \(path)", errno: errno)
        }
    }

    /// Writes all of `bytes`, retrying `EINTR` and short writes.
    /// - Returns: nil when everything was written, or the error (`ENOSPC`, `EIO`, …), after which
    ///   the rest of the bytes are dropped.
    /// - Note: This blocks for as long as the kernel takes; a slow pipe blocks the caller.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer) -> SystemError? {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return SystemError("write \(path ?? (fd == STDOUT_FILENO ? "stdout" : "stderr"))", errno: errno)
            }
            if n == 0 { return SystemError("write", errno: EIO) }
            offset += n
        }
        return nil
    }

    @discardableResult
    public func write(_ bytes: [UInt8]) -> SystemError? {
        bytes.withUnsafeBytes { write($0) }
    }
}
