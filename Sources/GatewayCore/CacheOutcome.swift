/// What the cache did for one request, in a handful of names: the label of the per-route request
/// counters and the `outcome` of the access log. Bounded by construction, so it can be a metric
/// label; the finer reason stays in ``CacheStatus/detail``.
public enum CacheOutcome: String, Sendable, CaseIterable {
    /// Answered from a stored entry (Redis or the in-process tier).
    case hit
    /// Fetched from upstream for this request (it led the key's fill, or could not share one).
    case miss
    /// Answered with an entry past its freshness (while revalidating, or instead of an error).
    case stale
    /// Answered by another request's fill of the same key.
    case collapsed
    /// A stale entry that the upstream confirmed with 304.
    case revalidated
    /// Not a cacheable request: a pass route, an unsafe method, credentials, no identity.
    case bypass
    /// The gateway answered with an error of its own (upstream or Redis failed, too many waiters).
    case error
    /// Refused before any cache work: a malformed or disallowed request (4xx from the gateway).
    case rejected
    /// The gateway's own endpoints (`/healthz`, `/readyz`, the purge API).
    case local

    /// - Parameters:
    ///   - status: The `Cache-Status` the answer carries; nil for an answer outside the cache.
    ///   - gatewayError: The answer is an error the gateway wrote, not the upstream's response.
    public init(status: CacheStatus?, gatewayError: Bool) {
        guard let status else {
            self = gatewayError ? .rejected : .local
            return
        }
        if gatewayError {
            self = .error
            return
        }
        switch status.forward {
        case nil:
            self = .hit
        case .stale where status.forwardStatus == 304:
            self = .revalidated
        case .stale where status.detail != nil:
            // stale-while-revalidate, stale-if-error, updating, max-waiters: the entry was served.
            self = .stale
        case .stale, .miss:
            self = status.collapsed ? .collapsed : .miss
        case .bypass, .method:
            self = .bypass
        }
    }
}
