/// A set of HTTP request methods, one bit each, so that a route's method check is one AND.
///
/// The nine methods of RFC 9110/5789 have their own bit; every other method (`PURGE`,
/// `PROPFIND`, …) shares ``other``. Method names are case-sensitive (RFC 9110 §9.1).
public struct MethodSet: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let get = MethodSet(rawValue: 1 << 0)
    public static let head = MethodSet(rawValue: 1 << 1)
    public static let post = MethodSet(rawValue: 1 << 2)
    public static let put = MethodSet(rawValue: 1 << 3)
    public static let patch = MethodSet(rawValue: 1 << 4)
    public static let delete = MethodSet(rawValue: 1 << 5)
    public static let options = MethodSet(rawValue: 1 << 6)
    public static let trace = MethodSet(rawValue: 1 << 7)
    public static let connect = MethodSet(rawValue: 1 << 8)
    /// Any method not listed above.
    public static let other = MethodSet(rawValue: 1 << 15)

    /// Every method, including unknown ones: the default of pass routes.
    public static let all: MethodSet = [.get, .head, .post, .put, .patch, .delete, .options, .trace, .connect, .other]
    /// What a pass route takes unless it lists its methods: everything but TRACE, which echoes
    /// the client's credentials back (and is an old cross-site tracing primitive), and CONNECT.
    public static let passDefault: MethodSet = all.subtracting([.trace, .connect])
    /// The methods a cached route may take, and their default.
    public static let cacheable: MethodSet = [.get, .head]

    /// The names accepted in the configuration, in display order.
    public static let names: [(name: String, method: MethodSet)] = [
        ("GET", .get), ("HEAD", .head), ("POST", .post), ("PUT", .put), ("PATCH", .patch),
        ("DELETE", .delete), ("OPTIONS", .options), ("TRACE", .trace), ("CONNECT", .connect),
    ]

    /// The bit of a request's method: one of the named methods, or ``other``. Does not allocate.
    @inlinable
    public init(requestMethod method: String) {
        switch method {
        case "GET": self = .get
        case "HEAD": self = .head
        case "POST": self = .post
        case "PUT": self = .put
        case "PATCH": self = .patch
        case "DELETE": self = .delete
        case "OPTIONS": self = .options
        case "TRACE": self = .trace
        case "CONNECT": self = .connect
        default: self = .other
        }
    }

    /// The method with exactly this (case-sensitive) name, or nil for names the configuration
    /// does not accept.
    public init?(name: String) {
        guard let entry = MethodSet.names.first(where: { $0.name == name }) else { return nil }
        self = entry.method
    }

    /// `GET,HEAD`; `*` for ``all``; `other` stands for the shared bit of unknown methods.
    public var description: String {
        if self == .all { return "*" }
        if self == .passDefault { return "* but TRACE" }
        var parts = MethodSet.names.filter { contains($0.method) }.map(\.name)
        if contains(.other) { parts.append("other") }
        return parts.joined(separator: ",")
    }
}
