import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real 3-master Redis Cluster on 127.0.0.1 for tests: three `redis-server --cluster-enabled
/// yes` on kernel-chosen ports (the bus ports too: `cluster-port`, since port + 10000 may not
/// exist), joined by `redis-cli --cluster create … --cluster-replicas 0`. Stopped on deinit.
/// Not thread-safe: use it from the test's own thread.
public final class RedisClusterProcess {
    public enum Failure: Error, CustomStringConvertible {
        case command(String, output: String)
        case notReady(String)

        public var description: String {
            switch self {
            case .command(let command, let output): "\(command) failed: \(output)"
            case .notReady(let info): "the cluster did not reach cluster_state:ok: \(info)"
            }
        }
    }

    public let nodes: [RedisServerProcess]
    public var ports: [Int] { nodes.map(\.port) }

    /// Starts the three nodes, creates the cluster (slots split evenly) and waits (up to 15 s)
    /// until every node reports `cluster_state:ok`.
    public init(masters: Int = 3) throws {
        nodes = try (0..<masters).map { _ in
            try RedisServerProcess(extraArguments: [
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", String(try RedisServerProcess.freePort()),
                "--cluster-node-timeout", "5000",
            ])
        }
        for node in nodes { try node.start() }
        let create = try Self.redisCLI(["--cluster", "create"] + ports.map { "127.0.0.1:\($0)" } + ["--cluster-replicas", "0", "--cluster-yes"])
        guard create.status == 0 else { throw Failure.command("redis-cli --cluster create", output: create.output) }
        try waitUntilOK()
    }

    deinit {
        for node in nodes { node.stop() }
    }

    /// `redis+cluster://127.0.0.1:a,127.0.0.1:b,…` (every node a seed).
    public var url: String { "redis+cluster://" + ports.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/0" }

    /// Waits until every node says `cluster_state:ok` and agrees on the slots (bounded: 150 polls).
    public func waitUntilOK() throws {
        var info = ""
        for _ in 0..<150 {
            let states = try nodes.map { try $0.cli("CLUSTER", "INFO").first { $0.hasPrefix("cluster_state:") } ?? "" }
            let check = try Self.redisCLI(["--cluster", "check", "127.0.0.1:\(ports[0])"])
            info = states.joined(separator: ",")
            if states.allSatisfy({ $0.hasPrefix("cluster_state:ok") }) && check.status == 0 && !check.output.contains("[ERR]") { return }
            usleep(100_000)
        }
        throw Failure.notReady(info)
    }

    /// The node's cluster ID (`CLUSTER MYID`).
    public func nodeID(_ index: Int) throws -> String {
        try nodes[index].cli("CLUSTER", "MYID").first ?? ""
    }

    /// Moves `slots` slots from node `from` to node `to` with `redis-cli --cluster reshard` (which
    /// migrates their keys with `MIGRATE`, so clients see `-ASK` and then `-MOVED`).
    public func reshard(slots: Int, from: Int, to: Int) throws {
        let result = try Self.redisCLI([
            "--cluster", "reshard", "127.0.0.1:\(ports[0])",
            "--cluster-from", try nodeID(from), "--cluster-to", try nodeID(to),
            "--cluster-slots", String(slots), "--cluster-yes",
        ])
        guard result.status == 0 else { throw Failure.command("redis-cli --cluster reshard", output: String(result.output.suffix(2000))) }
    }

    /// The index of the node serving `slot` now, as each node's own `CLUSTER NODES` line says.
    public func owner(ofSlot slot: Int) throws -> Int? {
        for (index, node) in nodes.enumerated() {
            let mine = try node.cli("CLUSTER", "NODES").first { $0.contains("myself") } ?? ""
            // Fields 9… are the node's slots: `a-b` ranges, single slots, `[…]` migrations.
            for field in mine.split(separator: " ").dropFirst(8) where !field.hasPrefix("[") {
                let bounds = field.split(separator: "-").compactMap { Int($0) }
                if let low = bounds.first, (low...(bounds.last ?? low)).contains(slot) { return index }
            }
        }
        return nil
    }

    /// Moves one slot and the given keys in it from node `from` to node `to` by hand, the steps
    /// `redis-cli --cluster reshard` takes for each slot (`SETSLOT IMPORTING/MIGRATING`,
    /// `MIGRATE`, `SETSLOT NODE` on every node).
    public func moveSlot(_ slot: Int, keys: [String], from: Int, to: Int) throws {
        let fromID = try nodeID(from), toID = try nodeID(to)
        let steps: [(RedisServerProcess, [String])] = [
            (nodes[to], ["CLUSTER", "SETSLOT", String(slot), "IMPORTING", fromID]),
            (nodes[from], ["CLUSTER", "SETSLOT", String(slot), "MIGRATING", toID]),
        ] + keys.map { (nodes[from], ["MIGRATE", "127.0.0.1", String(nodes[to].port), $0, "0", "5000"]) }
            + nodes.map { ($0, ["CLUSTER", "SETSLOT", String(slot), "NODE", toID]) }
        for (node, command) in steps {
            let reply = try node.cli(command)
            guard reply == ["OK"] || reply == ["NOKEY"] else { throw Failure.command(command.joined(separator: " "), output: reply.joined(separator: "\n")) }
        }
    }

    /// Runs `/usr/bin/redis-cli ARGS…`; its status and its output (stdout and stderr).
    public static func redisCLI(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
