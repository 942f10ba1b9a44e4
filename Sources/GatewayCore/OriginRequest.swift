/// A request for the upstream, as plain values: what the planner decided to send. The runtime
/// hands it to the upstream client as it is.
public struct OriginRequest: Sendable {
    public var method: String
    /// Origin-form `"/path?query"` (or `*` with OPTIONS).
    public var pathAndQuery: String
    /// In the order to send them; framing fields are the client's to set.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String = "GET", pathAndQuery: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.pathAndQuery = pathAndQuery
        self.headers = headers
        self.body = body
    }
}
