// libFuzzer target for the stored-entry format, `CachedResponse.decode` / `encode` (scripts/fuzz.sh).
//
// Compiled into a module named `GatewayCore` from CachedResponse.swift alone, against a module
// `GatewayHTTP` built from HTTPTypes.swift alone (the two files `CachedResponse` needs: no Yams,
// Redis or curl). Values read from Redis are untrusted bytes: whatever another version, a truncated
// write or a foreign key left there. Checks:
//
// - decode never crashes; a decoded entry has a status in 100...599 and a body no longer than the input;
// - decode(encode(decode(x))) == decode(x); and encode(decode(x)) == x byte for byte unless decoding
//   had to repair invalid UTF-8 in a header (then it contains U+FFFD);
// - no strict prefix of a decodable value decodes, nor the value with a byte appended;
// - the other way round: an entry built from the input (any headers, any body) survives
//   encode then decode unchanged.

import GatewayHTTP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCachedResponse(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    if let entry = CachedResponse.decode(input) {
        checkDecoded(entry, from: input)
    }
    checkEncodeDecode(entryBuilt(from: input))
    return 0
}

func checkDecoded(_ entry: CachedResponse, from input: [UInt8]) {
    require((100...599).contains(entry.status), "decoded status \(entry.status)", input)
    require(entry.body.count <= input.count, "body longer than the value", input)
    require(entry.approximateSize >= entry.body.count, "approximateSize below the body size", input)

    let encoded = entry.encode()
    guard let again = CachedResponse.decode(encoded) else { fail("re-encoded entry does not decode", input) }
    require(again == entry, "re-encoded entry decodes differently", input)
    let repaired = entry.headers.contains { $0.name.unicodeScalars.contains("\u{FFFD}") || $0.value.unicodeScalars.contains("\u{FFFD}") }
    require(repaired || encoded == input, "re-encoding changed the bytes", input)

    // Exactly one entry: a cut or an extra byte is a miss, never a different entry.
    let cut = Int(fnv1a(input) % UInt64(input.count))
    require(CachedResponse.decode(Array(input[..<cut])) == nil, "a \(cut)-byte prefix decodes", input)
    require(CachedResponse.decode(input + [0]) == nil, "decodes with a trailing byte", input)
}

/// An entry whose every field comes from the input: status, times, headers split at 0x00 bytes
/// (name, value, name, value...; names and values may hold any other bytes, invalid UTF-8
/// included), the last segment as the body.
func entryBuilt(from input: [UInt8]) -> CachedResponse {
    var rest = input[...]
    func take(_ n: Int) -> UInt64 {
        let bytes = rest.prefix(n)
        rest = rest.dropFirst(n)
        return bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
    let status = 100 + Int(take(2) % 500)
    let storedAt = take(8)
    let expiresAt = take(8)
    // Windows at or after expiresAt, as encode requires (the initializer clamps them anyway).
    let swrUntil = expiresAt &+ take(4)
    let sieUntil = expiresAt &+ take(4)
    var segments = rest.split(separator: 0, omittingEmptySubsequences: false)
    let body = segments.popLast() ?? []
    var headers = HTTPHeaders()
    var i = 0
    while i + 1 < segments.count {
        headers.add(name: String(decoding: segments[i], as: UTF8.self), value: String(decoding: segments[i + 1], as: UTF8.self))
        i += 2
    }
    return CachedResponse(
        status: status, headers: headers, body: body, storedAt: storedAt, expiresAt: expiresAt,
        staleWhileRevalidateUntil: swrUntil, staleIfErrorUntil: sieUntil)
}

func checkEncodeDecode(_ entry: CachedResponse) {
    let encoded = entry.encode()
    guard let decoded = CachedResponse.decode(encoded) else { fail("an encoded entry does not decode", encoded) }
    require(decoded == entry, "encode then decode changed the entry", encoded)
    require(decoded.encode() == encoded, "encoding is not stable", encoded)
}

func require(_ condition: Bool, _ what: @autoclosure () -> String, _ bytes: [UInt8]) {
    if !condition { fail(what(), bytes) }
}

func fail(_ what: String, _ bytes: [UInt8]) -> Never {
    let hex = bytes.prefix(256).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    fatalError("\(what); value (\(bytes.count) bytes): \(hex)")
}

func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
}
