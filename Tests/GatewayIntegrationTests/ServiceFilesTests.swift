import Foundation
import GatewayCore
import GatewayTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// contrib/systemd/cachegateway.service: systemd accepts it, and the two values that follow the
/// gateway's defaults (the stop timeout, the descriptor limit) cannot drift away from them.
final class ServiceFilesTests: XCTestCase {
    private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    private static let unitPath = repository.appendingPathComponent("contrib/systemd/cachegateway.service").path
    private let gateway = ChildProcess.built("gateway")

    func testSystemdAcceptsTheUnitWithoutWarnings() throws {
        let analyze = try requiredTool(["/usr/bin/systemd-analyze", "/bin/systemd-analyze"], package: "systemd")
        // verify checks that ExecStart's binary exists: point a copy of the unit at the one just built.
        let unit = try String(contentsOfFile: Self.unitPath, encoding: .utf8)
        XCTAssertTrue(unit.contains("ExecStart=/usr/local/bin/gateway serve "), "the unit's ExecStart moved: update this test")
        let dir = try temporaryDirectory()
        let copy = dir.appendingPathComponent("cachegateway.service").path
        try unit.replacingOccurrences(of: "/usr/local/bin/gateway", with: gateway.path)
            .write(toFile: copy, atomically: true, encoding: .utf8)

        let result = try run(analyze, ["verify", "--man=no", copy])
        // verify exits 0 on unknown keys and bad values too ("Unknown key 'PrivateTmpp' … ignoring"):
        // a clean unit prints nothing at all.
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(result.output, "", "systemd-analyze verify complained about the unit")
    }

    func testStopTimeoutOutlastsTheDrain() throws {
        let unit = try ServiceUnit(path: Self.unitPath)
        let stop = try XCTUnwrap(unit.seconds("TimeoutStopSec"), "TimeoutStopSec missing or not a plain time span")
        let defaultDrain = GatewayConfig.Server().drainTimeout
        let shipped = try GatewayConfig.load(path: Self.repository.appendingPathComponent("gateway.yaml").path)
        for (what, drain) in [("default", defaultDrain), ("gateway.yaml's", shipped.server.drainTimeout)] {
            // A few seconds above the drain, for closing Redis and upstream connections afterwards.
            XCTAssertGreaterThanOrEqual(stop, Double(drain.components.seconds) + 5,
                                        "TimeoutStopSec=\(stop)s leaves under 5 s past the \(what) drain_timeout \(drain) before systemd SIGKILLs")
        }
    }

    /// The need is the gateway's own figure, from its start-up warning (the formula lives in
    /// `gateway serve`), for the defaults and for the shipped gateway.yaml.
    func testDescriptorLimitCoversWhatTheGatewayNeeds() throws {
        let unit = try ServiceUnit(path: Self.unitPath)
        let limit = try XCTUnwrap(unit.value("LimitNOFILE").flatMap { Int($0) }, "LimitNOFILE missing or not one number")
        let dir = try temporaryDirectory()
        let defaults = dir.appendingPathComponent("defaults.yaml").path
        try """
            listen: 127.0.0.1:0
            upstream: { url: "http://127.0.0.1:9" }
            redis: { url: "redis://127.0.0.1:9" }
            routes:
              - { name: all, match: "/**", class: pass }
            """.write(toFile: defaults, atomically: true, encoding: .utf8)
        let configs = [defaults, Self.repository.appendingPathComponent("gateway.yaml").path]
        for config in configs {
            let needed = try descriptorsNeeded(config: config)
            XCTAssertGreaterThan(limit, needed, "LimitNOFILE=\(limit) is below the \(needed) descriptors \(config) needs")
        }
        // The figure really comes from the config: otherwise the loop above proves nothing.
        XCTAssertGreaterThan(try descriptorsNeeded(config: defaults), GatewayConfig.Server().maxConnections)
    }

    /// Starts `gateway serve` with a descriptor limit of 256 and an address it cannot bind
    /// (192.0.2.1 is TEST-NET-1): it logs the warning, then exits 1 on its own.
    private func descriptorsNeeded(config: String) throws -> Int {
        let script = "ulimit -n 256 && exec /usr/bin/timeout 20 \"$0\" \"$@\""
        let result = try run("/bin/sh", ["-c", script, gateway.path, "serve", "--config", config,
                                         "--listen", "192.0.2.1:0", "--log-level", "warning"])
        XCTAssertEqual(result.status, 1, result.output)
        XCTAssertTrue(result.output.contains("cannot listen on 192.0.2.1:0"), result.output)
        guard let line = result.output.split(separator: "\n").first(where: { $0.contains("open file limit is below") }),
              let field = line.split(separator: " ").first(where: { $0.hasPrefix("fd.needed=") }),
              let needed = Int(field.dropFirst("fd.needed=".count)) else {
            throw TestFailure("no fd.needed in the gateway's descriptor warning:\n\(result.output)")
        }
        return needed
    }

    private func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try ChildProcess.run(URL(fileURLWithPath: executable), arguments)
    }

    private func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("gw-unit-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}

private struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The `[Service]` settings of a unit file, as systemd reads the simple cases: `Key=value` lines,
/// `#` and `;` comments, the last assignment winning.
private struct ServiceUnit {
    private var settings: [String: String] = [:]

    init(path: String) throws {
        var section = ""
        for raw in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") { section = line; continue }
            guard section == "[Service]", let eq = line.firstIndex(of: "=") else { continue }
            settings[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
    }

    func value(_ key: String) -> String? { settings[key] }

    /// A time span such as `30s`, `2min` or `90` (seconds), in seconds.
    func seconds(_ key: String) -> Double? {
        guard let text = settings[key] else { return nil }
        let digits = text.prefix { $0.isNumber }
        guard let n = Double(digits) else { return nil }
        switch text.dropFirst(digits.count) {
        case "", "s", "sec": return n
        case "min": return n * 60
        case "ms": return n / 1000
        default: return nil
        }
    }
}
