/// An RFC 8941 Dictionary (`a=1, b, c=?0;p=x`), parsed strictly: just enough of Structured Field
/// Values for `CDN-Cache-Control` (RFC 9213). Items keep their bare value; parameters are parsed
/// and dropped; inner lists and byte sequences are recognised but not kept.
///
/// A value that does not parse (RFC 8941 §4.2: any error fails the whole field) gives nil: the
/// caller then ignores the field.
package enum StructuredFieldDictionary {
    package enum Item: Sendable, Equatable {
        case integer(Int64)
        case decimal(Double)
        case string(String)
        case token(String)
        case boolean(Bool)
        /// Base64 text, not decoded.
        case byteSequence
        case innerList
    }

    /// Parses the field lines as one value (RFC 8941 §4.2: lines are joined with a comma).
    /// Member names are unique; a later duplicate replaces the earlier value (§3.2).
    /// - Returns: the members in order of first appearance, or nil if the value is malformed.
    package static func parse(_ lines: [String]) -> [(key: String, value: Item)]? {
        var parser = Parser(Array(lines.joined(separator: ",").utf8))
        return parser.dictionary()
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }
        mutating func skip(_ set: (UInt8) -> Bool) { while let c = peek, set(c) { i += 1 } }
        static func isSP(_ c: UInt8) -> Bool { c == 0x20 }
        static func isOWS(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }
        static func isLCAlpha(_ c: UInt8) -> Bool { c >= 0x61 && c <= 0x7A }
        static func isAlpha(_ c: UInt8) -> Bool { isLCAlpha(c | 0x20) }
        static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

        mutating func dictionary() -> [(key: String, value: Item)]? {
            var members: [(key: String, value: Item)] = []
            skip(Self.isSP)
            while i < bytes.count {
                guard let key = key() else { return nil }
                let value: Item
                if peek == UInt8(ascii: "=") {
                    i += 1
                    if peek == UInt8(ascii: "(") {
                        guard innerList() else { return nil }
                        value = .innerList
                    } else {
                        guard let item = bareItem(), parameters() else { return nil }
                        value = item
                    }
                } else {
                    guard parameters() else { return nil }
                    value = .boolean(true)
                }
                if let index = members.firstIndex(where: { $0.key == key }) {
                    members[index].value = value
                } else {
                    members.append((key, value))
                }
                skip(Self.isOWS)
                if i == bytes.count { return members }
                guard peek == UInt8(ascii: ",") else { return nil }
                i += 1
                skip(Self.isOWS)
                if i == bytes.count { return nil }  // trailing comma
            }
            return members
        }

        mutating func key() -> String? {
            guard let first = peek, Self.isLCAlpha(first) || first == UInt8(ascii: "*") else { return nil }
            let start = i
            skip { Self.isLCAlpha($0) || Self.isDigit($0) || "_-.*".utf8.contains($0) }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }

        mutating func parameters() -> Bool {
            while peek == UInt8(ascii: ";") {
                i += 1
                skip(Self.isSP)
                guard key() != nil else { return false }
                if peek == UInt8(ascii: "=") {
                    i += 1
                    guard bareItem() != nil else { return false }
                }
            }
            return true
        }

        mutating func innerList() -> Bool {
            i += 1  // "("
            while i < bytes.count {
                skip(Self.isSP)
                if peek == UInt8(ascii: ")") {
                    i += 1
                    return parameters()
                }
                guard bareItem() != nil, parameters() else { return false }
                guard let c = peek, c == 0x20 || c == UInt8(ascii: ")") else { return false }
            }
            return false
        }

        mutating func bareItem() -> Item? {
            guard let c = peek else { return nil }
            if c == UInt8(ascii: "-") || Self.isDigit(c) { return number() }
            if c == UInt8(ascii: "\"") { return string() }
            if c == UInt8(ascii: "*") || Self.isAlpha(c) { return token() }
            if c == UInt8(ascii: ":") { return byteSequence() }
            if c == UInt8(ascii: "?") { return boolean() }
            return nil
        }

        /// §4.2.4: at most 15 integer digits; a decimal has at most 12 before the point and 1–3 after.
        mutating func number() -> Item? {
            var negative = false
            if peek == UInt8(ascii: "-") {
                negative = true
                i += 1
            }
            let start = i
            var dot: Int?
            while let c = peek {
                if Self.isDigit(c) {
                    i += 1
                } else if c == UInt8(ascii: "."), dot == nil {
                    dot = i
                    i += 1
                } else {
                    break
                }
                if dot == nil ? i - start > 15 : i - start > 16 { return nil }
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            guard let first = text.utf8.first, Self.isDigit(first) else { return nil }
            if let dot {
                let fraction = i - dot - 1
                guard dot - start <= 12, (1...3).contains(fraction), let value = Double(text) else { return nil }
                return .decimal(negative ? -value : value)
            }
            guard let value = Int64(text) else { return nil }
            return .integer(negative ? -value : value)
        }

        mutating func string() -> Item? {
            i += 1
            var out: [UInt8] = []
            while let c = peek {
                i += 1
                if c == UInt8(ascii: "\\") {
                    guard let next = peek, next == UInt8(ascii: "\"") || next == UInt8(ascii: "\\") else { return nil }
                    out.append(next)
                    i += 1
                } else if c == UInt8(ascii: "\"") {
                    return .string(String(decoding: out, as: UTF8.self))
                } else if c < 0x20 || c > 0x7E {
                    return nil
                } else {
                    out.append(c)
                }
            }
            return nil
        }

        mutating func token() -> Item? {
            let start = i
            i += 1
            skip { c in
                Self.isAlpha(c) || Self.isDigit(c) || "!#$%&'*+-.^_`|~:/".utf8.contains(c)
            }
            return .token(String(decoding: bytes[start..<i], as: UTF8.self))
        }

        mutating func byteSequence() -> Item? {
            i += 1
            skip { Self.isAlpha($0) || Self.isDigit($0) || "+/=".utf8.contains($0) }
            guard peek == UInt8(ascii: ":") else { return nil }
            i += 1
            return .byteSequence
        }

        mutating func boolean() -> Item? {
            i += 1
            guard let c = peek, c == UInt8(ascii: "0") || c == UInt8(ascii: "1") else { return nil }
            i += 1
            return .boolean(c == UInt8(ascii: "1"))
        }
    }
}
