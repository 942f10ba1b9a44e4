import GatewayHTTP

/// The byte-level pieces of log lines: escaping for each format, calendar time from epoch
/// milliseconds, fixed-point durations. Everything appends to a caller's reused buffer, so a line
/// costs no allocation and no Foundation formatter.
///
/// Each format's escaping is total: whatever bytes a request line carries (quotes, backslashes,
/// control characters, UTF-8), a value can neither end its field early nor start a new line, so
/// a client cannot inject a field or a line.
public enum LogText {
    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    // MARK: Escaping

    /// A JSON string, quotes included (RFC 8259 §7): `"` and `\` escaped, control characters and
    /// DEL as `\u00XX`; UTF-8 passes through (a Swift string is valid UTF-8).
    public static func appendJSONString<S: Collection>(_ bytes: S, to out: inout [UInt8]) where S.Element == UInt8 {
        // Native strings and arrays hand over their storage: scanning a buffer is a plain loop,
        // where `String.UTF8View` walks index by index and its runs are copied element-wise
        // (that walk and `copySequenceContents` were 3.2 % of a hit's profile, access log on).
        let done: Void? = bytes.withContiguousStorageIfAvailable { appendJSONStringContents($0, to: &out) }
        if done == nil { appendJSONStringContents(bytes, to: &out) }
    }

    /// ``appendJSONString(_:to:)`` for any collection; specialised for buffers by the caller.
    @inline(__always)
    private static func appendJSONStringContents<S: Collection>(_ bytes: S, to out: inout [UInt8]) where S.Element == UInt8 {
        out.append(UInt8(ascii: "\""))
        // Runs of bytes that need no escape are copied whole: a path or a status is usually one
        // run, and one `append(contentsOf:)` is a copy where a byte at a time is a bounds and
        // capacity check each (a hit's profile had this function at 2.1 % appending byte by byte).
        var runStart = bytes.startIndex
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let b = bytes[i]
            if b >= 0x20 && b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\") && b != 0x7F {
                bytes.formIndex(after: &i)
                continue
            }
            if runStart != i { out.append(contentsOf: bytes[runStart..<i]) }
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(b)
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            default: appendUnicodeEscape(b, to: &out)
            }
            bytes.formIndex(after: &i)
            runStart = i
        }
        if runStart != bytes.endIndex { out.append(contentsOf: bytes[runStart..<bytes.endIndex]) }
        out.append(UInt8(ascii: "\""))
    }

    /// A logfmt value: bare when it is printable ASCII without space, `"`, `=` or `\` (and not
    /// empty), otherwise quoted with the JSON escapes, so that a parser splitting on unquoted
    /// spaces and the first `=` reads back exactly the value.
    public static func appendLogfmtValue<S: Collection>(_ bytes: S, to out: inout [UInt8]) where S.Element == UInt8 {
        let bare = !bytes.isEmpty && bytes.allSatisfy { b in
            b > 0x20 && b < 0x7F && b != UInt8(ascii: "\"") && b != UInt8(ascii: "=") && b != UInt8(ascii: "\\")
        }
        if bare { out.append(contentsOf: bytes) } else { appendJSONString(bytes, to: &out) }
    }

    /// Inside a quoted field of nginx's combined format (the quotes are the caller's): as nginx
    /// does, `"`, `\`, control characters and bytes from 0x7F up become `\xHH`.
    public static func appendCombinedEscaped<S: Sequence>(_ bytes: S, to out: inout [UInt8]) where S.Element == UInt8 {
        for b in bytes {
            if b < 0x20 || b >= 0x7F || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "x"))
                out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 0x0F)])
            } else {
                out.append(b)
            }
        }
    }

    private static func appendUnicodeEscape(_ b: UInt8, to out: inout [UInt8]) {
        out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
        out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 0x0F)])
    }

    // MARK: Numbers

    /// The decimal digits of `value`.
    public static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        DecimalText.append(value, to: &out)
    }

    public static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        if value < 0 {
            out.append(UInt8(ascii: "-"))
            appendDecimal(UInt64(value.magnitude), to: &out)
        } else {
            appendDecimal(UInt64(value), to: &out)
        }
    }

    /// `value` zero-padded to `width` digits (for times; `value` must fit).
    static func appendPadded(_ value: Int, width: Int, to out: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var v = value
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8((v / divisor) % 10))
            v %= divisor
            divisor /= 10
        }
    }

    /// Nanoseconds as milliseconds with three decimals (`12.345`), rounded to the microsecond.
    public static func appendMilliseconds(nanoseconds: UInt64, to out: inout [UInt8]) {
        let micros = nanoseconds / 1000 + (nanoseconds % 1000 >= 500 ? 1 : 0)
        appendDecimal(micros / 1000, to: &out)
        out.append(UInt8(ascii: "."))
        appendPadded(Int(micros % 1000), width: 3, to: &out)
    }

    /// Nanoseconds as seconds with three decimals (`0.012`), as nginx's `$request_time`.
    public static func appendSeconds(nanoseconds: UInt64, to out: inout [UInt8]) {
        let millis = nanoseconds / 1_000_000 + (nanoseconds % 1_000_000 >= 500_000 ? 1 : 0)
        appendDecimal(millis / 1000, to: &out)
        out.append(UInt8(ascii: "."))
        appendPadded(Int(millis % 1000), width: 3, to: &out)
    }

    // MARK: Time

    /// The proleptic Gregorian date and UTC time of a second since 1970.
    public struct CivilTime: Equatable, Sendable {
        public var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int

        /// Howard Hinnant's `civil_from_days` (exact for every day, leap years included), so
        /// that no `DateFormatter` or `gmtime_r` runs per line.
        public init(secondsSince1970 seconds: Int64) {
            var days = seconds / 86_400
            var rest = seconds % 86_400
            if rest < 0 { rest += 86_400; days -= 1 }
            hour = Int(rest / 3600)
            minute = Int(rest % 3600 / 60)
            second = Int(rest % 60)
            let z = days + 719_468
            let era = (z >= 0 ? z : z - 146_096) / 146_097
            let doe = z - era * 146_097
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
            let mp = (5 * doy + 2) / 153
            day = Int(doy - (153 * mp + 2) / 5 + 1)
            month = Int(mp < 10 ? mp + 3 : mp - 9)
            year = Int(yoe + era * 400 + (month <= 2 ? 1 : 0))
        }
    }

    private static let monthNames: [[UInt8]] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .map { Array($0.utf8) }

    /// `2026-12-01T10:29:55.` (RFC 3339), to which the milliseconds and `Z` are added.
    static func appendRFC3339Prefix(_ t: CivilTime, to out: inout [UInt8]) {
        appendPadded(t.year, width: 4, to: &out); out.append(UInt8(ascii: "-"))
        appendPadded(t.month, width: 2, to: &out); out.append(UInt8(ascii: "-"))
        appendPadded(t.day, width: 2, to: &out); out.append(UInt8(ascii: "T"))
        appendPadded(t.hour, width: 2, to: &out); out.append(UInt8(ascii: ":"))
        appendPadded(t.minute, width: 2, to: &out); out.append(UInt8(ascii: ":"))
        appendPadded(t.second, width: 2, to: &out); out.append(UInt8(ascii: "."))
    }

    /// `01/Dec/2026:10:29:55 +0000`, nginx's `$time_local` in UTC.
    static func appendCommonLogTime(_ t: CivilTime, to out: inout [UInt8]) {
        appendPadded(t.day, width: 2, to: &out); out.append(UInt8(ascii: "/"))
        out.append(contentsOf: monthNames[t.month - 1]); out.append(UInt8(ascii: "/"))
        appendPadded(t.year, width: 4, to: &out); out.append(UInt8(ascii: ":"))
        appendPadded(t.hour, width: 2, to: &out); out.append(UInt8(ascii: ":"))
        appendPadded(t.minute, width: 2, to: &out); out.append(UInt8(ascii: ":"))
        appendPadded(t.second, width: 2, to: &out)
        out.append(contentsOf: Array(" +0000".utf8))
    }

    /// Formats timestamps, computing the calendar once per second: lines come in bursts within
    /// the same second. One per writer (not shared between threads).
    public struct Clock: Sendable {
        private var second: Int64 = .min
        private var rfc3339: [UInt8] = []
        private var common: [UInt8] = []

        public init() {}

        private mutating func update(_ s: Int64) {
            guard s != second else { return }
            second = s
            let t = CivilTime(secondsSince1970: s)
            rfc3339.removeAll(keepingCapacity: true)
            LogText.appendRFC3339Prefix(t, to: &rfc3339)
            common.removeAll(keepingCapacity: true)
            LogText.appendCommonLogTime(t, to: &common)
        }

        /// `2026-12-01T10:29:55.123Z`.
        public mutating func appendRFC3339(milliseconds ms: UInt64, to out: inout [UInt8]) {
            update(Int64(ms / 1000))
            out.append(contentsOf: rfc3339)
            LogText.appendPadded(Int(ms % 1000), width: 3, to: &out)
            out.append(UInt8(ascii: "Z"))
        }

        /// `01/Dec/2026:10:29:55 +0000` (no brackets).
        public mutating func appendCommonLogTime(milliseconds ms: UInt64, to out: inout [UInt8]) {
            update(Int64(ms / 1000))
            out.append(contentsOf: common)
        }
    }

    // MARK: Query

    /// The target as the access log shows it: `keep` as received, `drop` without the query,
    /// `redact` with every parameter's value replaced by `REDACTED` (a piece without `=` is all
    /// value, and is replaced whole): `/p?page=REDACTED&REDACTED`.
    public static func appendTarget(_ target: String, query: GatewayConfig.AccessLog.Query, to out: inout [UInt8]) {
        let bytes = target.utf8
        guard query != .keep, let mark = bytes.firstIndex(of: UInt8(ascii: "?")) else {
            out.append(contentsOf: bytes)
            return
        }
        out.append(contentsOf: bytes[..<mark])
        guard query == .redact else { return }
        out.append(UInt8(ascii: "?"))
        let redacted = Array("REDACTED".utf8)
        var first = true
        for piece in bytes[bytes.index(after: mark)...].split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: false) {
            if !first { out.append(UInt8(ascii: "&")) }
            first = false
            if piece.isEmpty { continue }
            if let equals = piece.firstIndex(of: UInt8(ascii: "=")) {
                out.append(contentsOf: piece[...equals])
            }
            out.append(contentsOf: redacted)
        }
    }

    // MARK: Key-value lines

    /// Writes one line of named fields as a JSON object or as logfmt, so that both formats have
    /// the same fields in the same order, and each value the escaping of its format.
    public struct FieldWriter {
        public let json: Bool
        private var first = true

        public init(json: Bool) { self.json = json }

        /// The separator and `name`; the value follows. Names are the code's constants.
        public mutating func key(_ name: String, to out: inout [UInt8]) {
            if json {
                out.append(first ? UInt8(ascii: "{") : UInt8(ascii: ","))
                LogText.appendJSONString(name.utf8, to: &out)
                out.append(UInt8(ascii: ":"))
            } else {
                if !first { out.append(UInt8(ascii: " ")) }
                LogText.appendLogfmtValue(name.utf8, to: &out)
                out.append(UInt8(ascii: "="))
            }
            first = false
        }

        /// A text value; nil is JSON `null` or logfmt `-`.
        ///
        /// Inlinable, so that a caller in another module (the access log, with its `[UInt8]`
        /// path) gets it specialised: unspecialised, each call looked up generic metadata at run
        /// time (0.6 % of a hit's profile, for a switch over a `(C?, Bool)` tuple).
        @inlinable
        public func string<C: Collection>(_ value: C?, to out: inout [UInt8]) where C.Element == UInt8 {
            guard let value else {
                if json {
                    out.append(UInt8(ascii: "n")); out.append(UInt8(ascii: "u"))
                    out.append(UInt8(ascii: "l")); out.append(UInt8(ascii: "l"))
                } else {
                    out.append(UInt8(ascii: "-"))
                }
                return
            }
            if json { LogText.appendJSONString(value, to: &out) } else { LogText.appendLogfmtValue(value, to: &out) }
        }

        public func string(_ value: String?, to out: inout [UInt8]) {
            string(value?.utf8, to: &out)
        }

        /// A value written by `body` that needs no escaping in either format (a time, a
        /// number): quoted in JSON when `quoted`.
        public func raw(quoted: Bool, to out: inout [UInt8], _ body: (inout [UInt8]) -> Void) {
            let quote = json && quoted
            if quote { out.append(UInt8(ascii: "\"")) }
            body(&out)
            if quote { out.append(UInt8(ascii: "\"")) }
        }

        /// Closes the JSON object (logfmt needs nothing).
        public func end(to out: inout [UInt8]) {
            guard json else { return }
            if first { out.append(UInt8(ascii: "{")) }
            out.append(UInt8(ascii: "}"))
        }
    }
}
