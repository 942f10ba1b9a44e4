import GatewayHTTP

@testable import GatewayCore

extension [ReadThrough.Action] {
    /// A one-line summary of each action, so that each state-machine test reads as a transcript.
    var transcript: [String] {
        map { action in
            switch action {
            case .lookup: "lookup"
            case .lookupVariant(let selector): "lookup-variant \(selector)"
            case .reply(.entry(let e, let status, let age)): "reply \(String(decoding: e.body, as: UTF8.self)) [\(status)]\(age ? " age" : "")"
            case .reply(.error(let code, _, let status)): "reply \(code) [\(status)]"
            case .reply(.origin(let r, let status)): "reply origin \(r.status) [\(status)]"
            case .join(let max): "join max=\(max)"
            case .joinRefresh: "join-refresh"
            case .fetch(let request):
                "fetch" + request.headers.filter { $0.name.hasPrefix("If-") }.map { " \($0.name)=\($0.value)" }.joined()
            case .forward(_, let status): "forward [\(status)]"
            case .complete(.shared(let e, let vary), let hold): "complete shared \(String(decoding: e.body, as: UTF8.self))\(vary == nil ? "" : " vary")\(hold ? " hold" : "")"
            case .complete(.failed(let status, _), _): "complete failed \(status)"
            case .complete(.refetch, _): "complete refetch"
            case .store(_, let ttl, let variant): "store ttl=\(ttl)" + (variant.map { " variant \($0.names.joined(separator: ","))" } ?? "")
            case .markUncacheable(let ms): "uncacheable \(ms)"
            case .release(let after): "release after=\(after)"
            case .armDeadline(let ms): "deadline \(ms)"
            case .leaveFlight: "leave"
            case .tag(let tags): "tag \(tags.joined(separator: ","))"
            case .acquireLease(let ttl): "lease ttl=\(ttl)"
            case .awaitRemoteFill: "await-remote"
            case .recheck: "recheck"
            case .armLeaseRetry(let ms): "lease-retry \(ms)"
            case .stopAwaitingRemote: "stop-remote"
            case .announce(let fill): "announce \(fill.message(key: "k"))"
            }
        }
    }
}
