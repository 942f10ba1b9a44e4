/// A set of ASCII bytes as a 128-bit mask: membership is two compares and a shift, no table load.
///
/// The character classes the request parser needs are spelled out as constants; the tests check
/// each one against the readable list of its members (`init(members:)`).
struct ASCIISet: Sendable, Equatable {
    /// Bytes 0–63.
    var low: UInt64
    /// Bytes 64–127.
    var high: UInt64

    init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }

    /// A set built from its members (for tests and documentation; not used on the hot path).
    init(members: String) {
        low = 0
        high = 0
        for byte in members.utf8 {
            precondition(byte < 128, "ASCIISet holds ASCII bytes only")
            if byte < 64 { low |= 1 << UInt64(byte) } else { high |= 1 << UInt64(byte - 64) }
        }
    }

    /// Whether `byte` is in the set; bytes ≥ 0x80 never are.
    @inline(__always)
    func contains(_ byte: UInt8) -> Bool {
        if byte < 64 { return (low >> UInt64(byte)) & 1 != 0 }
        if byte < 128 { return (high >> UInt64(byte &- 64)) & 1 != 0 }
        return false
    }

    /// `tchar` (RFC 9110 §5.6.2): method names, header names, transfer codings, chunk extension names.
    static let token = ASCIISet(low: 0x03FF_6CFA_0000_0000, high: 0x57FF_FFFF_C7FF_FFFE)

    /// RFC 3986 `pchar` plus `/` and `?` (path and query), without `%`, which must start `%XX`.
    static let pathQuery = ASCIISet(low: 0xAFFF_FFD2_0000_0000, high: 0x47FF_FFFE_87FF_FFFF)

    /// Bytes outside RFC 3986 that browsers leave unencoded in a query: `{ } | ^ [ ] \ \``.
    static let lenientQuery = ASCIISet(members: "{}|^[]\\`")

    /// RFC 3986 `authority` without `@` (no userinfo) and without `%`, which must start `%XX`:
    /// unreserved, sub-delims, `:`, `[`, `]`.
    static let authority = ASCIISet(low: 0x2FFF_7FD2_0000_0000, high: 0x47FF_FFFE_AFFF_FFFE)

    /// The readable definitions the constants above must equal.
    static let tokenMembers = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    static let pathQueryMembers = unreservedMembers + subDelimMembers + ":@/?"
    static let authorityMembers = unreservedMembers + subDelimMembers + ":[]"
    static let unreservedMembers = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    static let subDelimMembers = "!$&'()*+,;="
}

/// Named bytes, so the parser reads like the grammar.
enum ASCII {
    static let htab = UInt8(ascii: "\t")
    static let lf = UInt8(ascii: "\n")
    static let cr = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let quote = UInt8(ascii: "\"")
    static let percent = UInt8(ascii: "%")
    static let comma = UInt8(ascii: ",")
    static let slash = UInt8(ascii: "/")
    static let colon = UInt8(ascii: ":")
    static let semicolon = UInt8(ascii: ";")
    static let equals = UInt8(ascii: "=")
    static let question = UInt8(ascii: "?")
    static let asterisk = UInt8(ascii: "*")
    static let backslash = UInt8(ascii: "\\")
    static let del: UInt8 = 0x7F

    /// SP or HTAB (RFC 9110 OWS/BWS).
    @inline(__always)
    static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == htab }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte &- 0x30 < 10 }

    /// The value of a hex digit, or nil.
    @inline(__always)
    static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 0x30...0x39: Int(byte &- 0x30)
        case 0x41...0x46: Int(byte &- 0x37)
        case 0x61...0x66: Int(byte &- 0x57)
        default: nil
        }
    }

    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 { byte &- 0x41 < 26 ? byte | 0x20 : byte }

    /// Whether a field-value byte is allowed (RFC 9110 §5.5): HTAB, SP, VCHAR, obs-text.
    /// Rejects NUL, CR, LF, the other controls and DEL.
    @inline(__always)
    static func isFieldValueByte(_ byte: UInt8) -> Bool { (byte >= 0x20 && byte != del) || byte == htab }
}

extension UnsafeBufferPointer<UInt8> {
    /// The index of the first LF in `start..<end`, or nil. Scans 8 bytes per step.
    @inline(__always)
    func firstLineFeed(from start: Int, to end: Int) -> Int? {
        var i = start
        if let base = baseAddress {
            let raw = UnsafeRawPointer(base)
            while i &+ 8 <= end {
                // Classic "has zero byte": after XOR with LFs, an LF becomes 0x00. The lowest flagged
                // byte is always a real zero (false positives only sit above a real one).
                let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                    ^ 0x0A0A_0A0A_0A0A_0A0A
                let flags = (word &- 0x0101_0101_0101_0101) & ~word & 0x8080_8080_8080_8080
                if flags != 0 { return i &+ flags.trailingZeroBitCount >> 3 }
                i &+= 8
            }
        }
        while i < end {
            if self[i] == ASCII.lf { return i }
            i &+= 1
        }
        return nil
    }

    /// Whether every byte in `range` is allowed in a field value (`ASCII.isFieldValueByte`).
    /// Scans 8 bytes per step while no byte is below SP or DEL.
    @inline(__always)
    func allFieldValueBytes(_ range: Range<Int>) -> Bool {
        var i = range.lowerBound
        let end = range.upperBound
        if let base = baseAddress {
            let raw = UnsafeRawPointer(base)
            while i &+ 8 <= end {
                let word = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                // Some byte < 0x20 ("hasless" trick; bytes >= 0x80 never match), or some byte == 0x7F.
                let belowSpace = (word &- 0x2020_2020_2020_2020) & ~word & 0x8080_8080_8080_8080
                let delXor = word ^ 0x7F7F_7F7F_7F7F_7F7F
                let del = (delXor &- 0x0101_0101_0101_0101) & ~delXor & 0x8080_8080_8080_8080
                if belowSpace | del != 0 { break }  // HTAB is allowed: decide byte by byte
                i &+= 8
            }
        }
        while i < end {
            if !ASCII.isFieldValueByte(self[i]) { return false }
            i &+= 1
        }
        return true
    }

    /// The bytes in `range` as a String: for ranges already checked to be ASCII (tokens, targets).
    /// Field values, which may hold obs-text, go through ``FieldBytes``.
    @inline(__always)
    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: self[range]), as: UTF8.self)
    }

    /// Whether the bytes in `range` equal `lowercase` ignoring ASCII case. `lowercase` must be
    /// lowercase ASCII.
    @inline(__always)
    func equalsIgnoringCase(_ range: Range<Int>, _ lowercase: StaticString) -> Bool {
        guard range.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        var k = 0
        for i in range {
            if ASCII.lowercased(self[i]) != expected[k] { return false }
            k &+= 1
        }
        return true
    }

    /// Whether the bytes in `range` equal `literal` exactly.
    @inline(__always)
    func equals(_ range: Range<Int>, _ literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        let expected = literal.utf8Start
        var k = 0
        for i in range {
            if self[i] != expected[k] { return false }
            k &+= 1
        }
        return true
    }

    /// The first index at or after `start` (before `end`) whose byte is not SP/HTAB.
    @inline(__always)
    func skipWhitespace(from start: Int, to end: Int) -> Int {
        var i = start
        while i < end, ASCII.isWhitespace(self[i]) { i &+= 1 }
        return i
    }

    /// `range` without leading and trailing SP/HTAB.
    @inline(__always)
    func trimmingWhitespace(_ range: Range<Int>) -> Range<Int> {
        let start = skipWhitespace(from: range.lowerBound, to: range.upperBound)
        var end = range.upperBound
        while end > start, ASCII.isWhitespace(self[end &- 1]) { end &-= 1 }
        return start..<end
    }
}

/// Field values are bytes, not UTF-8 (RFC 9110 §5.5: obs-text is opaque). They are kept in a
/// `String` one scalar per byte (ISO-8859-1): 0x80-0xFF becomes U+0080-U+00FF, which maps back to
/// the same byte, so any value goes out exactly as it came in, and two different byte strings never
/// become the same value (a UTF-8 decode would turn both into U+FFFD).
///
/// GatewayUpstream has the same two functions for the upstream side: neither module imports the other.
enum FieldBytes {
    /// `bytes` one scalar per byte. Pure ASCII (the usual case) takes the plain UTF-8 path.
    static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        var high = 0
        for byte in bytes where byte >= 0x80 { high &+= 1 }
        if high == 0 { return String(decoding: bytes, as: UTF8.self) }
        return String(unsafeUninitializedCapacity: bytes.count + high) { out in
            var i = 0
            for byte in bytes {
                if byte < 0x80 {
                    out[i] = byte
                    i &+= 1
                } else {
                    out[i] = 0xC0 | (byte >> 6)
                    out[i &+ 1] = 0x80 | (byte & 0x3F)
                    i &+= 2
                }
            }
            return i
        }
    }

    /// Appends `value`'s bytes: each scalar up to U+00FF as one byte. A scalar above U+00FF cannot
    /// have come from a parsed message (it was set in code or configuration) and goes out as UTF-8.
    ///
    /// An ASCII value (nearly all) in a native string is checked and copied from the string's
    /// storage in one go; walking `String.UTF8View` twice for that was 1.1 % of a hit's profile.
    static func append(_ value: String, to out: inout [UInt8]) {
        let copied: Bool? = value.utf8.withContiguousStorageIfAvailable { bytes in
            var high: UInt8 = 0
            for b in bytes { high |= b }
            guard high < 0x80 else { return false }
            out.append(contentsOf: bytes)
            return true
        }
        if copied == true { return }
        let utf8 = value.utf8
        if utf8.allSatisfy({ $0 < 0x80 }) {
            out.append(contentsOf: utf8)
            return
        }
        for scalar in value.unicodeScalars {
            if scalar.value < 0x100 {
                out.append(UInt8(truncatingIfNeeded: scalar.value))
            } else {
                UTF8.encode(scalar) { out.append($0) }
            }
        }
    }
}
