/// `${NAME}` and `${NAME:-default}` in the config values that hold secrets (`redis.url`,
/// `redis.password_file`, `invalidation.purge_api.token`), so that a password can come from the
/// environment (a systemd `EnvironmentFile`, a container's secrets) instead of the file.
///
/// - `${NAME}`: the variable's value; unset or empty is an error (a missing secret must not turn
///   into an empty password silently).
/// - `${NAME:-default}`: the value, or `default` when the variable is unset or empty (as in sh).
/// - `$${` is a literal `${`; any other `$` is itself, so existing values keep their meaning.
///
/// Names are `[A-Za-z_][A-Za-z0-9_]*`. Values are never echoed in errors: they may be secrets.
enum EnvironmentSubstitution {
    enum Failure: Error, Equatable, CustomStringConvertible {
        case unset(name: String)
        case empty(name: String)
        case malformed(String)

        var description: String {
            switch self {
            case .unset(let name): "environment variable \"\(name)\" is not set (the value uses ${\(name)}; set it, or write ${\(name):-default})"
            case .empty(let name): "environment variable \"\(name)\" is empty (the value uses ${\(name)})"
            case .malformed(let why): why
            }
        }
    }

    static func expand(_ text: String, environment: [String: String]) -> Result<String, Failure> {
        guard text.contains("$") else { return .success(text) }
        var result = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            let after = rest[rest.index(after: dollar)...]
            if after.hasPrefix("${") {
                result += "${"
                rest = after.dropFirst(2)
                continue
            }
            guard after.hasPrefix("{") else {
                result += "$"
                rest = after
                continue
            }
            guard let close = after.firstIndex(of: "}") else {
                return .failure(.malformed("unterminated ${ (write ${NAME}, ${NAME:-default}, or $${ for a literal ${)"))
            }
            let inside = after[after.index(after: after.startIndex)..<close]
            let name: Substring
            let fallback: Substring?
            if let separator = inside.range(of: ":-") {
                name = inside[..<separator.lowerBound]
                fallback = inside[separator.upperBound...]
            } else {
                name = inside
                fallback = nil
            }
            guard isVariableName(name) else {
                return .failure(.malformed("invalid environment variable name \"\(name)\" in ${…} (expected letters, digits and _, not starting with a digit)"))
            }
            let value = environment[String(name)]
            if let value, !value.isEmpty {
                result += value
            } else if let fallback {
                result += fallback
            } else {
                return .failure(value == nil ? .unset(name: String(name)) : .empty(name: String(name)))
            }
            rest = after[after.index(after: close)...]
        }
        result += rest
        return .success(result)
    }

    private static func isVariableName(_ name: Substring) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == UInt8(ascii: "_")
        }
    }
}
