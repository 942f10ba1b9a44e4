import GatewayCore
import Synchronization

/// The requests of this instance that wait for another instance's fill, by key: the fills
/// subscriber (one connection per instance, on its own thread) hands each announcement here, and
/// every registered request's callback hops to its own event loop.
///
/// Only a flight's local leader registers, so a key has at most one registration per flight;
/// the table is a dictionary behind one short lock, decided inside, called back outside.
final class RemoteFills: Sendable {
    typealias Callback = @Sendable (RemoteFill) -> Void

    private struct Table {
        var waits: [String: [(id: UInt64, callback: Callback)]] = [:]
        var nextID: UInt64 = 1
    }

    private let table = Mutex(Table())

    /// Registers for `key`'s announcements until ``stop(_:id:)``: a key may be announced more
    /// than once while a request waits (a holder that announced `stored` and was purged, a
    /// takeover), and the request's state machine decides what each one means.
    func watch(_ key: String, callback: @escaping Callback) -> UInt64 {
        table.withLock { t in
            let id = t.nextID
            t.nextID &+= 1
            t.waits[key, default: []].append((id, callback))
            return id
        }
    }

    func stop(_ key: String, id: UInt64) {
        table.withLock { t in
            guard var waits = t.waits[key] else { return }
            waits.removeAll { $0.id == id }
            t.waits[key] = waits.isEmpty ? nil : waits
        }
    }

    /// One announcement: every request registered for its key is told.
    func announced(_ key: String, _ fill: RemoteFill) {
        let waits = table.withLock { $0.waits[key] } ?? []
        for wait in waits { wait.callback(fill) }
    }

    /// The subscription was lost and made again: any announcement may have been missed, so
    /// every waiting request looks at Redis again.
    func announcementsMayBeLost() {
        let all = table.withLock { $0.waits.values.flatMap { $0 } }
        for wait in all { wait.callback(.unknown) }
    }

    /// Requests waiting for another instance's fill (for tests and metrics).
    var count: Int { table.withLock { $0.waits.values.reduce(0) { $0 + $1.count } } }
}
