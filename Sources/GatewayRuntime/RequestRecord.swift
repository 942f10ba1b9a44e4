import Dispatch
import GatewayCore
import GatewayHTTP

/// What one answered request was, for the access log and the metrics. Built once, when the
/// response is handed to the connection; never holds a credential (no header values at all).
public struct RequestRecord: Sendable {
    /// When the request's head was complete, in milliseconds since 1970.
    public var startedAt: UInt64
    public var client: SocketAddress
    public var method: String
    /// The request target as received: path and query, unredacted (the log decides what to show).
    public var target: String
    public var status: Int
    /// Body bytes sent (0 for HEAD and 304).
    public var bodyBytes: Int
    /// From the complete request head to the response handed to the connection.
    public var durationNanoseconds: UInt64
    /// The route's name; nil for the gateway's own endpoints and requests no route matched.
    public var route: String?
    public var cacheStatus: CacheStatus?
    public var outcome: CacheOutcome
    /// Time spent waiting for the upstream on this request's behalf (its own fetch or forward).
    public var upstreamNanoseconds: UInt64?
    /// Time spent waiting for Redis replies on this request's behalf (lookups and the store).
    public var redisNanoseconds: UInt64?
    /// Time a collapsed request waited for another request's fill.
    public var waitNanoseconds: UInt64?
    public var requestID: String?
}

extension RequestRecord {
    /// A request the HTTP parser refused before the gateway saw it. Nothing of the request is
    /// kept: its bytes are malformed and may carry credentials, so method and target are "-".
    static func rejected(status: Int, reason: String, peer: SocketAddress) -> RequestRecord {
        RequestRecord(
            startedAt: WallClock.nowMilliseconds(), client: peer, method: "-", target: "-", status: status,
            bodyBytes: HTTPResponse.text(status, reason).body.count, durationNanoseconds: 0, route: nil,
            cacheStatus: nil, outcome: .rejected)
    }
}

/// Receives every answered request, on the request's event loop; must not block it.
public protocol RequestObserver: Sendable {
    func requestFinished(_ record: RequestRecord)
}

/// One request's timings, accumulated while it is served. Touched only on its event loop.
final class RequestTrace: @unchecked Sendable {
    let startedAt: UInt64
    let startNanoseconds: UInt64
    var requestID: String?
    var upstreamNanoseconds: UInt64?
    var redisNanoseconds: UInt64?
    var waitNanoseconds: UInt64?

    init() {
        startedAt = WallClock.nowMilliseconds()
        startNanoseconds = Self.now()
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    // Each adds the time since `start` (a `now()` reading) to its timing.
    func addUpstream(since start: UInt64) { upstreamNanoseconds = (upstreamNanoseconds ?? 0) &+ (Self.now() &- start) }
    func addRedis(since start: UInt64) { redisNanoseconds = (redisNanoseconds ?? 0) &+ (Self.now() &- start) }
    func addWait(since start: UInt64) { waitNanoseconds = (waitNanoseconds ?? 0) &+ (Self.now() &- start) }
}

/// Answers one request and tells the gateway's observers what it was. Every answer the gateway
/// gives a routed or local request goes through here, so none is missing from the log or metrics.
struct TracedResponder: Sendable {
    let observers: [any RequestObserver]
    let head: HTTPRequestHead
    let peer: SocketAddress
    let responder: HTTPResponder
    let trace: RequestTrace

    /// - Parameters:
    ///   - route: The route that served it (nil for the gateway's own endpoints and refusals).
    ///   - status: The answer's `Cache-Status`, when it went through the cache's decisions.
    ///   - gatewayError: The gateway wrote this error itself (not the upstream's answer).
    ///
    /// `consuming`: the caller's response is this one, so adding the request ID changes its
    /// headers in place instead of copying them (a copy per answer, on every hit).
    func respond(_ response: consuming HTTPResponse, route: String? = nil, status: CacheStatus? = nil, gatewayError: Bool = false) {
        // Replaces one a stored or upstream answer may carry: the client gets its own request's ID.
        if let id = trace.requestID { response.headers.replaceOrAdd(name: RequestID.header, value: id) }
        if !observers.isEmpty {
            let record = RequestRecord(
                startedAt: trace.startedAt, client: peer, method: head.method, target: head.target,
                status: response.status, bodyBytes: head.isHead ? 0 : response.body.count,
                durationNanoseconds: RequestTrace.now() &- trace.startNanoseconds, route: route,
                cacheStatus: status, outcome: CacheOutcome(status: status, gatewayError: gatewayError),
                upstreamNanoseconds: trace.upstreamNanoseconds, redisNanoseconds: trace.redisNanoseconds,
                waitNanoseconds: trace.waitNanoseconds, requestID: trace.requestID)
            for observer in observers { observer.requestFinished(record) }
        }
        responder.respond(response)
    }
}
