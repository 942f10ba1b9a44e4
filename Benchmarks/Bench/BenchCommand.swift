import ArgumentParser

@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cachegateway-bench",
        abstract: "Load-test CacheGateway against its backend and nginx proxy_cache.",
        subcommands: [Load.self, Run.self]
    )
}
