import Dispatch
import GatewayIO
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The event loops' one readiness mechanism: descriptors of any owner in one epoll set, and
/// writes held to the end of a batch. Real descriptors (a socket pair), a real queue.
final class ReadinessSetTests: XCTestCase {
    private final class Recorder: ReadinessHandler, BatchEndHandler, @unchecked Sendable {
        var log: [String] = []
        let name: String
        let fd: Int32
        weak var set: ReadinessSet?
        var askAgainOnce = false
        var batchEndWhileHandling = false
        init(_ name: String, fd: Int32) { self.name = name; self.fd = fd }
        func handle(events: UInt32) {
            var byte: UInt8 = 0
            _ = read(fd, &byte, 1)
            log.append("\(name) ready")
            if batchEndWhileHandling { set?.runAtBatchEnd(self) }
        }
        func batchEnded() {
            log.append("\(name) batch-end")
            if askAgainOnce {
                askAgainOnce = false
                set?.runAtBatchEnd(self)
            }
        }
    }

    private func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        return (fds[0], fds[1])
    }

    private func onQueue<T>(_ queue: DispatchQueue, _ body: () -> T) -> T { queue.sync(execute: body) }

    func testEveryOwnersDescriptorIsHandledInOneBatchAndTheBatchEndComesAfterAll() throws {
        let queue = DispatchQueue(label: "readiness-test")
        let set = ReadinessSet(queue: queue)
        let (a0, a1) = socketPair()
        let (b0, b1) = socketPair()
        defer { for fd in [a0, a1, b0, b1] { close(fd) } }
        let a = Recorder("a", fd: a0), b = Recorder("b", fd: b0)
        a.set = set; b.set = set
        // Both ask for the batch end while handled: each runs once, after the batch.
        onQueue(queue) {
            XCTAssertNotNil(set.add(a0, events: Epoll.in, handler: a))
            XCTAssertNotNil(set.add(b0, events: Epoll.in, handler: b))
            a.batchEndWhileHandling = true
            b.batchEndWhileHandling = true
        }
        var one: UInt8 = 1
        write(a1, &one, 1)
        write(b1, &one, 1)
        usleep(50_000)
        let lines = onQueue(queue) { a.log + b.log }
        XCTAssertEqual(Set(lines), ["a ready", "a batch-end", "b ready", "b batch-end"])
        // In each recorder's own log, handling came first.
        XCTAssertEqual(onQueue(queue) { a.log }, ["a ready", "a batch-end"])
        XCTAssertEqual(onQueue(queue) { set.count }, 2)
        onQueue(queue) {
            set.remove(a0, token: 1)
            set.remove(b0, token: 2)
        }
        XCTAssertEqual(onQueue(queue) { set.count }, 0)
    }

    func testABatchEndAskedForOutsideABatchRunsOnTheNextTurnAndMayAskAgain() {
        let queue = DispatchQueue(label: "readiness-test")
        let set = ReadinessSet(queue: queue)
        let flusher = Recorder("flush", fd: -1)
        flusher.set = set
        flusher.askAgainOnce = true
        let ranInline = onQueue(queue) { () -> Bool in
            set.runAtBatchEnd(flusher)
            return !flusher.log.isEmpty
        }
        XCTAssertFalse(ranInline, "not inside the call that asked")
        queue.sync {}
        XCTAssertEqual(onQueue(queue) { flusher.log }, ["flush batch-end", "flush batch-end"],
                       "asked again from its own batch end: run by the same pass")
    }

    func testARemovedDescriptorIsNotHandledAgain() {
        let queue = DispatchQueue(label: "readiness-test")
        let set = ReadinessSet(queue: queue)
        let (a0, a1) = socketPair()
        defer { close(a0); close(a1) }
        let a = Recorder("a", fd: a0)
        let token = onQueue(queue) { set.add(a0, events: Epoll.in, handler: a) }
        XCTAssertNotNil(token)
        onQueue(queue) { set.remove(a0, token: token!) }
        var one: UInt8 = 1
        write(a1, &one, 1)
        usleep(50_000)
        XCTAssertEqual(onQueue(queue) { a.log }, [])
    }
}

extension ReadinessSetTests {
    /// A set whose one reader has had a byte handled by a turn, with an answer due or not.
    private func setAfterOneTurn(answersDue: Bool) -> (queue: DispatchQueue, set: ReadinessSet, reader: Recorder, fds: (Int32, Int32)) {
        let queue = DispatchQueue(label: "readiness-test")
        // 3 s (1 ms in the gateway): whether a hand-off waits is then not a question of speed.
        let set = ReadinessSet(queue: queue, answerWait: .seconds(3))
        let fds = socketPair()
        let reader = Recorder("r", fd: fds.0)
        queue.sync {
            _ = set.add(fds.0, events: Epoll.in, handler: reader)
            if answersDue { set.expect(1) }
        }
        var one: UInt8 = 1
        write(fds.1, &one, 1)  // a turn handles this, then waits if answers are due
        usleep(100_000)
        return (queue, set, reader, fds)
    }

    /// A turn with answers due waits for them in epoll_wait; work queued from another thread with
    /// wakeUp() ends that wait instead of sitting behind it.
    func testWorkQueuedFromAnotherThreadEndsAWaitForAnswers() {
        let (queue, set, reader, fds) = setAfterOneTurn(answersDue: true)
        defer { close(fds.0); close(fds.1) }
        let ran = DispatchSemaphore(value: 0)
        let queued = Date()
        queue.async { ran.signal() }
        set.wakeUp()
        XCTAssertEqual(ran.wait(timeout: .now() + 1.5), .success, "the hand-off ran before the 3 s wait ended")
        XCTAssertLessThan(Date().timeIntervalSince(queued), 1.5)
        XCTAssertEqual(queue.sync { reader.log }, ["r ready"])
        queue.sync { set.expect(-1) }
    }

    /// Without answers due, a turn never waits: a hand-off without wakeUp() runs at once.
    func testATurnWithNoAnswersDueDoesNotWait() {
        let (queue, _, reader, fds) = setAfterOneTurn(answersDue: false)
        defer { close(fds.0); close(fds.1) }
        let ran = DispatchSemaphore(value: 0)
        queue.async { ran.signal() }
        XCTAssertEqual(ran.wait(timeout: .now() + 1.5), .success)
        XCTAssertEqual(queue.sync { reader.log }, ["r ready"])
    }
}
