import GatewayHTTP

/// Responses that vary (RFC 9111 §4.1): stored once per combination of the request headers they
/// name, as seen in what the gateway forwards.
///
/// Redis holds, under the request's key, a ``VaryMarker`` naming the headers, and each variant
/// under `<key>:<selector digest>`. The selector is computed from the *fill* the gateway sends
/// upstream, never from the client's raw headers: a header the gateway does not forward cannot
/// have chosen the answer, so every client shares that variant; a header it forwards is normalised
/// (`Accept-Encoding` to the codings the gateway recognises) so that equivalent requests share one.
package enum Variants {
    package enum Plan: Equatable, Sendable {
        /// No `Vary` beyond what the key already holds.
        case none
        /// Stored per combination of these (lowercased, sorted) header values.
        case variants([String])
        /// `Vary: *`, credentials on a shared route, or a header outside the route's `vary_headers`.
        case unstorable
    }

    /// What a response's `Vary` means for storing it on this route.
    package static func plan(varied: [String], settings: RouteCacheSettings, routeClass: RouteClass) -> Plan {
        var names = Set<String>()
        for name in varied {
            // Varying on what the key already holds is fine.
            if case .header(let identity)? = settings.identity, name == identity.lowercased() { continue }
            if case .cookie? = settings.identity, name == "cookie" { continue }
            if name == "*" { return .unstorable }
            // On a shared route, an answer chosen by credentials is never stored.
            if routeClass == .public && (name == "authorization" || name == "cookie") { return .unstorable }
            guard settings.varyHeaders.contains(name) else { return .unstorable }
            names.insert(name)
        }
        return names.isEmpty ? .none : .variants(names.sorted())
    }

    /// The variant a request selects: each named header's normalised value in `headers` (the
    /// fill's), length-prefixed so that no two combinations share a selector.
    package static func selector(_ names: [String], in headers: [(name: String, value: String)]) -> String {
        var out = ""
        for name in names {
            let values = headers.filter { HTTPHeaders.equalsIgnoringCase($0.name, name) }.map(\.value)
            let normalised = values.isEmpty ? "\u{1}absent" : normalise(name, values)
            out += "\(name.utf8.count):\(name)\(normalised.utf8.count):\(normalised)"
        }
        return out
    }

    /// The codings an `Accept-Encoding` accepts that the gateway tells apart (`br`, `gzip`),
    /// sorted; for other headers the list with the whitespace around commas removed.
    package static func normalise(_ name: String, _ values: [String]) -> String {
        let items = values.flatMap { $0.split(separator: ",") }.map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        guard name == "accept-encoding" else { return items.joined(separator: ",") }
        var codings = Set<String>()
        for item in items {
            let parts = item.split(separator: ";").map { $0.trimmingSpaces().lowercased() }
            guard let coding = parts.first else { continue }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            guard q > 0 else { continue }
            switch coding {
            case "br": codings.insert("br")
            case "gzip", "x-gzip": codings.insert("gzip")
            case "*": codings.formUnion(["br", "gzip"])
            default: break
            }
        }
        return codings.sorted().joined(separator: ",")
    }

    /// The Redis key of one variant of `key`.
    package static func variantKey(_ key: String, selector: String) -> String {
        key + ":" + SHA256.hex(SHA256.hash(selector.utf8)).prefix(32)
    }

    /// The Redis set of a key's variants, for the `max_variants` cap.
    package static func variantSetKey(_ key: String) -> String { key + ":vs" }
}

/// What Redis holds under a request's key when the answer varies: the header names. Encoded as
/// `"CV" 0x01 | count u16 | (length u16, name)*`; anything else is not a marker.
package struct VaryMarker: Sendable, Equatable {
    package var names: [String]

    package init(names: [String]) { self.names = names }

    static let magic: [UInt8] = [0x43, 0x56, 0x01]

    package func encode() -> [UInt8] {
        var out = Self.magic
        out.append(UInt8(truncatingIfNeeded: names.count >> 8))
        out.append(UInt8(truncatingIfNeeded: names.count))
        for name in names {
            let bytes = Array(name.utf8)
            out.append(UInt8(truncatingIfNeeded: bytes.count >> 8))
            out.append(UInt8(truncatingIfNeeded: bytes.count))
            out.append(contentsOf: bytes)
        }
        return out
    }

    package static func decode(_ bytes: [UInt8]) -> VaryMarker? {
        guard bytes.count >= 5, bytes.starts(with: magic) else { return nil }
        let count = Int(bytes[3]) << 8 | Int(bytes[4])
        var offset = 5
        var names: [String] = []
        for _ in 0..<count {
            guard bytes.count - offset >= 2 else { return nil }
            let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            offset += 2
            guard length > 0, bytes.count - offset >= length else { return nil }
            names.append(String(decoding: bytes[offset..<(offset + length)], as: UTF8.self))
            offset += length
        }
        guard offset == bytes.count, !names.isEmpty else { return nil }
        return VaryMarker(names: names)
    }
}
