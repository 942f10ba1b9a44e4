/// Reusable scratch space for one command's argv, in the shape `redisAsyncCommandArgv` wants.
///
/// Arguments are copied back to back into one byte buffer, so pointers into it are valid for the
/// whole call without nesting a `withUnsafeBytes` per argument. hiredis copies the formatted
/// command into its output buffer before returning, so the scratch can be reused at once.
/// One instance per connection, touched only on its queue.
final class CommandArguments {
    private var bytes: [UInt8] = []
    private var offsets: [Int] = []
    private var lengths: UnsafeMutablePointer<Int>
    private var pointers: UnsafeMutablePointer<UnsafePointer<CChar>?>
    private var capacity: Int

    /// Scratch larger than this after a command is given back instead of kept.
    private static let retainedByteLimit = 1 << 20

    init() {
        capacity = 8
        lengths = .allocate(capacity: capacity)
        pointers = .allocate(capacity: capacity)
        bytes.reserveCapacity(256)
        offsets.reserveCapacity(capacity)
    }

    deinit {
        lengths.deallocate()
        pointers.deallocate()
    }

    var count: Int { offsets.count }

    func reset() {
        if bytes.capacity > Self.retainedByteLimit {
            bytes = []
            bytes.reserveCapacity(256)
        } else {
            bytes.removeAll(keepingCapacity: true)
        }
        offsets.removeAll(keepingCapacity: true)
    }

    func append(_ argument: [UInt8]) {
        offsets.append(bytes.count)
        bytes.append(contentsOf: argument)
    }

    func append(_ argument: StaticString) {
        offsets.append(bytes.count)
        argument.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    func append(decimal value: Int) {
        offsets.append(bytes.count)
        bytes.append(contentsOf: String(value).utf8)
    }

    /// Whether the first argument equals `name`, ignoring ASCII case.
    func firstArgumentEquals(_ name: StaticString) -> Bool {
        guard let start = offsets.first else { return false }
        let end = offsets.count > 1 ? offsets[1] : bytes.count
        guard end - start == name.utf8CodeUnitCount else { return false }
        return name.withUTF8Buffer { expected in
            for i in 0..<expected.count where bytes[start + i] | 0x20 != expected[i] | 0x20 {
                return false
            }
            return true
        }
    }

    /// Calls `body` with `argc`, `argv` and `argvlen` pointing into the scratch.
    func withArgv<R>(
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        let argc = offsets.count
        if argc > capacity { grow(to: argc) }
        // A trailing byte keeps the buffer non-empty, so its base address exists even when every
        // argument is empty.
        bytes.append(0)
        defer { bytes.removeLast() }
        return bytes.withUnsafeBufferPointer { buffer in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            let end = buffer.count - 1
            for i in 0..<argc {
                let start = offsets[i]
                pointers[i] = base + start
                lengths[i] = (i + 1 < argc ? offsets[i + 1] : end) - start
            }
            return body(Int32(argc), pointers, UnsafePointer(lengths))
        }
    }

    private func grow(to needed: Int) {
        var newCapacity = capacity
        while newCapacity < needed { newCapacity *= 2 }
        lengths.deallocate()
        pointers.deallocate()
        lengths = .allocate(capacity: newCapacity)
        pointers = .allocate(capacity: newCapacity)
        capacity = newCapacity
    }
}
