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
            """,
        // `Run` (the scenarios: hit, miss, herd, users, shield, with a report) gets added here.
        subcommands: [Load.self]
    )
}
