/// The gateway's `Cache-Status` entry (RFC 9211), built as a value and rendered in one place.
///
/// Rendered as `CacheGateway; hit` or `CacheGateway; fwd=miss; fwd-status=304; stored; collapsed;
/// detail=…`, parameters in that order.
public struct CacheStatus: Sendable, Equatable, CustomStringConvertible {
    /// Why the request went forward (RFC 9211 §2.2), or nil for a hit.
    public enum Forward: String, Sendable {
        /// Not a cacheable request (pass route, credentials, unlisted query, no identity).
        case bypass
        /// The method is not cached.
        case method
        /// Nothing stored for the key.
        case miss
        /// A stored response was found, but stale.
        case stale
    }

    public var forward: Forward?
    /// The status the upstream answered the forwarded request with, when it matters (a 304
    /// revalidation, the error a stale entry stood in for).
    public var forwardStatus: Int?
    /// The response was stored: Redis acknowledged the write.
    public var stored = false
    /// This request waited behind another's fetch of the same key and got its answer.
    public var collapsed = false
    /// A bounded, constant reason: `local`, `pass`, `not-stored-vary`, `redis-timeout`, ….
    public var detail: String?

    public init(forward: Forward? = nil, forwardStatus: Int? = nil, stored: Bool = false, collapsed: Bool = false, detail: String? = nil) {
        self.forward = forward
        self.forwardStatus = forwardStatus
        self.stored = stored
        self.collapsed = collapsed
        self.detail = detail
    }

    public static let hit = CacheStatus()
    public static func hit(_ detail: String) -> CacheStatus { CacheStatus(detail: detail) }
    public static func bypass(_ detail: String) -> CacheStatus { CacheStatus(forward: .bypass, detail: detail) }
    public static func miss(_ detail: String? = nil) -> CacheStatus { CacheStatus(forward: .miss, detail: detail) }

    public func with(detail: String?) -> CacheStatus {
        var copy = self
        copy.detail = detail
        return copy
    }

    public var isHit: Bool { forward == nil }

    public var description: String {
        // Every hit renders this twice (the header and the access log): a literal is neither
        // built nor allocated (17 bytes is past a small string's inline capacity).
        if self == .hit { return "CacheGateway; hit" }
        var out = "CacheGateway; "
        if let forward { out += "fwd=" + forward.rawValue } else { out += "hit" }
        if let forwardStatus { out += "; fwd-status=\(forwardStatus)" }
        if stored { out += "; stored" }
        if collapsed { out += "; collapsed" }
        if let detail { out += "; detail=" + detail }
        return out
    }
}
