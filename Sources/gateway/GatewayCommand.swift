import ArgumentParser
import GatewayRedis
import GatewayRuntime
import GatewayUpstream
import Logging

@main
struct GatewayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "CacheGateway: a read-through caching HTTP gateway in front of a slow API.",
        discussion: """
            Requests matching a cached route in the config are answered from Redis when possible; \
            a miss is fetched from the upstream once, however many clients ask at the same time, \
            stored with the route's TTL and returned. Everything else is passed through.

            Start with `gateway check-config gateway.yaml`, then `gateway serve --config gateway.yaml`.
            """,
        version: GatewayVersion.description,
        subcommands: [Serve.self, CheckConfig.self, Reload.self, Purge.self],
        defaultSubcommand: Serve.self
    )
}

/// What `gateway --version` prints: the gateway's version and the C libraries it uses.
enum GatewayVersion {
    static let number = GatewayRelease.version

    static var description: String {
        "CacheGateway \(number) (commit \(BuildInfo.gitCommit))\n\(RedisLibrary.version)\n\(UpstreamLibrary.version)"
    }
}

/// Options every subcommand shares.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func bootstrap() {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
