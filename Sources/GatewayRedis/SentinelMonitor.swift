import Dispatch
import Logging
import Synchronization

/// Finds the master of a Redis Sentinel set and follows it through failovers.
///
/// Discovery asks the Sentinels in order (`SENTINEL get-master-addr-by-name`) and checks the
/// first answer with `ROLE` on the named server (it must say `master`: a Sentinel that has not
/// yet heard of a failover names a demoted server); the next Sentinel is asked when one is down,
/// does not know the name, or named a replica.
///
/// Following runs on a thread of its own (blocking hiredis, like ``RedisSubscriber``): it
/// subscribes to `+switch-master` on a Sentinel that answered, and discovers again at once when
/// that channel announces a switch of this master, and every `pollInterval` anyway, which
/// catches a switch whose message was missed (the subscription was down, the Sentinel died) and
/// moves the subscription to another Sentinel when its own is lost. `onMaster` is called on that
/// thread with every new master, one at a time.
public final class SentinelMonitor: Sendable {
    /// A Sentinel's or a master's address.
    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// What one Sentinel said when asked.
    public struct Answer: Sendable {
        public var sentinel: Endpoint
        /// The master it named, checked with `ROLE`; or why not.
        public var result: Result<Endpoint, RedisError>
    }

    /// The outcome of asking the Sentinels: the master, if one checked out, and each Sentinel's
    /// answer up to it (all of them when none did).
    public struct Discovery: Sendable {
        public var master: Endpoint?
        public var answers: [Answer]
    }

    public let sentinels: [Endpoint]
    public let masterName: String
    /// Where the master is reached for `ROLE`: its password, user and database; host and port
    /// are replaced by each named master's.
    private let master: RedisConfiguration
    /// The Sentinels' own `requirepass`, sent as `AUTH` before their commands and the SUBSCRIBE.
    private let sentinelPassword: String?
    private let timeout: Duration
    private let pollInterval: Duration
    private let logger: Logger
    private let onMaster: @Sendable (Endpoint) -> Void

    private struct State {
        var started = false
        var stopped = false
        var current: Endpoint?
        var subscriber: RedisSubscriber?
        var subscribedTo: Endpoint?
        var unreachableLogged = false
    }
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)
    /// Signalled by a `+switch-master` message, ``recheck()`` and ``stop()``.
    private let wake = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - sentinels: asked in this order; at least one.
    ///   - masterName: the name the Sentinels monitor the master under.
    ///   - master: credentials and database of the master (host and port are ignored).
    ///   - sentinelPassword: the Sentinels' password (`requirepass` in their config); nil for none.
    ///   - timeout: bounds each connect and each reply, to a Sentinel or to a master.
    ///   - pollInterval: how often the Sentinels are asked without a message. Default: 1 s.
    ///   - onMaster: a new master was found (not called for the one passed to ``start(knownMaster:)``).
    public init(
        sentinels: [Endpoint], masterName: String, master: RedisConfiguration, sentinelPassword: String? = nil,
        timeout: Duration = .milliseconds(500), pollInterval: Duration = .seconds(1), logger: Logger,
        onMaster: @escaping @Sendable (Endpoint) -> Void
    ) {
        precondition(!sentinels.isEmpty, "SentinelMonitor needs a Sentinel")
        self.sentinels = sentinels
        self.masterName = masterName
        self.master = master
        self.sentinelPassword = sentinelPassword
        self.timeout = timeout
        self.pollInterval = pollInterval
        self.logger = logger
        self.onMaster = onMaster
    }

    /// The master last found (or passed to ``start(knownMaster:)``).
    public var currentMaster: Endpoint? { state.withLock { $0.current } }

    /// Whether the `+switch-master` subscription is in place now (for tests and health checks).
    public var isSubscribed: Bool { state.withLock { $0.subscriber?.isSubscribed ?? false } }

    /// Asks the Sentinels now, blocking: at most two connects and replies of `timeout` per Sentinel.
    /// - Parameter trusting: a master already checked: named again, it is not asked `ROLE` again.
    public func discover(trusting known: Endpoint? = nil) -> Discovery {
        Self.discover(sentinels: sentinels, masterName: masterName, master: master, sentinelPassword: sentinelPassword,
                      timeout: timeout, trusting: known)
    }

    /// Asks `sentinels` in order for `masterName`, blocking; see ``discover(trusting:)``.
    public static func discover(
        sentinels: [Endpoint], masterName: String, master: RedisConfiguration, sentinelPassword: String? = nil,
        timeout: Duration, trusting known: Endpoint? = nil
    ) -> Discovery {
        var answers: [Answer] = []
        for sentinel in sentinels {
            let result = ask(sentinel, masterName: masterName, master: master, sentinelPassword: sentinelPassword,
                             timeout: timeout, trusting: known)
            answers.append(Answer(sentinel: sentinel, result: result))
            if case .success(let found) = result { return Discovery(master: found, answers: answers) }
        }
        return Discovery(master: nil, answers: answers)
    }

    private static func ask(
        _ sentinel: Endpoint, masterName: String, master: RedisConfiguration, sentinelPassword: String?, timeout: Duration,
        trusting known: Endpoint?
    ) -> Result<Endpoint, RedisError> {
        let asked = sentinelConfiguration(sentinel, password: sentinelPassword, timeout: timeout)
        let named: Endpoint
        switch command(["SENTINEL", "get-master-addr-by-name", masterName], at: asked, timeout: timeout) {
        case .failure(let error): return .failure(error)
        case .success(.array(let parts)):
            guard parts.count == 2, case .string(let host) = parts[0], case .string(let portText) = parts[1],
                  let port = Int(String(decoding: portText, as: UTF8.self))
            else { return .failure(.protocolError("unexpected SENTINEL get-master-addr-by-name reply")) }
            named = Endpoint(host: String(decoding: host, as: UTF8.self), port: port)
        case .success(.null):
            return .failure(.server("this Sentinel does not monitor a master named \"\(masterName)\""))
        case .success:
            return .failure(.protocolError("unexpected SENTINEL get-master-addr-by-name reply"))
        }
        if named == known { return .success(named) }
        var direct = master
        direct.host = named.host
        direct.port = named.port
        direct.unixSocketPath = nil
        direct.connectTimeout = timeout
        switch command(["ROLE"], at: direct, timeout: timeout) {
        case .failure(let error):
            let why = "\(error)"
            return .failure(.connectFailed("the master it names, \(named), does not answer (\(why.hasPrefix("redis: ") ? String(why.dropFirst(7)) : why))"))
        case .success(.array(let parts)) where parts.first == .string(Array("master".utf8)):
            return .success(named)
        case .success:
            return .failure(.server("it names \(named), which is not a master (a failover in progress?)"))
        }
    }

    /// A Sentinel is reached with its own password if any, never the master's user or
    /// database (it has neither ACL users of the master nor databases to SELECT).
    private static func sentinelConfiguration(_ sentinel: Endpoint, password: String?, timeout: Duration) -> RedisConfiguration {
        RedisConfiguration(host: sentinel.host, port: sentinel.port, password: password, connectTimeout: timeout)
    }

    private static func command(_ words: [String], at configuration: RedisConfiguration, timeout: Duration) -> Result<RedisReply, RedisError> {
        switch BlockingRedisConnection.connect(configuration, replyTimeout: timeout) {
        case .failure(let error): return .failure(error)
        case .success(let connection): return connection.command(words.map { Array($0.utf8) }, timeout: timeout)
        }
    }

    /// Starts following. Call once.
    /// - Parameter knownMaster: the master in use now (found by ``discover(trusting:)`` at start-up).
    public func start(knownMaster: Endpoint?) {
        let first: Bool = state.withLock { s in
            defer { s.started = true; s.current = knownMaster }
            return !s.started
        }
        precondition(first, "SentinelMonitor.start() called twice")
        DispatchQueue(label: "gateway.sentinel-monitor").async { [self] in
            run()
            finished.signal()
        }
    }

    /// Asks the Sentinels at once rather than at the next poll (the master's connection broke).
    public func recheck() { wake.signal() }

    /// Stops following and waits for the thread. Returns at once if never started.
    public func stop() {
        let (started, subscriber): (Bool, RedisSubscriber?) = state.withLock { s in
            s.stopped = true
            defer { s.subscriber = nil }
            return (s.started, s.subscriber)
        }
        subscriber?.stop()
        guard started else { return }
        wake.signal()
        finished.wait()
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    private func run() {
        while !isStopped {
            let known = currentMaster
            let found = discover(trusting: known)
            if isStopped { break }
            report(found)
            if let master = found.master, master != known {
                state.withLock { $0.current = master }
                onMaster(master)
            }
            if let answering = found.answers.last(where: { (try? $0.result.get()) != nil })?.sentinel {
                subscribe(on: answering)
            }
            _ = wake.wait(timeout: .now() + .nanoseconds(Int(clamping: pollInterval.clampedNanoseconds)))
        }
        let subscriber = state.withLock { s in
            defer { s.subscriber = nil }
            return s.subscriber
        }
        subscriber?.stop()
    }

    /// Logs once when no Sentinel names a usable master, and once when one does again.
    private func report(_ found: Discovery) {
        let wasLogged = state.withLock { s in
            defer { s.unreachableLogged = found.master == nil }
            return s.unreachableLogged
        }
        if found.master == nil, !wasLogged {
            let reasons = found.answers.map { "\($0.sentinel): \((try? $0.result.get()).map { "\($0)" } ?? failureText($0.result))" }
            logger.warning(
                "no Sentinel names a usable master; staying on the last one",
                metadata: ["redis.master_name": "\(masterName)", "redis.sentinels": "\(reasons.joined(separator: "; "))"])
        } else if found.master != nil, wasLogged {
            logger.info("a Sentinel names a usable master again", metadata: ["redis.master_name": "\(masterName)"])
        }
    }

    /// Keeps one `+switch-master` subscription, on `sentinel` unless the one in place is up.
    private func subscribe(on sentinel: Endpoint) {
        let old: RedisSubscriber?? = state.withLock { s in
            if s.stopped { return .none }
            if let subscriber = s.subscriber, subscriber.isSubscribed || s.subscribedTo == sentinel { return .none }
            return .some(s.subscriber)
        }
        guard let old else { return }
        old?.stop()
        let name = masterName
        let wake = self.wake
        // Its lines speak of an "invalidation channel"; the metadata says which one this is.
        var logger = self.logger
        logger[metadataKey: "redis.sentinel"] = "\(sentinel)"
        let subscriber = RedisSubscriber(
            configuration: Self.sentinelConfiguration(sentinel, password: sentinelPassword, timeout: timeout),
            channel: "+switch-master", logger: logger
        ) { payload in
            // "<master-name> <old-ip> <old-port> <new-ip> <new-port>"; the address is read back
            // through discovery, which also checks it.
            if payload.split(separator: UInt8(ascii: " ")).first.map(Array.init) == Array(name.utf8) { wake.signal() }
        }
        let keep: Bool = state.withLock { s in
            guard !s.stopped else { return false }
            s.subscriber = subscriber
            s.subscribedTo = sentinel
            return true
        }
        if keep { subscriber.start() }
    }
}

private func failureText(_ result: Result<SentinelMonitor.Endpoint, RedisError>) -> String {
    if case .failure(let error) = result { return error.serverMessage ?? "\(error)" }
    return "ok"
}
