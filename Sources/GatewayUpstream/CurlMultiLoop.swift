internal import CCurl
import Dispatch
import GatewayIO

/// One libcurl multi handle on one serial queue, its sockets in the queue's epoll set: the machinery behind
/// ``UpstreamClient``.
///
/// Everything here runs on `queue`; libcurl's callbacks find the loop through `Unmanaged` user data
/// (`CURLMOPT_SOCKETDATA`, `CURLMOPT_TIMERDATA`, `CURLOPT_OPENSOCKETDATA`, `CURLOPT_CLOSESOCKETDATA`),
/// unretained: the timer's handler and the watched sockets retain the loop until ``shutdown()`` cancels them,
/// which is also what keeps it alive through `curl_multi_cleanup` closing the cached connections.
///
/// Admission: a transfer is added to the multi handle only with a permit from `permits` (so libcurl
/// never queues internally, and a pool shared by several loops caps them together); a request that
/// gets none waits here in FIFO order while the pool has room for it, and fails at once with
/// `.overloaded` otherwise.
final class CurlMultiLoop: BatchEndHandler, @unchecked Sendable {
    struct Waiting {
        var request: PreparedRequest
        var completion: (Result<UpstreamResponse, UpstreamError>) -> Void
    }

    let queue: DispatchQueue
    /// The epoll set the sockets are watched in: the owning event loop's, or one of its own.
    let readiness: ReadinessSet
    let configuration: UpstreamConfiguration
    private let origin: String
    private let basePath: String
    private var multi: UnsafeMutableRawPointer?
    private var timer: DispatchSourceTimer?
    /// A 0 ms timeout waits for the end of the loop's batch (``armTimer(milliseconds:)``); one at a time.
    private var runSoonQueued = false
    /// Every socket libcurl told us about, by its fd.
    var sockets: [Int32: SocketWatch] = [:]
    /// Transfers added to the multi handle; owns them while libcurl holds unretained pointers.
    private var running: [ObjectIdentifier: Transfer] = [:]
    /// Requests that wait for a permit; each left one wake-up in `permits`.
    private var waiting = FIFO<Waiting>()
    private let permits: UpstreamPermits
    /// Handed to `permits` with each queued request; nil after shutdown (it retains us).
    private var wake: (@Sendable () -> Void)?
    /// Idle transfers (easy handles) to reuse; at most `maxConnections`.
    private var spare: [Transfer] = []
    private(set) var isShutdown = false

    var runningCount: Int { running.count }
    var waitingCount: Int { waiting.count }

    /// - Precondition: `configuration.validate()` succeeds; `curl_global_init` has run.
    init(configuration: UpstreamConfiguration, queue: DispatchQueue, readiness: ReadinessSet? = nil) {
        precondition(readiness.map { $0.queue === queue } ?? true, "an upstream client's epoll set must be on its queue")
        self.queue = queue
        self.readiness = readiness ?? ReadinessSet(queue: queue)
        self.configuration = configuration
        (origin, basePath) = Self.split(baseURL: configuration.baseURL)
        permits = configuration.permits
            ?? UpstreamPermits(limit: configuration.maxConnections, maxQueued: configuration.maxQueued)

        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed") }
        self.multi = multi
        let me = Unmanaged.passUnretained(self).toOpaque()
        let max = configuration.maxConnections
        var rc = cg_multi_setopt_socketfn(multi, curlSocketCallback)
        if rc == CURLM_OK { rc = cg_multi_setopt_ptr(multi, CURLMOPT_SOCKETDATA, me) }
        if rc == CURLM_OK { rc = cg_multi_setopt_timerfn(multi, curlTimerCallback) }
        if rc == CURLM_OK { rc = cg_multi_setopt_ptr(multi, CURLMOPT_TIMERDATA, me) }
        if rc == CURLM_OK { rc = cg_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max) }
        if rc == CURLM_OK { rc = cg_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max) }
        // The keep-alive cache: every connection we may have open stays reusable.
        if rc == CURLM_OK { rc = cg_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, max) }
        precondition(rc == CURLM_OK, "curl_multi_setopt failed: \(String(cString: curl_multi_strerror(rc)))")

        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.setEventHandler { self.socketAction(CURL_SOCKET_TIMEOUT, 0) }
        timer.schedule(deadline: .distantFuture)
        timer.resume()
        self.timer = timer
        // Strong: a permit handed over after shutdown must still find us, to give it back.
        wake = { [queue] in queue.async { self.permitGranted() } }
    }

    // MARK: Requests

    func execute(_ request: UpstreamRequest, completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void) {
        guard !isShutdown else { return failLater(completion, .shutdown) }
        let deadline = DispatchTime.now().uptimeNanoseconds &+ configuration.timeout.nanoseconds
        let prepared: PreparedRequest
        switch PreparedRequest.make(request, origin: origin, basePath: basePath, deadline: deadline) {
        case .failure(let error): return failLater(completion, error)
        case .success(let p): prepared = p
        }
        switch permits.acquire(orWait: ObjectIdentifier(self), wake: wake!) {
        case .acquired:
            if waiting.isEmpty {
                start(prepared, completion)
            } else {
                // A permit is free while some of ours wait: theirs is on its way. Keep FIFO order.
                waiting.append(Waiting(request: prepared, completion: completion))
                let next = waiting.popFirst()!
                start(next.request, next.completion)
            }
        case .queued:
            waiting.append(Waiting(request: prepared, completion: completion))
        case let .full(running, queued):
            failLater(completion, .overloaded.with(
                detail: "\(running) in flight, \(queued) queued (maxConnections \(permits.limit), maxQueued \(permits.maxQueued))"))
        }
    }

    /// A finished transfer (of any loop sharing `permits`) handed us its permit.
    private func permitGranted() {
        guard !isShutdown, let next = waiting.popFirst() else { return permits.release() }
        start(next.request, next.completion)
    }

    /// Fails every transfer with `.shutdown`, closes every connection and frees libcurl's state.
    /// Idempotent. Completions run before it returns.
    func shutdown() {
        guard !isShutdown else { return }
        isShutdown = true
        // Before releasing our permits, so none is handed to a request of ours about to fail.
        permits.cancelWaits(of: ObjectIdentifier(self))
        wake = nil
        var failed: [(Result<UpstreamResponse, UpstreamError>) -> Void] = []
        if let multi {
            for transfer in running.values {
                curl_multi_remove_handle(multi, transfer.easy)
                if let completion = transfer.completion { failed.append(completion) }
                transfer.completion = nil
                transfer.close()
                permits.release()
            }
            running.removeAll()
            // Closes the cached connections through curlCloseSocketCallback: we are still alive here.
            curl_multi_cleanup(multi)
            self.multi = nil
        }
        while let w = waiting.popFirst() { failed.append(w.completion) }
        for transfer in spare { transfer.close() }
        spare.removeAll()
        // Whatever libcurl did not close through our callback (a resolver's socket pair): stop watching.
        for watch in sockets.values { watch.cancel() }
        sockets.removeAll()
        timer?.cancel()  // releases the handler's reference to us
        timer = nil
        for completion in failed { completion(.failure(.shutdown)) }
    }

    /// Adds a transfer for `request`, which holds one permit: kept by the transfer until it finishes,
    /// given back at once if it cannot start.
    private func start(_ request: PreparedRequest, _ completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void) {
        let now = DispatchTime.now().uptimeNanoseconds
        guard request.deadline > now, let multi else {
            permits.release()
            return failLater(completion, .timeout.with(detail: "timed out waiting for a free upstream connection"))
        }
        let remainingMs = Int((request.deadline - now + 999_999) / 1_000_000)
        guard let transfer = spare.popLast() ?? Transfer() else {
            permits.release()
            return failLater(completion, .transferFailed.with(detail: "curl_easy_init failed"))
        }
        let me = Unmanaged.passUnretained(self).toOpaque()
        let rc = transfer.configure(request, loop: me, configuration: configuration, remainingMs: remainingMs)
        guard rc == CURLE_OK else {
            recycle(transfer)
            permits.release()
            return failLater(completion, .transferFailed.with(detail: "curl_easy_setopt: \(String(cString: curl_easy_strerror(rc)))"))
        }
        transfer.completion = completion
        running[ObjectIdentifier(transfer)] = transfer
        let mrc = curl_multi_add_handle(multi, transfer.easy)
        guard mrc == CURLM_OK else {
            running.removeValue(forKey: ObjectIdentifier(transfer))
            transfer.completion = nil
            recycle(transfer)
            permits.release()
            return failLater(completion, .transferFailed.with(detail: "curl_multi_add_handle: \(String(cString: curl_multi_strerror(mrc)))"))
        }
    }

    private func recycle(_ transfer: Transfer) {
        transfer.resetResponse()
        if spare.count < configuration.maxConnections {
            spare.append(transfer)
        } else {
            transfer.close()
        }
    }

    /// Completions are never called from inside `execute`: a failure found there is delivered on a
    /// later turn of the queue.
    private func failLater(_ completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void, _ error: UpstreamError) {
        let box = UncheckedSendable(completion)
        queue.async { box.value(.failure(error)) }
    }

    // MARK: Driving libcurl

    /// `curl_multi_socket_action` for a ready socket (or the timeout), then finished transfers.
    func socketAction(_ fd: Int32, _ events: Int32) {
        guard let multi else { return }
        var stillRunning: Int32 = 0
        _ = curl_multi_socket_action(multi, fd, events, &stillRunning)
        drainMessages()
    }

    private func drainMessages() {
        var left: Int32 = 0
        // `multi` is read again each turn: a completion may have shut us down.
        while let multi, let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            finish(easy, message.pointee.data.result, multi: multi)
        }
    }

    private func finish(_ easy: UnsafeMutableRawPointer, _ code: CURLcode, multi: UnsafeMutableRawPointer) {
        var pointer: UnsafeMutableRawPointer?
        _ = cg_easy_getinfo_ptr(easy, CURLINFO_PRIVATE, &pointer)
        guard let pointer else {
            curl_multi_remove_handle(multi, easy)
            return
        }
        let transfer = Unmanaged<Transfer>.fromOpaque(pointer).takeUnretainedValue()
        let result = transfer.result(for: code)
        curl_multi_remove_handle(multi, easy)
        running.removeValue(forKey: ObjectIdentifier(transfer))
        let completion = transfer.completion
        transfer.completion = nil
        recycle(transfer)
        // Possibly to another loop: the oldest waiting request of the gateway goes next.
        permits.release()
        completion?(result)
    }

    /// Re-arms the one timer source; called from `CURLMOPT_TIMERFUNCTION`, so it never calls libcurl.
    ///
    /// "Now" (0 ms: a transfer just added, a step libcurl wants to run at once) is the end of the
    /// loop's current batch, not a timer: a Dispatch timer fires up to its leeway late, and every
    /// miss started with one. Short timeouts get little leeway for the same reason.
    func armTimer(milliseconds: Int) {
        guard let timer else { return }
        if milliseconds < 0 {
            timer.schedule(deadline: .distantFuture)
        } else if milliseconds == 0 {
            timer.schedule(deadline: .distantFuture)
            guard !runSoonQueued else { return }
            runSoonQueued = true
            readiness.runAtBatchEnd(self)
        } else {
            timer.schedule(deadline: .now() + .milliseconds(milliseconds), leeway: milliseconds < 50 ? .microseconds(50) : .milliseconds(1))
        }
    }

    /// The 0 ms timeout's turn (see ``armTimer(milliseconds:)``).
    func batchEnded() {
        runSoonQueued = false
        socketAction(CURL_SOCKET_TIMEOUT, 0)
    }

    /// `"http://h:1/api/"` → (`"http://h:1"`, `"/api"`).
    static func split(baseURL: String) -> (origin: String, basePath: String) {
        let utf8 = Array(baseURL.utf8)
        var i = 0
        // Skip "scheme://", then the authority runs to the first "/".
        while i + 2 < utf8.count && !(utf8[i] == UInt8(ascii: ":") && utf8[i + 1] == UInt8(ascii: "/") && utf8[i + 2] == UInt8(ascii: "/")) { i += 1 }
        i = min(i + 3, utf8.count)
        while i < utf8.count && utf8[i] != UInt8(ascii: "/") { i += 1 }
        var path = Array(utf8[i...])
        while path.last == UInt8(ascii: "/") { path.removeLast() }
        return (String(decoding: utf8[..<i], as: UTF8.self), String(decoding: path, as: UTF8.self))
    }
}

/// Carries a value that is confined to one queue across a `queue.async` to that same queue.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

// MARK: - C callbacks of the multi handle

/// `CURLMOPT_TIMERFUNCTION`: -1 disarms, 0 means "as soon as possible" (from the queue, not from here).
private func curlTimerCallback(_ multi: UnsafeMutableRawPointer?, _ timeoutMs: Int, _ userp: UnsafeMutableRawPointer?) -> Int32 {
    Unmanaged<CurlMultiLoop>.fromOpaque(userp!).takeUnretainedValue().armTimer(milliseconds: timeoutMs)
    return 0
}
