import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A one-shot Redis client for the benchmark's own commands (`XADD` of a purge, `XINFO GROUPS`):
/// RESP2 over a blocking socket to 127.0.0.1, one command per connection. The bench stays
/// independent of the gateway's modules (and of hiredis), as the load generator is.
enum RedisControl {
    indirect enum Reply: Equatable {
        case status(String)
        case error(String)
        case integer(Int)
        case bulk(String?)
        case array([Reply]?)

        /// Every bulk and status string in the reply, depth first (e.g. the group names of `XINFO GROUPS`).
        var strings: [String] {
            switch self {
            case .status(let s), .bulk(let s?): [s]
            case .array(let items?): items.flatMap(\.strings)
            default: []
            }
        }
    }

    /// `argv` as a RESP array of bulk strings.
    static func encode(_ argv: [String]) -> [UInt8] {
        var out = Array("*\(argv.count)\r\n".utf8)
        for a in argv {
            let bytes = Array(a.utf8)
            out += Array("$\(bytes.count)\r\n".utf8) + bytes + [13, 10]
        }
        return out
    }

    /// Parses one complete reply at the start of `bytes`: the reply and the bytes it took, or nil
    /// when more bytes are needed.
    static func parse(_ bytes: ArraySlice<UInt8>) throws -> (Reply, Int)? {
        guard let type = bytes.first else { return nil }
        guard let cr = bytes.firstIndex(of: 13), cr + 1 < bytes.endIndex else { return nil }
        let line = String(decoding: bytes[(bytes.startIndex + 1)..<cr], as: UTF8.self)
        let afterLine = cr + 2
        let used = { (end: Int) in end - bytes.startIndex }
        switch type {
        case UInt8(ascii: "+"): return (.status(line), used(afterLine))
        case UInt8(ascii: "-"): return (.error(line), used(afterLine))
        case UInt8(ascii: ":"):
            guard let n = Int(line) else { throw BenchError("redis: bad integer reply \(line)") }
            return (.integer(n), used(afterLine))
        case UInt8(ascii: "$"):
            guard let n = Int(line) else { throw BenchError("redis: bad bulk length \(line)") }
            if n < 0 { return (.bulk(nil), used(afterLine)) }
            guard bytes.endIndex >= afterLine + n + 2 else { return nil }
            return (.bulk(String(decoding: bytes[afterLine..<(afterLine + n)], as: UTF8.self)), used(afterLine + n + 2))
        case UInt8(ascii: "*"):
            guard let n = Int(line) else { throw BenchError("redis: bad array length \(line)") }
            if n < 0 { return (.array(nil), used(afterLine)) }
            var items: [Reply] = []
            var at = afterLine
            for _ in 0..<n {
                guard let (item, took) = try parse(bytes[at...]) else { return nil }
                items.append(item)
                at += took
            }
            return (.array(items), used(at))
        default:
            throw BenchError("redis: unexpected reply type \(Character(UnicodeScalar(type)))")
        }
    }

    /// Sends `argv` to 127.0.0.1:`port` and returns the reply; an error reply throws.
    static func command(port: Int, _ argv: [String], timeout: Double = 2) throws -> Reply {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw BenchError("socket() failed") }
        defer { close(s) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = Ports.loopback(port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw BenchError("redis at 127.0.0.1:\(port): connection refused") }
        let request = encode(argv)
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(s, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BenchError("redis: send failed") }
            sent += n
        }
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            if let (reply, _) = try parse(data[...]) {
                if case .error(let message) = reply { throw BenchError("redis \(argv.first ?? ""): \(message)") }
                return reply
            }
            let n = chunk.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BenchError("redis \(argv.first ?? ""): no complete reply within \(timeout) s") }
            data.append(contentsOf: chunk[0..<n])
        }
    }
}
