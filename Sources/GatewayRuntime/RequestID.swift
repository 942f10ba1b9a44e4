/// Request IDs: the client's `X-Request-ID` when it is safe to pass on and log, otherwise one of
/// the gateway's own.
enum RequestID {
    static let header = "X-Request-ID"
    static let maxLength = 128

    /// 1–128 bytes of `[A-Za-z0-9._:+/=-]`: what tracing systems generate (UUIDs, hex, base64),
    /// and nothing that needs escaping in a header, a URL or any log format.
    static func isValid(_ value: String) -> Bool {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
        return bytes.allSatisfy { b in
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "+"),
                 UInt8(ascii: "/"), UInt8(ascii: "="), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
    }

    /// The incoming ID when there is exactly one and it is valid; otherwise nil (generate one).
    static func incoming(_ values: [String]) -> String? {
        guard values.count == 1, let value = values.first, isValid(value) else { return nil }
        return value
    }
}

/// One event loop's ID source: a random 64-bit prefix drawn once, then a counter, as
/// `<16 hex>-<counter hex>`. Unique across loops and processes with overwhelming probability,
/// and far cheaper than a UUID per request. Touched only on its loop.
final class RequestIDGenerator: @unchecked Sendable {
    private var prefix: [UInt8]
    private var counter: UInt64 = 0
    private var scratch: [UInt8] = []

    init() {
        prefix = []
        Self.appendHex(UInt64.random(in: .min ... .max), width: 16, to: &prefix)
        prefix.append(UInt8(ascii: "-"))
        scratch.reserveCapacity(40)
    }

    func next() -> String {
        counter &+= 1
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: prefix)
        Self.appendHex(counter, width: 8, to: &scratch)
        return String(decoding: scratch, as: UTF8.self)
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// At least `width` hex digits, more when the value needs them.
    private static func appendHex(_ value: UInt64, width: Int, to out: inout [UInt8]) {
        let needed = max(width, (64 - value.leadingZeroBitCount + 3) / 4)
        for i in stride(from: needed - 1, through: 0, by: -1) {
            out.append(digits[Int((value >> (UInt64(i) * 4)) & 0xF)])
        }
    }
}
