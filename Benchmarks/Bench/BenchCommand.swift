import ArgumentParser

@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cachegateway-bench",
        abstract: "The CacheGateway benchmark: an HTTP/1.1 load generator that does not lie about latency.",
        discussion: """
            `load` puts load on one URL: a closed loop (each connection sends its next request when the \
            previous answer is in) or, with --rate, an open loop (requests sent on a fixed schedule, \
            latency counted from the scheduled time, so a stalled server shows up in the percentiles).
            `run` starts the demo monolith, Redis, the gateway and (when installed) nginx proxy_cache, runs \
            the scenarios (hit, miss, herd, users, shield) against each, checks their invariants and writes \
            a table, a JSON file and an HTML report.
            """,
        subcommands: [Load.self, Run.self]
    )
}
