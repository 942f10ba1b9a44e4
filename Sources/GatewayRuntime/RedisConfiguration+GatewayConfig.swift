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
