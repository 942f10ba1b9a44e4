internal import CCurl

/// One libcurl easy handle and the state of the request it carries.
///
/// Owned by ``CurlMultiLoop`` and touched only on its queue. Kept in a small free list after a
/// transfer ends and reused (after `curl_easy_reset`), so a request allocates no handle, no error
/// buffer and no transfer object. libcurl finds it again through `CURLOPT_PRIVATE`,
/// `CURLOPT_HEADERDATA` and `CURLOPT_WRITEDATA` (unretained: the loop holds it while it is added).
final class Transfer {
    let easy: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var hasBeenUsed = false

    var completion: ((Result<UpstreamResponse, UpstreamError>) -> Void)?
    var deadline: UInt64 = 0
    var connectTimeoutMs = 0
    var timeoutMs = 0

    // The response, filled by the header and write callbacks.
    var head = ResponseHeadParser(isHead: false, maxHeaderBytes: 0)
    var body: [UInt8] = []
    var sawResponseBytes = false
    /// Set by a callback that aborts the transfer (body too large, bad header line): it wins over
    /// libcurl's `CURLE_WRITE_ERROR`.
    var abortError: UpstreamError?
    var maxBodyBytes = 0

    /// - Returns: `nil` if `curl_easy_init` fails.
    init?() {
        guard let easy = curl_easy_init() else { return nil }
        self.easy = easy
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    /// Frees the easy handle; the transfer must not be added to a multi handle.
    func close() {
        curl_easy_cleanup(easy)
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
        errorBuffer.deallocate()
    }

    /// Sets every option for `request`, starting from defaults.
    ///
    /// - Parameters:
    ///   - loop: The owning loop, as user data for the open/close socket callbacks.
    /// - Returns: The first failing `curl_easy_setopt`'s code, or `CURLE_OK`.
    func configure(
        _ request: PreparedRequest, loop: UnsafeMutableRawPointer, configuration: UpstreamConfiguration,
        remainingMs: Int
    ) -> CURLcode {
        if hasBeenUsed { curl_easy_reset(easy) }
        hasBeenUsed = true
        resetResponse()
        head = ResponseHeadParser(isHead: request.bodyMode == .head, maxHeaderBytes: configuration.maxResponseHeaderBytes)
        errorBuffer[0] = 0
        deadline = request.deadline
        timeoutMs = remainingMs
        connectTimeoutMs = min(configuration.connectTimeout.curlMilliseconds, remainingMs)
        maxBodyBytes = configuration.maxResponseBodyBytes

        var rc = CURLE_OK
        func check(_ r: CURLcode) { if rc == CURLE_OK { rc = r } }
        let me = Unmanaged.passUnretained(self).toOpaque()

        check(cg_easy_setopt_ptr(easy, CURLOPT_PRIVATE, me))
        check(cg_easy_setopt_ptr(easy, CURLOPT_ERRORBUFFER, errorBuffer))
        check(cg_easy_setopt_ptr(easy, CURLOPT_URL, request.url))
        // The target goes out byte for byte: no dot-segment removal, no re-encoding by libcurl's URL parser.
        check(cg_easy_setopt_ptr(easy, CURLOPT_REQUEST_TARGET, request.target))
        check(cg_easy_setopt_ptr(easy, CURLOPT_PROTOCOLS_STR, "http,https"))
        // An empty proxy disables proxies, including those named by http_proxy & co. in the environment.
        check(cg_easy_setopt_ptr(easy, CURLOPT_PROXY, ""))
        check(cg_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        check(cg_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1)))
        check(cg_easy_setopt_long(easy, CURLOPT_HTTP_CONTENT_DECODING, 0))
        check(cg_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0))
        check(cg_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, connectTimeoutMs))
        check(cg_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, remainingMs))

        check(cg_easy_setopt_datafn(easy, CURLOPT_HEADERFUNCTION, curlHeaderCallback))
        check(cg_easy_setopt_ptr(easy, CURLOPT_HEADERDATA, me))
        check(cg_easy_setopt_datafn(easy, CURLOPT_WRITEFUNCTION, curlWriteCallback))
        check(cg_easy_setopt_ptr(easy, CURLOPT_WRITEDATA, me))
        check(cg_easy_setopt_opensocketfn(easy, curlOpenSocketCallback))
        check(cg_easy_setopt_ptr(easy, CURLOPT_OPENSOCKETDATA, loop))
        check(cg_easy_setopt_closesocketfn(easy, curlCloseSocketCallback))
        check(cg_easy_setopt_ptr(easy, CURLOPT_CLOSESOCKETDATA, loop))

        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
        for line in request.headerLines {
            // NUL-terminated bytes, not a String: a Swift String would go out as UTF-8.
            let appended = line.withUnsafeBufferPointer {
                $0.withMemoryRebound(to: CChar.self) { curl_slist_append(headerList, $0.baseAddress) }
            }
            guard let list = appended else { return CURLE_OUT_OF_MEMORY }
            headerList = list
        }
        check(cg_easy_setopt_ptr(easy, CURLOPT_HTTPHEADER, headerList))

        switch request.bodyMode {
        case .none:
            if request.method != "GET" { check(cg_easy_setopt_ptr(easy, CURLOPT_CUSTOMREQUEST, request.method)) }
        case .head:
            check(cg_easy_setopt_long(easy, CURLOPT_NOBODY, 1))
        case .send:
            // The size first: CURLOPT_COPYPOSTFIELDS copies that many bytes (none for an empty body).
            check(cg_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
            if request.body.isEmpty {
                let placeholder: [UInt8] = [0]
                placeholder.withUnsafeBytes { check(cg_easy_setopt_ptr(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress)) }
            } else {
                request.body.withUnsafeBytes { check(cg_easy_setopt_ptr(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress)) }
            }
            if request.method != "POST" { check(cg_easy_setopt_ptr(easy, CURLOPT_CUSTOMREQUEST, request.method)) }
        }
        return rc
    }

    /// Clears the response state (a spare transfer holds on to no response memory).
    func resetResponse() {
        head = ResponseHeadParser(isHead: false, maxHeaderBytes: 0)
        body = []
        sawResponseBytes = false
        abortError = nil
    }

    /// libcurl's message for the last failure: the error buffer, or `curl_easy_strerror`.
    func curlMessage(_ code: CURLcode) -> String {
        if errorBuffer[0] != 0 { return String(cString: errorBuffer) }
        return String(cString: curl_easy_strerror(code))
    }
}

// MARK: - C callbacks (run inside libcurl calls made on the loop's queue)

/// `CURLOPT_HEADERFUNCTION`: one complete header line per call, CRLF included, for every response
/// (interim ones too) and for trailers.
private func curlHeaderCallback(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?
) -> Int {
    let n = size * count
    let transfer = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
    let ok = transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: n))
    return ok ? n : 0
}

/// `CURLOPT_WRITEFUNCTION`: body bytes, after chunked decoding. Returning less than given aborts the
/// transfer with `CURLE_WRITE_ERROR`.
private func curlWriteCallback(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?
) -> Int {
    let n = size * count
    let transfer = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
    let ok = transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: n))
    return ok ? n : 0
}
