import ArgumentParser
import Dispatch
import GatewayCore
import GatewayHTTP
import GatewayRedis
import GatewayRuntime

#if canImport(Glibc)
import Glibc
#endif

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a config file and print a summary of its routes.",
        discussion: """
            Exits 0 when the file is valid; otherwise prints every problem as file:line:column: error: … and exits 1. \
            The listen host is resolved as serve would. With --connect, Redis is also asked for AUTH/SELECT/PING and \
            the upstream's host is resolved and connected to (nothing is sent): one line per check, exit 1 if any fails.
            """
    )

    @Argument(help: "The config file to check.")
    var path: String = "gateway.yaml"

    @Flag(help: "Also connect to Redis (AUTH, SELECT, PING) and to the upstream (resolve, TCP connect; no request).")
    var connect = false

    func run() throws {
        let config: GatewayConfig
        do {
            config = try GatewayConfig.load(path: path)
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
        // serve resolves a listen host name at start: a name that does not resolve fails here too.
        do {
            _ = try SocketAddress.resolve(host: config.listen.host, port: config.listen.port)
        } catch {
            printError("\(config.error(at: "listen", "\(error.description)"))")
            throw ExitCode(1)
        }
        print(config.summary())
        guard connect else {
            print("\(path): OK")
            return
        }
        let checks = ConnectionCheck.redisChecks(config.redis.url) + [ConnectionCheck.upstream(config.upstream)]
        for check in checks { print(check.line) }
        guard checks.allSatisfy(\.passed) else {
            printError("\(path): the file is valid, but \(checks.filter { !$0.passed }.count) connection check(s) failed")
            throw ExitCode(1)
        }
        print("\(path): OK")
    }
}

/// One `check-config --connect` check: a line a person reads, and whether it passed. Secrets
/// never appear: URLs print with the password masked.
struct ConnectionCheck {
    var passed: Bool
    var line: String

    /// The Redis checks: for `redis+sentinel://`, a line per Sentinel (each asked for the master,
    /// which is checked with `ROLE`; one that is down or does not know the name fails: the set
    /// is less available than configured), then PING on the master the first one named;
    /// otherwise the one Redis.
    static func redisChecks(_ url: GatewayConfig.RedisURL) -> [ConnectionCheck] {
        if url.isCluster { return clusterChecks(url) }
        guard let sentinel = url.sentinel else { return [redis(url)] }
        let master = RedisConfiguration(url, connectTimeout: .seconds(2))
        var found: SentinelMonitor.Endpoint?
        var checks = sentinel.endpoints.map { node in
            let asked = SentinelMonitor.discover(
                sentinels: [node], masterName: sentinel.masterName, master: master, sentinelPassword: sentinel.password,
                timeout: .seconds(2)).answers[0]
            switch asked.result {
            case .success(let named):
                found = found ?? named
                return ConnectionCheck(passed: true, line: "sentinel \(node): ok (master \"\(sentinel.masterName)\" is \(named))")
            case .failure(let error):
                var why = error.serverMessage ?? "\(error)"
                if why.hasPrefix("redis: ") { why.removeFirst(7) }
                if why.hasPrefix("NOAUTH") {
                    why = "the Sentinel refused: \(why) (it has a password: set redis.sentinel_password)"
                }
                return ConnectionCheck(passed: false, line: "sentinel \(node): FAILED: \(why)")
            }
        }
        guard let found else {
            checks.append(ConnectionCheck(
                passed: false, line: "redis \(url): FAILED: no Sentinel names a master \"\(sentinel.masterName)\" that answers as one"))
            return checks
        }
        return checks + [redis(url.withMaster(host: found.host, port: found.port))]
    }

    /// A Redis Cluster: a line per seed (each asked for `CLUSTER SLOTS` after AUTH; one that
    /// does not answer fails, as a Sentinel does: the gateway has fewer places to start from),
    /// then a line per master of the first map read, PINGed, with the slots it serves; the last
    /// line fails when no seed answered or a slot has no master (the cluster is down there).
    static func clusterChecks(_ url: GatewayConfig.RedisURL) -> [ConnectionCheck] {
        let configuration = RedisConfiguration(url, commandTimeout: .seconds(2), connectTimeout: .seconds(2))
        var map: ClusterSlotMap?
        var checks = url.clusterSeeds.map { seed in
            let started = DispatchTime.now().uptimeNanoseconds
            switch configuration.clusterSlotMap(askingSeed: ClusterNode(host: seed.host, port: seed.port), replyTimeout: .seconds(2)) {
            case .success(let seen):
                map = map ?? seen
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
                return ConnectionCheck(
                    passed: true,
                    line: "redis seed \(seed): ok (CLUSTER SLOTS answered in \(formatMilliseconds(elapsed)): \(seen.nodes.count) master(s))")
            case .failure(let error):
                return ConnectionCheck(passed: false, line: "redis seed \(seed): FAILED: \(describe(error, url: url, at: "\(seed)"))")
            }
        }
        guard let map else {
            checks.append(ConnectionCheck(passed: false, line: "redis \(url): FAILED: no seed answered CLUSTER SLOTS"))
            return checks
        }
        for master in map.nodes {
            let started = DispatchTime.now().uptimeNanoseconds
            let slots = "\(map.slotCount(of: master)) slots"
            do {
                _ = try RedisOneShot.send([Array("PING".utf8)], configuration: configuration.pointed(at: master))
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
                checks.append(ConnectionCheck(passed: true, line: "redis master \(master): ok (\(slots), PING answered in \(formatMilliseconds(elapsed)))"))
            } catch {
                checks.append(ConnectionCheck(passed: false, line: "redis master \(master): FAILED (\(slots)): \(describe(error, url: url, at: "\(master)"))"))
            }
        }
        let served = map.nodes.reduce(0) { $0 + map.slotCount(of: $1) }
        checks.append(map.coversAllSlots
            ? ConnectionCheck(passed: true, line: "redis \(url): ok (\(map.nodes.count) master(s) serve all \(ClusterSlots.count) slots)")
            : ConnectionCheck(passed: false, line: "redis \(url): FAILED: \(ClusterSlots.count - served) of \(ClusterSlots.count) slots have no master"))
        return checks
    }

    /// Connects as the gateway would (AUTH, SELECT), then PING.
    static func redis(_ url: GatewayConfig.RedisURL) -> ConnectionCheck {
        let configuration = RedisConfiguration(url, commandTimeout: .seconds(2), connectTimeout: .seconds(2))
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            _ = try RedisOneShot.send([Array("PING".utf8)], configuration: configuration)
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
            let master = url.sentinel == nil ? "" : " to master \(url.address)"
            return ConnectionCheck(passed: true, line: "redis \(url): ok (connected\(master), PING answered in \(formatMilliseconds(elapsed)))")
        } catch {
            return ConnectionCheck(passed: false, line: "redis \(url): FAILED: \(describe(error, url: url))")
        }
    }

    /// Resolves the upstream's host and opens (then closes) a TCP connection within its connect_timeout.
    static func upstream(_ upstream: GatewayConfig.Upstream) -> ConnectionCheck {
        let url = upstream.url
        let address: SocketAddress
        do {
            address = try SocketAddress.resolve(host: url.host, port: url.port)
        } catch {
            return ConnectionCheck(passed: false, line: "upstream \(url): FAILED: \(error)")
        }
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            try TCPProbe.connect(to: address, timeout: upstream.connectTimeout)
        } catch {
            return ConnectionCheck(passed: false, line: "upstream \(url): FAILED: cannot connect to \(address): \(error.reason)")
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
        return ConnectionCheck(passed: true, line: "upstream \(url): ok (connected to \(address) in \(formatMilliseconds(elapsed)))")
    }

    /// - Parameter node: the address the error came from when it is not `url.address` (a cluster node).
    private static func describe(_ error: RedisError, url: GatewayConfig.RedisURL, at node: String? = nil) -> String {
        guard let message = error.serverMessage else {
            let text = "\(error)"
            return text.hasPrefix("redis: ") ? String(text.dropFirst("redis: ".count)) + " (\(node ?? url.address))" : text
        }
        let shown = message.hasPrefix("ERR ") ? String(message.dropFirst(4)) : message
        if message.uppercased().contains("DB INDEX IS OUT OF RANGE"), let count = databaseCount(url) {
            return "\(shown) (this Redis has \(count) databases: set redis.url's /N below \(count))"
        }
        return error.settingsHint.map { "\(shown) (\($0))" } ?? shown
    }

    /// `CONFIG GET databases` on database 0, for the "DB index is out of range" hint; nil when
    /// the server will not say (CONFIG may be renamed or denied by ACL).
    private static func databaseCount(_ url: GatewayConfig.RedisURL) -> Int? {
        var first = url
        first.database = 0
        let configuration = RedisConfiguration(first, commandTimeout: .seconds(2), connectTimeout: .seconds(2))
        guard case .array(let items)? = try? RedisOneShot.send(["CONFIG", "GET", "databases"].map { Array($0.utf8) }, configuration: configuration),
              items.count == 2, case .string(let value) = items[1]
        else { return nil }
        return Int(String(decoding: value, as: UTF8.self))
    }
}

private func formatMilliseconds(_ value: Double) -> String {
    let tenths = (value * 10).rounded()
    return "\(Int(tenths) / 10).\(Int(tenths) % 10) ms"
}

func printError(_ text: String) {
    var text = text
    if !text.hasSuffix("\n") { text += "\n" }
    // write(2) to fd 2: the C `stderr` global is not concurrency-safe in Swift 6.
    _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}
