import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The pid file of `serve --pid-file` / `pid_file:`, read by `gateway reload` (as nginx's).
enum PidFile {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Writes this process's ID to `path`. A file naming a live gateway other than this one is
    /// refused (two gateways would fight over reloads); a stale one is overwritten.
    static func claim(_ path: String) throws(Failure) {
        if let pid = try? read(path), pid != getpid(), isAlive(pid), processName(pid) == "gateway" {
            throw Failure(description: "\(path) names a running gateway (pid \(pid)): stop it first, or use another pid file")
        }
        do {
            try "\(getpid())\n".write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw Failure(description: "cannot write the pid file \(path): \(reason(of: error))")
        }
    }

    /// Removes `path` at a clean exit, if it still names this process (a newer gateway may
    /// have claimed it meanwhile).
    static func release(_ path: String) {
        if (try? read(path)) == getpid() { unlink(path) }
    }

    /// The process ID written in `path`.
    static func read(_ path: String) throws(Failure) -> Int32 {
        guard let data = FileManager.default.contents(atPath: path) else {
            let why = FileManager.default.fileExists(atPath: path) ? "cannot read it" : "no such file"
            throw Failure(description: "no pid in \(path): \(why) (is the gateway running with --pid-file \(path) or pid_file: \(path)?)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let pid = Int32(text), pid > 0 else {
            throw Failure(description: "\(path) does not hold a process ID (found \"\(text.prefix(40))\")")
        }
        return pid
    }

    /// Whether a process with this ID exists (`kill(pid, 0)`; EPERM means it does, as another user).
    static func isAlive(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }

    /// The process's command name (`/proc/PID/comm`, Linux), or nil when it cannot be read.
    static func processName(_ pid: Int32) -> String? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/comm") else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func reason(of error: Error) -> String {
        let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
        if let underlying, underlying.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(underlying.code))) }
        return error.localizedDescription
    }
}
