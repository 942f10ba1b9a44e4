import GatewayHTTP

/// A response as stored in Redis: status, the headers worth keeping, body, when it was stored and
/// how long it may be used.
///
/// Encoded as a small versioned, length-prefixed binary value (big-endian):
/// `"CG" 0x02 | storedAt u64 (ms since 1970) | expiresAt u64 | staleWhileRevalidateUntil u64 |
///  staleIfErrorUntil u64 | status u16 | header count u16 |
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
    /// Milliseconds since 1970 when it stops being fresh (storedAt + its TTL); the in-process tier
    /// never keeps it longer.
    public var expiresAt: UInt64
    /// Until when a stale entry is served at once while one background refresh runs
    /// (`stale_while_revalidate`); `expiresAt` when there is no such window.
    public var staleWhileRevalidateUntil: UInt64
    /// Until when a stale entry stands in for an upstream failure (`stale_if_error`).
    public var staleIfErrorUntil: UInt64

    public init(
        status: Int, headers: HTTPHeaders, body: ArraySlice<UInt8>, storedAt: UInt64, expiresAt: UInt64 = .max,
        staleWhileRevalidateUntil: UInt64? = nil, staleIfErrorUntil: UInt64? = nil
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.storedAt = storedAt
        self.expiresAt = expiresAt
        self.staleWhileRevalidateUntil = max(expiresAt, staleWhileRevalidateUntil ?? expiresAt)
        self.staleIfErrorUntil = max(expiresAt, staleIfErrorUntil ?? expiresAt)
    }

    /// What an entry is good for at `now` (milliseconds since 1970).
    public enum Freshness: Sendable, Equatable {
        /// Serve it.
        case fresh
        /// Serve it now and refresh it in the background.
        case staleWhileRevalidate
        /// Fetch anew (revalidating with its validators); serve it only if the upstream fails
        /// within `staleIfErrorUntil`.
        case stale
    }

    public func freshness(at now: UInt64) -> Freshness {
        if now < expiresAt { return .fresh }
        if now < staleWhileRevalidateUntil { return .staleWhileRevalidate }
        return .stale
    }

    /// The entry made stale at `now` (a soft purge): its stale windows keep their lengths and run
    /// from now.
    public func softPurged(at now: UInt64) -> CachedResponse {
        guard now < staleWhileRevalidateUntil || now < staleIfErrorUntil || now < expiresAt else { return self }
        var copy = self
        let swr = staleWhileRevalidateUntil - expiresAt
        let sie = staleIfErrorUntil - expiresAt
        copy.expiresAt = min(expiresAt, now)
        copy.staleWhileRevalidateUntil = copy.expiresAt + swr
        copy.staleIfErrorUntil = copy.expiresAt + sie
        return copy
    }

    /// Whether it may stand in for an upstream failure at `now`.
    public func usableOnError(at now: UInt64) -> Bool { now < staleIfErrorUntil }

    /// Whole seconds since it was stored (the `Age` it is served with).
    public func age(at now: UInt64) -> Int { now > storedAt ? Int((now - storedAt) / 1000) : 0 }

    /// Approximate memory held, for the in-process tier's budget.
    var approximateSize: Int {
        headers.reduce(body.count + 64) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
    }

    static let magic: [UInt8] = [0x43, 0x47, 0x02]

    public func encode() -> [UInt8] {
        var out = [UInt8]()
        var size = Self.magic.count + 8 * 4 + 2 + 2 + 4 + body.count
        for field in headers { size += 6 + field.name.utf8.count + field.value.utf8.count }
        out.reserveCapacity(size)
        out.append(contentsOf: Self.magic)
        out.appendBigEndian(storedAt, bytes: 8)
        out.appendBigEndian(expiresAt, bytes: 8)
        out.appendBigEndian(staleWhileRevalidateUntil, bytes: 8)
        out.appendBigEndian(staleIfErrorUntil, bytes: 8)
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
            let swrUntil = reader.readBigEndian(bytes: 8), swrUntil >= expiresAt,
            let sieUntil = reader.readBigEndian(bytes: 8), sieUntil >= expiresAt,
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
        return CachedResponse(
            status: Int(status), headers: headers, body: body, storedAt: storedAt, expiresAt: expiresAt,
            staleWhileRevalidateUntil: swrUntil, staleIfErrorUntil: sieUntil)
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
