/// SHA-256 (FIPS 180-4), for cache keys and identity digests.
///
/// Written here rather than taken from swift-crypto on purpose: the gateway needs exactly one
/// hash function, and swift-crypto adds over a minute to every clean build (CI builds from a
/// clean clone every time). Checked against the NIST test vectors in `SHA256Tests`.
public struct SHA256: Sendable {
    private var state: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19
    )
    private var block = [UInt8]()

    public init() { block.reserveCapacity(64) }

    public mutating func update<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        // Contiguous input (arrays, UTF-8 views of native strings) is hashed block by block
        // straight from its storage; anything else goes through a small copy.
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            update(UnsafeRawBufferPointer(buffer))
        }
        if done == nil {
            let copy = Array(bytes)
            copy.withUnsafeBytes { update($0) }
        }
    }

    private mutating func update(_ input: UnsafeRawBufferPointer) {
        var offset = 0
        // Top up a partial block first.
        if !block.isEmpty {
            let take = min(64 - block.count, input.count)
            block.append(contentsOf: input[0..<take])
            offset = take
            if block.count == 64 { compressBlock() }
        }
        while input.count - offset >= 64 {
            compress(UnsafeRawBufferPointer(rebasing: input[offset..<(offset + 64)]))
            offset += 64
        }
        if offset < input.count { block.append(contentsOf: input[offset...]) }
    }

    public mutating func update(_ string: String) { update(string.utf8) }

    /// Feeds a 4-byte big-endian length and then the bytes, so that parts fed one after another can
    /// never be confused with a different split of the same bytes.
    public mutating func updateLengthPrefixed<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        let n = UInt32(truncatingIfNeeded: bytes.count)
        withUnsafeBytes(of: n.bigEndian) { update($0) }
        update(bytes)
    }

    public mutating func finalize() -> [UInt8] {
        let bitLength = totalBits
        // The padding in runs, not a byte at a time: a key's input ends a few bytes into its
        // second block, so that was some 60 single appends per request.
        block.append(0x80)
        if block.count > 56 {
            block.append(contentsOf: repeatElement(0, count: 64 - block.count))
            compressBlock()
        }
        block.append(contentsOf: repeatElement(0, count: 56 - block.count))
        withUnsafeBytes(of: bitLength.bigEndian) { block.append(contentsOf: $0) }
        compressBlock()
        var out = [UInt8]()
        out.reserveCapacity(32)
        // Word by word, not through an array literal of the eight words (one more allocation
        // per key, on every request).
        func append(_ word: UInt32) {
            out.append(UInt8(word >> 24)); out.append(UInt8(word >> 16 & 0xff))
            out.append(UInt8(word >> 8 & 0xff)); out.append(UInt8(word & 0xff))
        }
        append(state.0); append(state.1); append(state.2); append(state.3)
        append(state.4); append(state.5); append(state.6); append(state.7)
        return out
    }

    /// Bits fed so far: whole blocks compressed plus the partial block.
    private var totalBits: UInt64 { (compressedBlocks &* 64 &+ UInt64(block.count)) &* 8 }
    private var compressedBlocks: UInt64 = 0

    public static func hash<S: Sequence>(_ bytes: S) -> [UInt8] where S.Element == UInt8 {
        var h = SHA256()
        h.update(bytes)
        return h.finalize()
    }

    /// Lowercase hex digits. Written straight into the string's storage: this runs for every
    /// request's key, and a digit table plus a byte array to decode from were two allocations more.
    public static func hex(_ digest: [UInt8]) -> String {
        String(unsafeUninitializedCapacity: digest.count * 2) { out in
            @inline(__always) func digit(_ v: UInt8) -> UInt8 { v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "a") - 10 + v }
            for (i, b) in digest.enumerated() {
                out[2 * i] = digit(b >> 4)
                out[2 * i + 1] = digit(b & 0x0f)
            }
            return digest.count * 2
        }
    }

    private static let k: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    /// Compresses the buffered 64 bytes and empties the buffer.
    private mutating func compressBlock() {
        // Moved out, so that `compress` may mutate `self` while reading it, and moved back: the
        // buffer stays uniquely referenced, so emptying it keeps its storage (with a copy of the
        // reference still alive, `removeAll(keepingCapacity:)` would allocate anew).
        var full: [UInt8] = []
        swap(&full, &block)
        full.withUnsafeBytes { compress($0) }
        full.removeAll(keepingCapacity: true)
        block = full
    }

    private mutating func compress(_ chunk: UnsafeRawBufferPointer) {
        compressedBlocks &+= 1
        // The message schedule lives on the stack: no allocation per block.
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
            for i in 0..<16 {
                w[i] = UInt32(chunk[i * 4]) << 24 | UInt32(chunk[i * 4 + 1]) << 16 | UInt32(chunk[i * 4 + 2]) << 8 | UInt32(chunk[i * 4 + 3])
            }
            for i in 16..<64 {
                let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, h) = state
            SHA256.k.withUnsafeBufferPointer { k in
                for i in 0..<64 {
                    let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                    let ch = (e & f) ^ (~e & g)
                    let t1 = h &+ s1 &+ ch &+ k[i] &+ w[i]
                    let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                    let maj = (a & b) ^ (a & c) ^ (b & c)
                    let t2 = s0 &+ maj
                    h = g; g = f; f = e; e = d &+ t1
                    d = c; c = b; b = a; a = t1 &+ t2
                }
            }
            state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e, state.5 &+ f, state.6 &+ g, state.7 &+ h)
        }
    }

    @inline(__always)
    private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
}
