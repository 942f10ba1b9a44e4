import GatewayCore
import GatewayRedis

extension RedisConfiguration {
    /// Where `redis.url` points (TCP or a unix socket) and how to authenticate, with the given
    /// timeouts; backoff keeps its defaults. The one place the config's URL becomes a client's.
    public init(_ url: GatewayConfig.RedisURL, commandTimeout: Duration = .milliseconds(250), connectTimeout: Duration) {
        self.init(
            host: url.host, port: url.port, database: url.database, username: url.username, password: url.password,
            commandTimeout: commandTimeout, connectTimeout: connectTimeout, unixSocketPath: url.unixSocketPath)
        clusterSeeds = url.clusterSeeds.map { ClusterNode(host: $0.host, port: $0.port) }
    }
}

extension SentinelMonitor {
    /// Asks the Sentinels of a `redis+sentinel://` URL for its master, blocking (see
    /// ``SentinelMonitor/discover(sentinels:masterName:master:timeout:trusting:)``); nil for other URLs.
    public static func discover(_ url: GatewayConfig.RedisURL, timeout: Duration) -> Discovery? {
        guard let sentinel = url.sentinel else { return nil }
        return discover(
            sentinels: sentinel.endpoints, masterName: sentinel.masterName,
            master: RedisConfiguration(url, connectTimeout: timeout), sentinelPassword: sentinel.password, timeout: timeout)
    }
}

extension GatewayConfig.RedisURL.Sentinel {
    /// The Sentinels' addresses, in the URL's order.
    public var endpoints: [SentinelMonitor.Endpoint] { nodes.map { SentinelMonitor.Endpoint(host: $0.host, port: $0.port) } }
}
