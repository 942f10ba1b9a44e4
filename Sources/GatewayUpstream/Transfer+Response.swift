internal import CCurl

/// Reading the response: ``ResponseHeadParser`` checks the header lines libcurl hands over, the
/// framing checks are ours too (libcurl 7.88 reports success when the upstream closes mid-headers),
/// and this is the one place that maps a `CURLcode` to an ``UpstreamError``.
extension Transfer {
    /// Takes one header line from `CURLOPT_HEADERFUNCTION`.
    ///
    /// - Returns: `false` to abort the transfer (``abortError`` says why).
    func receiveHeaderLine(_ raw: UnsafeRawBufferPointer) -> Bool {
        sawResponseBytes = true
        let wasComplete = head.isComplete
        guard head.consume(line: raw) else { return abort(head.error ?? .invalidResponse) }
        return wasComplete || !head.isComplete || startBody()
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

    /// The final response's header section ended: refuse an announced body over the limit at once.
    private func startBody() -> Bool {
        if case .contentLength(let length) = head.framing {
            guard length <= maxBodyBytes else {
                return abort(.bodyTooLarge.with(detail: "Content-Length \(length) over \(maxBodyBytes) bytes"))
            }
            body.reserveCapacity(length)
        }
        return true
    }

    private func abort(_ error: UpstreamError) -> Bool {
        abortError = error
        return false
    }

    /// The outcome of a finished transfer, from libcurl's result code and what the callbacks saw.
    func result(for code: CURLcode) -> Result<UpstreamResponse, UpstreamError> {
        if let abortError { return .failure(abortError) }
        switch code {
        case CURLE_OK:
            guard head.isComplete else {
                // libcurl 7.88 reports success when the connection closes inside the header section.
                return .failure(sawResponseBytes
                    ? .truncated.with(detail: "connection closed inside the response header section")
                    : .invalidResponse.with(detail: "connection closed without a response"))
            }
            let complete: Bool
            switch head.framing {
            case .none:
                complete = true
            case .chunked:
                // libcurl fails a chunked body that ends before its last chunk.
                complete = true
            case .contentLength(let length):
                guard body.count == length else {
                    return .failure(.truncated.with(detail: "\(body.count) of \(length) body bytes"))
                }
                complete = true
            case .closeDelimited:
                complete = false
            }
            let response = UpstreamResponse(status: head.status, headers: head.headers, body: body, isCompleteByFraming: complete)
            head = ResponseHeadParser(isHead: head.isHead, maxHeaderBytes: head.maxHeaderBytes)
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
}
