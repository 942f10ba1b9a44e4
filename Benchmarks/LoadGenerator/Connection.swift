/// One client connection and the request it carries. Owned by one ``Worker``, used on its thread
/// only; the worker keeps it in a slot and reuses it (new socket, same object) when it reconnects.
final class Connection {
    enum Phase {
        case closed
        /// A non-blocking connect is in progress.
        case connecting
        case open
    }

    /// Index in the worker's `connections`.
    let slot: Int
    var fd: Int32 = -1
    /// Bumped at each new socket, and carried in epoll's data, so that an event for a socket
    /// closed earlier in the same batch is not taken for its successor.
    var generation: UInt32 = 0
    var phase = Phase.closed
    /// EPOLLOUT is registered (connecting, or a write that would block).
    var writeInterest = false
    /// A socket was connected in this slot before (the next one is a reconnect).
    var everConnected = false
    /// At least one response was completed on the current socket: if it fails before any byte
    /// of the next response, the server closed an idle keep-alive connection, and the request
    /// is sent again on a new one.
    var reused = false
    /// When a closed slot should connect again (0: not scheduled).
    var reopenAt: UInt64 = 0
    var connectDeadline: UInt64 = 0
    /// The errno of the last failed connect.
    var lastError: Int32 = 0

    // MARK: The request in flight

    /// Carries a request (being written, awaiting its response, or waiting to be sent again on a
    /// new socket).
    var busy = false
    /// Bytes of the request still to write, from `outOffset`.
    var writing = false
    var isRetry = false
    var index = 0
    /// Latency is measured from here: the scheduled time (open loop) or the write (closed loop).
    var startNs: UInt64 = 0
    var deadline: UInt64 = 0
    var out: [UInt8] = []
    var outOffset = 0
    var parser = ResponseParser()

    init(slot: Int) {
        self.slot = slot
        out.reserveCapacity(256)
    }

    /// What epoll carries for this connection's current socket.
    var token: UInt64 { UInt64(generation) << 32 | UInt64(slot) }
}

/// A first-in, first-out queue on an array, amortised O(1), that keeps its storage.
struct FIFO<Element> {
    private var storage: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }
    var first: Element? { isEmpty ? nil : storage[head] }

    mutating func append(_ element: Element) { storage.append(element) }

    mutating func removeFirst() -> Element {
        let element = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }
}
