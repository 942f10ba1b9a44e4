import GatewayHTTP

/// Which headers cross the gateway (RFC 9110 §7.6.1) and what `Cache-Control` says.
package enum HeaderRules {
    /// Hop-by-hop fields, never forwarded in either direction nor stored.
    package static let hopByHop: Set<String> = [
        "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-connection", "proxy-authenticate", "proxy-authorization",
    ]

    package static func isHopByHop(_ lowercasedName: String) -> Bool {
        hopByHop.contains(lowercasedName) || lowercasedName.hasPrefix("proxy-")
    }

    /// The fields minus hop-by-hop ones, including those the `Connection` field names.
    package static func endToEnd(_ headers: HTTPHeaders, alsoDropping extra: Set<String> = []) -> HTTPHeaders {
        var named = Set<String>()
        for value in headers.values("Connection") {
            for token in value.split(separator: ",") {
                named.insert(token.trimmingSpaces().lowercased())
            }
        }
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count)
        for field in headers {
            let name = field.name.lowercased()
            if isHopByHop(name) || named.contains(name) || extra.contains(name) { continue }
            out.add(name: field.name, value: field.value)
        }
        return out
    }

    /// Lowercased field names listed by `Vary`.
    package static func vary(_ headers: HTTPHeaders) -> [String] {
        headers.values("Vary").flatMap { $0.split(separator: ",").map { $0.trimmingSpaces().lowercased() } }
            .filter { !$0.isEmpty }
    }
}

extension StringProtocol {
    package func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
