/// Writes a ``LoadRequest`` as HTTP/1.1 bytes into a buffer that is reused from request to
/// request (no allocation once it has grown).
struct RequestEncoder {
    /// `host:port` (brackets around an IPv6 address), the `Host` value added when the request
    /// has none.
    let hostValue: [UInt8]

    init(host: String, port: Int) {
        let h = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        hostValue = Array("\(h):\(port)".utf8)
    }

    func encode(_ request: LoadRequest, into out: inout [UInt8]) {
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: request.method.utf8)
        out.append(32)
        out.append(contentsOf: request.target.utf8)
        Self.append(" HTTP/1.1\r\n", to: &out)
        var hasHost = false
        var hasLength = false
        for (name, value) in request.headers {
            out.append(contentsOf: name.utf8)
            Self.append(": ", to: &out)
            out.append(contentsOf: value.utf8)
            Self.append("\r\n", to: &out)
            if name.utf8.count == 4 && name.lowercased() == "host" { hasHost = true }
            if name.utf8.count == 14 && name.lowercased() == "content-length" { hasLength = true }
        }
        if !hasHost {
            Self.append("Host: ", to: &out)
            out.append(contentsOf: hostValue)
            Self.append("\r\n", to: &out)
        }
        if !request.body.isEmpty && !hasLength {
            Self.append("Content-Length: ", to: &out)
            out.append(contentsOf: String(request.body.count).utf8)
            Self.append("\r\n", to: &out)
        }
        Self.append("\r\n", to: &out)
        out.append(contentsOf: request.body)
    }

    private static func append(_ s: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
}
