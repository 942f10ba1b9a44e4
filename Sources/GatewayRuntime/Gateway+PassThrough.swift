import GatewayCore
import GatewayHTTP
import GatewayRedis
import GatewayUpstream
import Logging

/// Requests that are never cached or shared: pass routes, bypasses, and a waiter's own fetch.
extension Gateway {
    /// Sends the request upstream and relays the answer; nothing is stored or shared.
    func forward(_ exchange: Exchange, _ origin: OriginRequest, status: CacheStatus) {
        stats.bypass()
        let request = UpstreamRequest(origin)
        let started = RequestTrace.now()
        exchange.liveClients.upstream.execute(request) { [self] result in
            exchange.trace.addUpstream(since: started)
            switch result {
            case .success(let response):
                var headers = HeaderRules.endToEnd(HTTPHeaders(response.headers.map { ($0.name, $0.value) }))
                headers.add(name: "Cache-Status", value: status.description)
                let answer = HTTPResponse(status: response.status, headers: headers, body: response.body)
                invalidateAfterUnsafe(origin.method, path: exchange.request.head.path, response: headers,
                                      status: response.status, on: exchange.resources) {
                    exchange.respond(answer, status: status)
                }
            case .failure(let error):
                upstreamFailed(error, request: request, requestID: exchange.trace.requestID)
                let code = error.suggestedStatus
                let failed = status.with(detail: error.shortDescription)
                exchange.respond(Self.error(code, ReadThrough.upstreamMessage(code), status: failed), status: failed, gatewayError: true)
            }
        }
    }

    /// Counts and logs (at most every few seconds) an upstream failure. Its detail names
    /// addresses and libcurl's words: for the operator's log, never for the client.
    func upstreamFailed(_ error: UpstreamError, request: UpstreamRequest, requestID: String?) {
        stats.upstreamError()
        let (log, suppressed) = upstreamFailureLog.admit(now: Self.nowMilliseconds())
        if log {
            logger.warning("upstream request failed", metadata: [
                "error": "\(error)", "method": "\(request.method)", "suppressed": "\(suppressed)",
                "request_id": "\(requestID ?? "-")",
            ])
        }
    }

    /// Counts and logs (at most every few seconds) a Redis write that failed.
    func storeFailed(_ error: RedisError, route: String) {
        stats.storeError()
        let (log, suppressed) = storeFailureLog.admit(now: Self.nowMilliseconds())
        if log {
            logger.warning("cache store failed", metadata: [
                "error": "\(error)", "route": "\(route)", "suppressed": "\(suppressed)",
            ])
        }
    }
}
