import ArgumentParser
import Foundation
import GatewayCore
import GatewayRedis
import GatewayRuntime

/// `gateway purge`: announces one purge the way the monolith does, by `XADD` to the config's
/// `invalidation.stream` (or `PUBLISH` to `invalidation.channel` when only a channel is set), so
/// that every gateway reading it applies it.
struct Purge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Purge paths, routes or tags on every gateway: publish one event to the config's invalidation stream or channel.",
        discussion: """
            The event is the JSON the gateways read, e.g. {"purge":{"paths":["/x"],"routes":["catalog"]},"soft":true}. \
            With invalidation.stream it is added with XADD (MAXLEN ~ 100000) and the entry ID is printed; with only \
            invalidation.channel it is PUBLISHed and the number of subscribers that received it is printed.
            Exits 1 when the config cannot be read, has no invalidation stream or channel, or Redis cannot be reached \
            or refuses the command.
            """
    )

    @Option(name: .shortAndLong, help: "The config file: redis.url and invalidation.stream / invalidation.channel are read from it.")
    var config: String = "gateway.yaml"

    @Option(name: .customLong("path"), help: ArgumentHelp("A request path to purge: every entry stored for it (repeatable).", valueName: "path"))
    var paths: [String] = []

    @Option(name: .customLong("route"), help: ArgumentHelp("A route name to purge: every entry of the route (repeatable).", valueName: "name"))
    var routes: [String] = []

    @Option(name: .customLong("tag"), help: ArgumentHelp("A tag to purge (repeatable); gateways that do not know tags ignore it.", valueName: "tag"))
    var tags: [String] = []

    @Flag(help: "Mark the entries stale instead of deleting them: served under stale_while_revalidate while one refresh runs.")
    var soft = false

    func validate() throws {
        guard !paths.isEmpty || !routes.isEmpty || !tags.isEmpty else {
            throw ValidationError("nothing to purge: give at least one --path, --route or --tag")
        }
        for path in paths where !path.hasPrefix("/") {
            throw ValidationError("--path \"\(path)\": a purged path must start with /")
        }
        for route in routes where route.isEmpty { throw ValidationError("--route: a route name cannot be empty") }
    }

    func run() throws {
        let loaded: GatewayConfig
        do {
            loaded = try GatewayConfig.load(path: config)
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
        guard let invalidation = loaded.invalidation, invalidation.stream != nil || invalidation.channel != nil else {
            printError("\(config): error: invalidation: no stream or channel is configured, so no gateway would hear a purge")
            throw ExitCode(1)
        }
        let event = Self.eventJSON(paths: paths, routes: routes, tags: tags, soft: soft)
        var url = loaded.redis.url
        if let sentinel = url.sentinel {
            // The event goes to the master the Sentinels name now, as the gateways' do.
            guard let master = SentinelMonitor.discover(url, timeout: .seconds(2))?.master else {
                printError("gateway purge: error: no Sentinel of \(url) names a master \"\(sentinel.masterName)\" that answers as one")
                throw ExitCode(1)
            }
            url = url.withMaster(host: master.host, port: master.port)
        }
        let redis = RedisConfiguration(url, commandTimeout: .seconds(2), connectTimeout: .seconds(2))
        let argv: [[UInt8]]
        if let stream = invalidation.stream {
            argv = ["XADD", stream, "MAXLEN", "~", "100000", "*", "event"].map { Array($0.utf8) } + [event]
        } else {
            argv = [Array("PUBLISH".utf8), Array(invalidation.channel!.utf8), event]
        }
        let reply: RedisReply
        do {
            reply = try RedisOneShot.send(argv, configuration: redis)
        } catch {
            printError("gateway purge: error: \(Self.describe(error, url: url))")
            throw ExitCode(1)
        }
        switch reply {
        case .string(let id) where invalidation.stream != nil:
            print(String(decoding: id, as: UTF8.self))
        case .integer(let receivers) where invalidation.stream == nil:
            print("\(receivers) subscriber\(receivers == 1 ? "" : "s")")
            if receivers == 0 {
                printError("gateway purge: warning: no gateway is subscribed to \(invalidation.channel!): the purge reached nobody (pub/sub keeps no messages)")
            }
        default:
            printError("gateway purge: error: unexpected reply from Redis: \(reply)")
            throw ExitCode(1)
        }
    }

    /// The event as the gateways parse it: keys sorted, empty lists left out, slashes unescaped.
    static func eventJSON(paths: [String], routes: [String], tags: [String], soft: Bool) -> [UInt8] {
        struct Event: Encodable {
            struct Purge: Encodable {
                var paths: [String]?
                var routes: [String]?
                var tags: [String]?
            }
            var purge: Purge
            var soft: Bool
        }
        let event = Event(purge: .init(paths: paths.isEmpty ? nil : paths, routes: routes.isEmpty ? nil : routes,
                                       tags: tags.isEmpty ? nil : tags), soft: soft)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Strings and booleans only: encoding cannot fail.
        return Array(try! encoder.encode(event))
    }

    private static func describe(_ error: RedisError, url: GatewayConfig.RedisURL) -> String {
        switch error.shortDescription {
        case "connect_failed", "disconnected", "timeout":
            "cannot reach Redis at \(url.address) (\(error))"
        default:
            "Redis at \(url.address) refused the purge (\(error))"
        }
    }
}
