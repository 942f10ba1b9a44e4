#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension SocketAddress {
    /// The address to bind or connect to for `host` and `port`: a numeric host as written,
    /// otherwise the first address `getaddrinfo` gives, except that `localhost` takes its IPv4
    /// address when it has one (so `localhost:8080` is `127.0.0.1:8080` wherever `::1` is
    /// listed first, as clients and health checks usually expect).
    ///
    /// Blocking (`getaddrinfo`): for start-up and the command line, never on an event loop.
    /// - Throws: ``SystemError`` naming the host and the resolver's reason.
    public static func resolve(host: String, port: Int) throws(SystemError) -> SocketAddress {
        if let numeric = SocketAddress(host: host, port: port) { return numeric }
        let addresses = try Syscall.resolve(host: host, port: port).get()
        if host.lowercased() == "localhost", let v4 = addresses.first(where: { $0.family == AF_INET }) { return v4 }
        return addresses[0]
    }
}

/// Whether something accepts TCP connections at an address, for `gateway check-config --connect`.
public enum TCPProbe {
    /// Connects to `address` and closes the connection at once; nothing is sent.
    /// - Throws: ``SystemError`` with the connect's `errno` (refused, unreachable), or a timeout.
    public static func connect(to address: SocketAddress, timeout: Duration) throws(SystemError) {
        let milliseconds = Int32(clamping: max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        try Syscall.connectProbe(address, milliseconds: milliseconds)
    }
}
