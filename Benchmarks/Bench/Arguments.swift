import ArgumentParser

/// `http://host[:port][/path][?query]`: what the generator needs from a URL.
struct TargetURL: ExpressibleByArgument {
    var text: String
    var host: String
    var port: Int
    /// The request target: path and query (`/` when the URL has none).
    var target: String

    init?(argument: String) {
        guard argument.lowercased().hasPrefix("http://") else { return nil }
        let rest = argument.dropFirst("http://".count)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
        var host = Substring(authority)
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()) else { return nil }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            guard let p = Int(authority[authority.index(after: colon)...]) else { return nil }
            host = authority[..<colon]
            port = p
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        self.text = argument
        self.host = String(host)
        self.port = port
        self.target = target
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

/// A duration written as a number and a unit: `250ms`, `10s`, `2m`, `1.5s` (a bare number is seconds).
struct BenchDuration: ExpressibleByArgument, CustomStringConvertible {
    var value: Duration
    var text: String

    init(_ value: Duration) {
        self.value = value
        let (s, atto) = value.components
        text = atto == 0 ? "\(s)s" : "\(s * 1000 + atto / 1_000_000_000_000_000)ms"
    }

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(argument)
        var scale = 1.0
        for (suffix, factor) in units where argument.hasSuffix(suffix) {
            number = argument.dropLast(suffix.count)
            scale = factor
            break
        }
        guard let n = Double(number), n >= 0, n.isFinite else { return nil }
        value = .milliseconds(Int64((n * scale * 1000).rounded()))
        text = argument
    }

    var description: String { text }
    var defaultValueDescription: String { text }
}

/// `Name: value`.
struct HeaderArgument: ExpressibleByArgument {
    var name: String
    var value: String

    init?(argument: String) {
        guard let colon = argument.firstIndex(of: ":") else { return nil }
        name = String(argument[..<colon]).trimmingSpaces
        value = String(argument[argument.index(after: colon)...]).trimmingSpaces
        guard !name.isEmpty, !name.contains(" ") else { return nil }
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
