/// One HTTP/1.1 request the generator sends.
///
/// The generator adds `Host` (unless `headers` has one) and, when there is a body,
/// `Content-Length` (unless `headers` has one). It never adds `Connection`: connections are
/// kept alive, and a request that says `Connection: close` makes the generator reconnect.
public struct LoadRequest: Sendable {
    /// `GET` unless told otherwise; a `HEAD` response is read without a body.
    public var method: String
    /// The request target as sent: path and query, e.g. `/catalog/items?page=7`.
    public var target: String
    /// Extra header fields, sent in this order.
    public var headers: [(String, String)]
    /// The request body (empty: none).
    public var body: [UInt8]

    public init(method: String = "GET", target: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }
}

/// How requests are paced.
public enum LoadMode: Sendable {
    /// `connections` keep-alive connections; each sends its next request as soon as the previous
    /// response is complete. Latency is measured from the moment a request is written.
    case closedLoop(connections: Int)
    /// Requests are scheduled at a fixed rate (the i-th at start + i / rate) whatever the server
    /// does, and latency is measured from that scheduled time, so a request that waited for a free
    /// connection has the wait in its latency (no coordinated omission). `connections` are opened
    /// before the start; when all are busy, more are opened, up to 4 × `connections`, and past
    /// that requests queue.
    case openLoop(connections: Int, ratePerSecond: Double)
}

/// What to run: the target, the pacing, and the bounds.
///
/// A run is always bounded: no request is started after `duration` (or once `maxRequests`
/// have been started), and each request in flight then gets at most `timeout` to finish.
public struct LoadSpec: Sendable {
    /// A numeric address or a name (resolved once, at the start).
    public var host: String = "127.0.0.1"
    public var port: Int
    /// More servers on `host` to spread the connections over (several gateway instances with no
    /// load balancer in front): the run's connections go round-robin over ``ports``, see
    /// ``LoadSpec/port(ofConnection:among:)``. Every request says `Host: host:port` (the first
    /// port). Default: none.
    public var otherPorts: [Int] = []
    public var mode: LoadMode
    /// Stop starting requests after this long (measured from the first request).
    public var duration: Duration
    /// Stop starting requests after this many (each counts once, whatever its outcome).
    public var maxRequests: Int?
    /// A request that has had no complete response this long after it was written counts as a
    /// timeout; its connection is closed and reopened. In the open loop, a request still queued
    /// this long after its scheduled time counts as a timeout too.
    public var timeout: Duration = .seconds(10)
    /// Event-loop threads (each with its share of the connections and requests). One thread is
    /// enough for well over 64 connections at loopback speed; default 1.
    public var threads: Int = 1
    /// The i-th request (i from 0): the scenario decides paths and headers, e.g. Zipf keys.
    /// Called on the generator's threads, once per request.
    public var request: @Sendable (Int) -> LoadRequest
    /// Also return every answer as a ``LoadSample`` (when it was due, its latency, status and
    /// Cache-Status), for scenarios that look at what happened when; default false. About 40
    /// bytes per answer.
    public var recordSamples = false

    public init(
        host: String = "127.0.0.1",
        port: Int,
        mode: LoadMode,
        duration: Duration,
        maxRequests: Int? = nil,
        timeout: Duration = .seconds(10),
        threads: Int = 1,
        request: @escaping @Sendable (Int) -> LoadRequest
    ) {
        self.host = host
        self.port = port
        self.mode = mode
        self.duration = duration
        self.maxRequests = maxRequests
        self.timeout = timeout
        self.threads = threads
        self.request = request
    }

    /// Every port the run's connections go to: `port`, then `otherPorts`.
    public var ports: [Int] { [port] + otherPorts }

    /// Where connection `k` of a run goes (0-based over the whole run, all threads' connections
    /// together, reconnects keeping their slot's port): `ports[k % ports.count]`, so that each
    /// server gets an even share, whatever the thread count.
    public static func port(ofConnection k: Int, among ports: [Int]) -> Int {
        ports[k % ports.count]
    }

    /// The same request every time.
    public init(
        host: String = "127.0.0.1",
        port: Int,
        mode: LoadMode,
        duration: Duration,
        maxRequests: Int? = nil,
        timeout: Duration = .seconds(10),
        threads: Int = 1,
        request: LoadRequest
    ) {
        self.init(host: host, port: port, mode: mode, duration: duration, maxRequests: maxRequests,
                  timeout: timeout, threads: threads, request: { _ in request })
    }
}

/// Thrown by ``LoadGenerator/run(_:progress:)`` and ``LoadGenerator/burst(host:port:count:request:timeout:)``
/// before any request is sent: the spec cannot be run.
public struct LoadError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
