// STAND-IN for the `load` subcommand of branch `loadgen`: drop this file when merging.
import ArgumentParser
import LoadGenerator

struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "(stand-in) Closed-loop GET load against one path on 127.0.0.1.")

    @Option(help: "Port on 127.0.0.1.") var port: Int
    @Option(help: "Request target.") var path = "/"
    @Option(help: "Connections.") var connections = 64
    @Option(help: "Seconds.") var seconds = 5

    func run() throws {
        let target = path
        let result = try LoadGenerator.run(
            LoadSpec(port: port, mode: .closedLoop(connections: connections), duration: .seconds(seconds),
                     request: { _ in LoadRequest(target: target) }), progress: nil)
        print("requests \(result.requests)  errors \(result.errors)  timeouts \(result.timeouts)  \(Int(result.requestsPerSecond)) req/s  p50 \(result.latency.p50) µs  p99 \(result.latency.p99) µs")
    }
}
