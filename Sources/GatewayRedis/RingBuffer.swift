/// A growable FIFO with O(1) append and removal at the front.
///
/// Used for the commands pending on one hiredis context: hiredis answers strictly in order, so
/// every reply callback pops exactly the front element.
struct RingBuffer<Element> {
    private var storage: [Element?]
    private var head = 0
    private(set) var count = 0

    init(initialCapacity: Int = 16) {
        var capacity = 1
        while capacity < initialCapacity { capacity <<= 1 }
        storage = Array(repeating: nil, count: capacity)
    }

    var isEmpty: Bool { count == 0 }

    var first: Element? { count == 0 ? nil : storage[head] }

    mutating func append(_ element: Element) {
        if count == storage.count { grow() }
        storage[(head &+ count) & (storage.count - 1)] = element
        count += 1
    }

    mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        let element = storage[head].take()
        head = (head &+ 1) & (storage.count - 1)
        count -= 1
        return element
    }

    private mutating func grow() {
        var bigger = [Element?](repeating: nil, count: storage.count * 2)
        for i in 0..<count {
            bigger[i] = storage[(head &+ i) & (storage.count - 1)].take()
        }
        storage = bigger
        head = 0
    }
}
