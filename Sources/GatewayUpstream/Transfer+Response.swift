internal import CCurl

private let CR = UInt8(ascii: "\r"), LF = UInt8(ascii: "\n"), SP = UInt8(ascii: " "), HT = UInt8(ascii: "\t")

/// Reading the response: our own parse of the header lines libcurl hands over, our own framing checks
/// (libcurl 7.88 reports success when the upstream closes mid-headers), and the one place that maps a
/// `CURLcode` to an ``UpstreamError``.
extension Transfer {
    /// Takes one header line from `CURLOPT_HEADERFUNCTION`.
    ///
    /// - Returns: `false` to abort the transfer (``abortError`` says why).
    func receiveHeaderLine(_ raw: UnsafeRawBufferPointer) -> Bool {
        sawResponseBytes = true
        if phase == .body { return true }  // a trailer field: not part of the response we return
        headerBytes += raw.count
        guard headerBytes <= maxHeaderBytes else {
            return abort(.invalidResponse.with(detail: "header section over \(maxHeaderBytes) bytes"))
        }
        var end = raw.count
        if end > 0 && raw[end - 1] == LF { end -= 1 }
        if end > 0 && raw[end - 1] == CR { end -= 1 }
        let line = UnsafeRawBufferPointer(rebasing: raw[0..<end])

        switch phase {
        case .statusLine:
            guard let code = Self.parseStatusLine(line) else {
                return abort(.invalidResponse.with(detail: "bad status line '\(Self.printable(line))'"))
            }
            status = code
            phase = .fields
            return true
        case .fields:
            if line.isEmpty {
                if status >= 100 && status < 200 && status != 101 {
                    // An interim response (100 Continue, 103 Early Hints): forget it, a status line follows.
                    phase = .statusLine
                    headers.removeAll(keepingCapacity: true)
                    headerBytes = 0
                    return true
                }
                return finishHeaderSection()
            }
            if line[0] == SP || line[0] == HT {
                // obs-fold (RFC 9112 §5.2): a proxy replaces it with a space.
                guard !headers.isEmpty else {
                    return abort(.invalidResponse.with(detail: "continuation line before any header field"))
                }
                headers[headers.count - 1].value += " " + Self.trimmed(line)
                return true
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else {
                return abort(.invalidResponse.with(detail: "header line without a name '\(Self.printable(line))'"))
            }
            var nameEnd = colon
            while nameEnd > 0 && (line[nameEnd - 1] == SP || line[nameEnd - 1] == HT) { nameEnd -= 1 }
            let name = UnsafeRawBufferPointer(rebasing: line[0..<nameEnd])
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else {
                return abort(.invalidResponse.with(detail: "bad header name '\(Self.printable(name))'"))
            }
            let value = Self.trimmed(UnsafeRawBufferPointer(rebasing: line[(colon + 1)...]))
            headers.append((name: String(decoding: name, as: UTF8.self), value: value))
            return true
        case .body:
            return true
        }
    }

    /// Takes body bytes from `CURLOPT_WRITEFUNCTION`.
    ///
    /// - Returns: `false` to abort the transfer (body over the limit).
    func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        sawResponseBytes = true
        guard body.count + bytes.count <= maxBodyBytes else {
            return abort(.bodyTooLarge.with(detail: "more than \(maxBodyBytes) bytes"))
        }
        body.append(contentsOf: bytes)
        return true
    }

    /// The final response's header section ended: learn its framing.
    private func finishHeaderSection() -> Bool {
        phase = .body
        var lengths: [Int] = []
        for (name, value) in headers {
            if asciiCaseInsensitiveEquals(name, "Transfer-Encoding") {
                hasTransferEncoding = true
                // The last coding decides: chunked means self-delimited, anything else means close-delimited.
                let last = value.split(separator: ",").last.map { $0.trimmingASCIIWhitespace() } ?? ""
                isChunked = asciiCaseInsensitiveEquals(String(last), "chunked")
            } else if asciiCaseInsensitiveEquals(name, "Content-Length") {
                for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                    let digits = part.trimmingASCIIWhitespace()
                    guard !digits.isEmpty, digits.utf8.count <= 18, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                          let n = Int(digits) else {
                        return abort(.invalidResponse.with(detail: "bad Content-Length '\(value)'"))
                    }
                    lengths.append(n)
                }
            }
        }
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }) else {
                return abort(.invalidResponse.with(detail: "conflicting Content-Length values"))
            }
            if !hasTransferEncoding { contentLength = first }  // Transfer-Encoding overrides (RFC 9112 §6.3)
        }
        if hasBody, let contentLength {
            guard contentLength <= maxBodyBytes else {
                return abort(.bodyTooLarge.with(detail: "Content-Length \(contentLength) over \(maxBodyBytes) bytes"))
            }
            body.reserveCapacity(contentLength)
        }
        return true
    }

    /// Whether the final response can have a body at all (RFC 9112 §6.3 rules 1 and 2).
    var hasBody: Bool { !isHead && status >= 200 && status != 204 && status != 304 }

    private func abort(_ error: UpstreamError) -> Bool {
        abortError = error
        return false
    }

    /// The outcome of a finished transfer, from libcurl's result code and what the callbacks saw.
    func result(for code: CURLcode) -> Result<UpstreamResponse, UpstreamError> {
        if let abortError { return .failure(abortError) }
        switch code {
        case CURLE_OK:
            guard phase == .body else {
                // libcurl 7.88 reports success when the connection closes inside the header section.
                return .failure(sawResponseBytes
                    ? .truncated.with(detail: "connection closed inside the response header section")
                    : .invalidResponse.with(detail: "connection closed without a response"))
            }
            let complete: Bool
            if !hasBody {
                complete = true
            } else if hasTransferEncoding {
                // libcurl fails a chunked body that ends before its last chunk; any other coding is
                // delimited by the connection closing.
                complete = isChunked
            } else if let contentLength {
                guard body.count == contentLength else {
                    return .failure(.truncated.with(detail: "\(body.count) of \(contentLength) body bytes"))
                }
                complete = true
            } else {
                complete = false
            }
            let response = UpstreamResponse(status: status, headers: headers, body: body, isCompleteByFraming: complete)
            headers = []
            body = []
            return .success(response)

        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_SSL_CONNECT_ERROR:
            return .failure(.connectFailed.with(detail: curlMessage(code)))

        case CURLE_OPERATION_TIMEDOUT:
            var connectTime: curl_off_t = 0
            var requestSize = 0
            _ = cg_easy_getinfo_off(easy, CURLINFO_CONNECT_TIME_T, &connectTime)
            _ = cg_easy_getinfo_long(easy, CURLINFO_REQUEST_SIZE, &requestSize)
            if connectTime == 0 && requestSize == 0 && connectTimeoutMs < timeoutMs {
                return .failure(.connectFailed.with(detail: curlMessage(code)))
            }
            return .failure(.timeout.with(detail: curlMessage(code)))

        case CURLE_PARTIAL_FILE:
            return .failure(.truncated.with(detail: curlMessage(code)))

        case CURLE_RECV_ERROR:
            // Broken chunk syntax lands here too ("Illegal or missing hexadecimal sequence").
            return .failure(sawResponseBytes
                ? .truncated.with(detail: curlMessage(code))
                : .transferFailed.with(detail: curlMessage(code)))

        case CURLE_GOT_NOTHING:
            return .failure(.invalidResponse.with(detail: curlMessage(code)))

        case CURLE_WEIRD_SERVER_REPLY, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_CONTENT_ENCODING, CURLE_HTTP_RETURNED_ERROR:
            // UNSUPPORTED_PROTOCOL at this point is an HTTP/0.9 answer (the scheme was checked up front).
            return .failure(.invalidResponse.with(detail: curlMessage(code)))

        case CURLE_URL_MALFORMAT:
            return .failure(.invalidRequest.with(detail: curlMessage(code)))

        default:
            return .failure(.transferFailed.with(detail: "\(curlMessage(code)) (CURLcode \(code.rawValue))"))
        }
    }

    /// The status code of `HTTP/x.y NNN reason`, or `nil`.
    static func parseStatusLine(_ line: UnsafeRawBufferPointer) -> Int? {
        // "HTTP/" DIGIT "." DIGIT SP 3DIGIT [SP reason]
        guard line.count >= 12, line.starts(with: "HTTP/".utf8), line[6] == UInt8(ascii: "."), line[8] == SP else {
            return nil
        }
        var code = 0
        for i in 9..<12 {
            let d = line[i]
            guard d >= 0x30 && d <= 0x39 else { return nil }
            code = code * 10 + Int(d - 0x30)
        }
        guard line.count == 12 || line[12] == SP, code >= 100 else { return nil }
        return code
    }

    static func trimmed(_ bytes: UnsafeRawBufferPointer) -> String {
        var lo = 0, hi = bytes.count
        while lo < hi && (bytes[lo] == SP || bytes[lo] == HT) { lo += 1 }
        while hi > lo && (bytes[hi - 1] == SP || bytes[hi - 1] == HT) { hi -= 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[lo..<hi]), as: UTF8.self)
    }

    /// At most 80 bytes, control characters shown as `?`: for error details.
    static func printable(_ bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: bytes.prefix(80).map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
    }
}

extension Substring {
    func trimmingASCIIWhitespace() -> Substring {
        var s = self[...]
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }
}
