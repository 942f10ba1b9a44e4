internal import CCurl
import Dispatch
import GatewayIO

/// Forwards requests to the upstream over HTTP/1.1 with keep-alive, on libcurl's multi interface
/// on one serial queue, its sockets in that queue's epoll set (one client per gateway event loop).
///
/// Call every method on `queue`; completions run on `queue` too, never from inside ``execute(_:completion:)``
/// (a request rejected at once is failed on a later turn of the queue), and exactly once per request.
/// No locks: the client is `Sendable` only so it can be handed to its queue.
///
/// ```swift
/// let client = UpstreamClient(configuration: .init(baseURL: "http://127.0.0.1:9000"), queue: loopQueue)
/// loopQueue.async {
///     client.execute(UpstreamRequest(pathAndQuery: "/items/1")) { result in ... }
/// }
/// ```
///
/// Releasing the last reference without ``shutdown()`` shuts the client down on `queue`.
public final class UpstreamClient: @unchecked Sendable {
    public let configuration: UpstreamConfiguration
    public let queue: DispatchQueue
    let loop: CurlMultiLoop  // internal for tests (lifetime checks)

    /// Initialises libcurl for the process (`curl_global_init`) exactly once; later calls do nothing.
    /// Call it at start-up before other threads use libcurl; ``init(configuration:queue:)`` calls it too.
    public static func globalInit() {
        _ = curlGlobalInit
    }

    private static let curlGlobalInit: Void = {
        let rc = curl_global_init(Int(CURL_GLOBAL_ALL))
        precondition(rc == CURLE_OK, "curl_global_init failed: \(String(cString: curl_easy_strerror(rc)))")
    }()

    /// Creates a client with its own multi handle and connection cache.
    ///
    /// - Parameters:
    ///   - configuration: Checked with ``UpstreamConfiguration/validate()``; an invalid one traps.
    ///   - queue: The serial queue (event loop) that owns the client.
    ///   - readiness: The event loop's epoll set (on `queue`), so that upstream sockets wake the
    ///     loop with its clients. Default: a set of the client's own.
    public init(configuration: UpstreamConfiguration, queue: DispatchQueue, readiness: ReadinessSet? = nil) {
        do {
            try configuration.validate()
        } catch {
            preconditionFailure(error.description)
        }
        Self.globalInit()
        self.configuration = configuration
        self.queue = queue
        loop = CurlMultiLoop(configuration: configuration, queue: queue, readiness: readiness)
    }

    deinit {
        let loop = self.loop
        queue.async { loop.shutdown() }
    }

    /// Sends `request` to the upstream, now or when a connection slot frees up.
    ///
    /// - Parameters:
    ///   - request: What to send; checked first: a request that cannot be forwarded exactly fails with
    ///     ``UpstreamError/invalidRequest`` and nothing is sent.
    ///   - completion: Called once on `queue` with the final response or the reason there is none.
    public func execute(_ request: UpstreamRequest, completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void) {
        #if DEBUG
        dispatchPrecondition(condition: .onQueue(queue))
        #endif
        loop.execute(request, completion: completion)
    }

    /// Fails every queued and in-flight request with ``UpstreamError/shutdown`` (their completions run
    /// before this returns), closes all upstream connections and frees libcurl's state. Later
    /// ``execute(_:completion:)`` calls fail with ``UpstreamError/shutdown``. Idempotent.
    public func shutdown() {
        #if DEBUG
        dispatchPrecondition(condition: .onQueue(queue))
        #endif
        loop.shutdown()
    }

    /// Requests added to libcurl (each holds or waits for one connection).
    public var inFlightCount: Int {
        #if DEBUG
        dispatchPrecondition(condition: .onQueue(queue))
        #endif
        return loop.runningCount
    }

    /// Requests waiting for a connection slot.
    public var queuedCount: Int {
        #if DEBUG
        dispatchPrecondition(condition: .onQueue(queue))
        #endif
        return loop.waitingCount
    }
}
