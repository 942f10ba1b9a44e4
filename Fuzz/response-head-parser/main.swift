// libFuzzer target for the upstream response head parser (scripts/fuzz.sh; skipped until
// Sources/GatewayUpstream/ResponseHeadParser.swift exists on this branch).
//
// Compiled into the module `GatewayUpstream` from ResponseHeadParser.swift and UpstreamError.swift
// (no curl). Written against the API announced for the extraction, and nothing more:
//
//     static func ResponseHeadParser.parse(_ bytes: [UInt8], isHead: Bool) -> Result<Head, UpstreamError>
//
// where `bytes` is a response head as received from the upstream and `Head` is whatever the parser
// returns. (main's version at 9b8e3b5 has `parse(_:isHead:maxHeaderBytes: = 64 << 10) ->
// Result<ParsedHead, UpstreamError>`; this harness builds and runs against it.) `Head` is read through `Mirror` only, so its shape may change freely: a stored property
// `status: Int` and `headers` (a sequence of (name, value) String pairs) are checked when present.
// Checks, for isHead false and true:
//
// - parsing is deterministic (same result, same error code, twice);
// - a failure is the upstream's fault: `.invalidResponse`, `.truncated` or `.bodyTooLarge` (502);
// - an accepted head has a status in 100...999, and not an interim one (1xx other than 101);
// - header names are non-empty tokens; values hold no CR, LF or NUL (they would be forwarded to the
//   client: header injection; libcurl does not check this) and no surrounding SP/HTAB;
// - isHead changes at most the body framing: when both parses succeed, status and headers agree.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzResponseHeadParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    var accepted: [HeadFields] = []
    for isHead in [false, true] {
        let first = ResponseHeadParser.parse(input, isHead: isHead)
        let second = ResponseHeadParser.parse(input, isHead: isHead)
        switch (first, second) {
        case (.success(let a), .success(let b)):
            require(String(reflecting: a) == String(reflecting: b), "two parses differ", input)
            let fields = HeadFields(a)
            fields.check(input)
            accepted.append(fields)
        case (.failure(let a), .failure(let b)):
            require(a == b && a.detail == b.detail, "two parses fail differently: \(a) / \(b)", input)
            require([UpstreamError.invalidResponse, .truncated, .bodyTooLarge].contains(a), "unexpected error \(a)", input)
            require(a.suggestedStatus == 502, "error \(a) not a 502", input)
        default:
            fail("one parse succeeded, the other failed", input)
        }
    }
    if accepted.count == 2 {
        require(accepted[0].status == accepted[1].status, "isHead changed the status", input)
        require(accepted[0].headers == accepted[1].headers, "isHead changed the headers", input)
    }
    return 0
}

/// What the harness can see of a parsed head, whatever its type.
struct HeadFields {
    var status: Int?
    var headers: [Pair]?
    var description: String

    struct Pair: Equatable {
        var name: String
        var value: String
    }

    init(_ head: Any) {
        description = String(reflecting: head)
        for child in Mirror(reflecting: head).children {
            switch child.label {
            case "status": status = child.value as? Int
            case "headers": headers = Self.pairs(child.value)
            default: break
            }
        }
    }

    /// (name, value) pairs from an array of 2-tuples, or from a type holding such an array
    /// (an `HTTPHeaders`-like wrapper); nil when the shape is something else.
    static func pairs(_ value: Any) -> [Pair]? {
        let mirror = Mirror(reflecting: value)
        if mirror.displayStyle == .struct, mirror.children.count == 1, let inner = mirror.children.first {
            return pairs(inner.value)
        }
        guard mirror.displayStyle == .collection else { return nil }
        var result: [Pair] = []
        for element in mirror.children {
            let parts = Mirror(reflecting: element.value).children.map(\.value)
            guard parts.count == 2, let name = parts[0] as? String, let value = parts[1] as? String else { return nil }
            result.append(Pair(name: name, value: value))
        }
        return result
    }

    func check(_ input: [UInt8]) {
        if let status {
            require((100...999).contains(status), "status \(status): \(description)", input)
            require(status >= 200 || status == 101, "interim status \(status) returned as final: \(description)", input)
        }
        for pair in headers ?? [] {
            let name = Array(pair.name.utf8), value = Array(pair.value.utf8)
            require(!name.isEmpty && name.allSatisfy(isToken), "header name '\(pair.name)': \(description)", input)
            require(!value.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }), "CR, LF or NUL in the value of \(pair.name): \(description)", input)
            if let first = value.first, let last = value.last {
                require(![first, last].contains(where: { $0 == 0x20 || $0 == 0x09 }), "value of \(pair.name) not trimmed: \(description)", input)
            }
        }
    }
}

/// `tchar` (RFC 9110 §5.6.2).
func isToken(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
        true
    default:
        "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}

func require(_ condition: Bool, _ what: @autoclosure () -> String, _ bytes: [UInt8]) {
    if !condition { fail(what(), bytes) }
}

func fail(_ what: String, _ bytes: [UInt8]) -> Never {
    let hex = bytes.prefix(256).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    fatalError("\(what); input (\(bytes.count) bytes): \(hex)")
}
