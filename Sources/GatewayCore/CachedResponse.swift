import GatewayHTTP

/// A response as stored in Redis: status, the headers worth keeping, body, and when it was stored.
///
/// Encoded as a small versioned, length-prefixed binary value (big-endian):
/// `"CG" 0x01 | storedAt u64 (ms since 1970) | expiresAt u64 (ms) | status u16 | header count u16 |
///  (name length u16, name, value length u32, value)* | body length u32 | body`.
/// Anything that does not decode exactly (another version, a truncated value, trailing bytes) is
/// treated as a miss, never served.
public struct CachedResponse: Sendable, Equatable {
    public var status: Int
    public var headers: HTTPHeaders
    /// A slice of the value as read from Redis: decoding does not copy the body.
    public var body: ArraySlice<UInt8>
    /// Milliseconds since 1970 when the response was stored; `Age` is computed from it.
    public var storedAt: UInt64
    /// Milliseconds since 1970 when it stops being fresh (storedAt + its TTL); Redis expires the
    /// key then, and the in-process tier never keeps it longer.
    public var expiresAt: UInt64

    public init(status: Int, headers: HTTPHeaders, body: ArraySlice<UInt8>, storedAt: UInt64, expiresAt: UInt64 = .max) {
        self.status = status
        self.headers = headers
        self.body = body
        self.storedAt = storedAt
        self.expiresAt = expiresAt
    }

    /// Approximate memory held, for the in-process tier's budget.
    var approximateSize: Int {
        headers.reduce(body.count + 64) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
    }

    static let magic: [UInt8] = [0x43, 0x47, 0x01]

    public func encode() -> [UInt8] {
        var out = [UInt8]()
        var size = Self.magic.count + 8 + 8 + 2 + 2 + 4 + body.count
        for field in headers { size += 6 + field.name.utf8.count + field.value.utf8.count }
        out.reserveCapacity(size)
        out.append(contentsOf: Self.magic)
        out.appendBigEndian(storedAt, bytes: 8)
        out.appendBigEndian(expiresAt, bytes: 8)
        out.appendBigEndian(UInt64(status), bytes: 2)
        out.appendBigEndian(UInt64(headers.count), bytes: 2)
        for field in headers {
            out.appendBigEndian(UInt64(field.name.utf8.count), bytes: 2)
            out.append(contentsOf: field.name.utf8)
            out.appendBigEndian(UInt64(field.value.utf8.count), bytes: 4)
            out.append(contentsOf: field.value.utf8)
        }
        out.appendBigEndian(UInt64(body.count), bytes: 4)
        out.append(contentsOf: body)
        return out
    }

    /// Decodes a stored value; nil if it is not exactly one valid entry.
    public static func decode(_ bytes: [UInt8]) -> CachedResponse? {
        var reader = ByteReader(bytes)
        guard reader.read(count: magic.count) == magic[...],
            let storedAt = reader.readBigEndian(bytes: 8),
            let expiresAt = reader.readBigEndian(bytes: 8),
            let status = reader.readBigEndian(bytes: 2), (100...599).contains(status),
            let count = reader.readBigEndian(bytes: 2)
        else { return nil }
        var headers = HTTPHeaders()
        headers.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let nameLength = reader.readBigEndian(bytes: 2), let name = reader.read(count: Int(nameLength)),
                let valueLength = reader.readBigEndian(bytes: 4), let value = reader.read(count: Int(valueLength))
            else { return nil }
            headers.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
        }
        guard let bodyLength = reader.readBigEndian(bytes: 4), let body = reader.read(count: Int(bodyLength)),
            reader.isAtEnd
        else { return nil }
        return CachedResponse(status: Int(status), headers: headers, body: body, storedAt: storedAt, expiresAt: expiresAt)
    }
}

extension [UInt8] {
    fileprivate mutating func appendBigEndian(_ value: UInt64, bytes: Int) {
        for i in stride(from: bytes - 1, through: 0, by: -1) {
            append(UInt8(truncatingIfNeeded: value >> UInt64(i * 8)))
        }
    }
}

private struct ByteReader {
    let bytes: [UInt8]
    var offset = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset == bytes.count }

    mutating func read(count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, bytes.count - offset >= count else { return nil }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    mutating func readBigEndian(bytes n: Int) -> UInt64? {
        guard let slice = read(count: n) else { return nil }
        return slice.reduce(0) { $0 << 8 | UInt64($1) }
    }
}
