internal import CEpoll
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Told which epoll events fired for its descriptor; runs on the set's queue.
public protocol ReadinessHandler: AnyObject {
    func handle(events: UInt32)
}

/// Work held back until the end of the current batch of ready descriptors.
public protocol BatchEndHandler: AnyObject {
    func batchEnded()
}

/// epoll event bits, typed.
public enum Epoll {
    public static let `in` = UInt32(CG_EPOLLIN)
    public static let out = UInt32(CG_EPOLLOUT)
    public static let err = UInt32(CG_EPOLLERR)
    public static let hup = UInt32(CG_EPOLLHUP)
    public static let rdhup = UInt32(CG_EPOLLRDHUP)
}

/// One epoll set behind one Dispatch read source, on a serial queue: every descriptor an event
/// loop owns (its client connections, its Redis connections) is readied by the same wake-up.
///
/// A Dispatch source per descriptor costs a Dispatch worker wake-up per event and an `epoll_ctl`
/// re-arm per resume; on a hit (client read → Redis write → Redis read → client write) that was
/// three hand-offs between threads, and the kernel's scheduler was the largest item in the
/// profile. Here a batch of ready descriptors is one wake-up, whoever they belong to.
///
/// Writes can wait for the end of the batch (``runAtBatchEnd(_:)``): a Redis connection flushes
/// every command the batch's requests sent in one `write(2)`, which is also what pipelines them.
///
/// Level-triggered. Every method runs on `queue`; the class is `@unchecked Sendable` because
/// Dispatch, not the compiler, enforces that confinement.
public final class ReadinessSet: @unchecked Sendable {
    public let queue: DispatchQueue
    private let epollFD: Int32
    private var source: DispatchSourceRead?
    private var handlers: [UInt64: any ReadinessHandler] = [:]
    private var nextToken: UInt64 = 1
    private static let batchSize = 256
    private let readyTokens = UnsafeMutablePointer<UInt64>.allocate(capacity: ReadinessSet.batchSize)
    private let readyEvents = UnsafeMutablePointer<UInt32>.allocate(capacity: ReadinessSet.batchSize)
    private var batchEnd: [any BatchEndHandler] = []
    private var inBatch = false
    private var batchEndQueued = false

    public init(queue: DispatchQueue) {
        self.queue = queue
        epollFD = cg_epoll_create()
        precondition(epollFD >= 0, "epoll_create1 failed: errno \(errno)")
        let source = DispatchSource.makeReadSource(fileDescriptor: epollFD, queue: queue)
        // Weak: a set can go (a test's connection) while an event is already on its way.
        source.setEventHandler { [weak self] in self?.pollReady() }
        let fd = epollFD
        source.setCancelHandler { _ = Glibc.close(fd) }
        source.resume()
        self.source = source
    }

    deinit {
        source?.cancel()  // closes the epoll descriptor once Dispatch lets go of it
        readyTokens.deallocate()
        readyEvents.deallocate()
    }

    /// Watches `fd` for `events`; returns the token that names it, or nil when epoll refused it.
    /// The set holds `handler` until ``remove(_:token:)``.
    public func add(_ fd: Int32, events: UInt32, handler: any ReadinessHandler) -> UInt64? {
        assertOnQueue()
        let token = nextToken
        nextToken &+= 1
        guard cg_epoll_add(epollFD, fd, events, token) == 0 else { return nil }
        handlers[token] = handler
        return token
    }

    public func modify(_ fd: Int32, token: UInt64, events: UInt32) {
        assertOnQueue()
        _ = cg_epoll_modify(epollFD, fd, events, token)
    }

    /// Stops watching; `fd` must still be open (a closed descriptor's number is soon reused).
    public func remove(_ fd: Int32, token: UInt64) {
        assertOnQueue()
        _ = cg_epoll_remove(epollFD, fd)
        handlers.removeValue(forKey: token)
    }

    /// Runs `handler` once after the batch of ready descriptors being handled now, or on the next
    /// turn of the queue when called outside one. The caller keeps itself from asking twice.
    public func runAtBatchEnd(_ handler: any BatchEndHandler) {
        assertOnQueue()
        batchEnd.append(handler)
        if !inBatch && !batchEndQueued {
            batchEndQueued = true
            queue.async { [self] in
                batchEndQueued = false
                inBatch = true
                endBatch()
                inBatch = false
            }
        }
    }

    /// Bytes the kernel holds for reading on `fd` (`FIONREAD`), 0 when it cannot tell.
    public static func readableBytes(_ fd: Int32) -> Int { Int(cg_readable_bytes(fd)) }

    /// Descriptors watched.
    public var count: Int { handlers.count }

    /// Handles every ready descriptor, in batches of up to 256, without blocking.
    private func pollReady() {
        while true {
            let n = Int(cg_epoll_wait(epollFD, readyTokens, readyEvents, Int32(Self.batchSize), 0))
            guard n > 0 else { return }
            inBatch = true
            for i in 0..<n {
                // One removed earlier in this batch is gone from the table: skip it.
                guard let handler = handlers[readyTokens[i]] else { continue }
                handler.handle(events: readyEvents[i])
            }
            endBatch()
            inBatch = false
            if n < Self.batchSize { return }
        }
    }

    /// Runs inside the batch (`inBatch` set), so that what a handler asks for meanwhile is taken
    /// by this same loop rather than queued.
    private func endBatch() {
        while !batchEnd.isEmpty {
            let due = batchEnd
            batchEnd.removeAll(keepingCapacity: true)
            for handler in due { handler.batchEnded() }
        }
    }

    @inline(__always)
    private func assertOnQueue() {
        #if DEBUG
        dispatchPrecondition(condition: .onQueue(queue))
        #endif
    }
}
