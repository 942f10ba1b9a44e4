import ArgumentParser
import GatewayCore
import GatewayHTTP
import GatewayRuntime
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

    /// Installs the application log handler: `log.format` and `log.path` from the config
    /// (swift-log's plain text on stderr without one).
    /// - Returns: The log file, when `log.path` is one (SIGUSR1 reopens it).
    /// - Parameter instanceID: Added to every line as `instance` (`serve`: several instances
    ///   usually write to one log pipeline).
    @discardableResult
    func bootstrap(_ log: GatewayConfig.Log = GatewayConfig.Log(), instanceID: GatewayConfig.InstanceID? = nil) throws(SystemError) -> LogDescriptor? {
        let level = logLevel
        let metadata: Logger.Metadata = instanceID.map { ["instance": "\($0)"] } ?? [:]
        if log.format == .text && log.destination == .stderr {
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                handler.metadata = metadata
                return handler
            }
            return nil
        }
        let descriptor: LogDescriptor
        switch log.destination {
        case .stdout: descriptor = .standardOutput
        case .stderr: descriptor = .standardError
        case .file(let path): descriptor = try LogDescriptor(path: path)
        }
        LoggingSystem.bootstrap { label in
            var handler = StructuredLogHandler(label: label, format: log.format, descriptor: descriptor)
            handler.logLevel = level
            handler.metadata = metadata
            return handler
        }
        return descriptor.path == nil ? nil : descriptor
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
