import Foundation
import GatewayTestSupport
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The `gateway` executable itself: exit codes, messages a person reads, signals.
final class CommandLineTests: GatewayTestCase {
    /// The executables sit next to the test bundle in the build folder.
    private var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("gateway")
    }

    private func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    private func writeTemp(_ text: String, name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-cli-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testCheckConfigAcceptsTheShippedExample() throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("gateway.yaml").path
        let result = try run(["check-config", example])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("user-resources"), result.stdout)
        XCTAssertTrue(result.stdout.hasSuffix("gateway.yaml: OK\n"), result.stdout)
    }

    func testCheckConfigRejectsABadFileNamingLineAndField() throws {
        let path = try writeTemp("""
            listen: 127.0.0.1:8080
            upstream: { url: http://127.0.0.1:9000 }
            redis: { url: redis://127.0.0.1:6379 }
            routes:
              - name: a
                match: "/a/**"
                class: public
                ttl: 5x
            """, name: "bad.yaml")
        let result = try run(["check-config", path])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stdout, "")
        XCTAssertEqual(result.stderr, "\(path):8:10: error: routes[0].ttl: invalid duration \"5x\" (expected a number followed by ms, s, m or h, e.g. 250ms, 30s, 5m)\n")
        // `serve` refuses to start with the same message.
        let serve = try run(["serve", "--config", path])
        XCTAssertEqual(serve.status, 1)
        XCTAssertTrue(serve.stderr.contains(":8:10: error: routes[0].ttl"), serve.stderr)
    }

    func testMissingConfigFileIsAClearError() throws {
        let result = try run(["check-config", "/nonexistent/gateway.yaml"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("/nonexistent/gateway.yaml"), result.stderr)
    }

    func testHelpNamesTheSubcommands() throws {
        let result = try run(["--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("serve"))
        XCTAssertTrue(result.stdout.contains("check-config"))
    }

    func testSIGTERMDrainsAnInFlightRequestThenExitsZero() throws {
        backend.setBehaviour(.delayed(0.6, .ok("finished")), forPath: "/slow")
        let port = try RedisServerProcess.freePort()
        let path = try writeTemp("""
            listen: 127.0.0.1:\(port)
            server: { drain_timeout: 5s }
            upstream: { url: \(backend.baseURL) }
            redis: { url: redis://127.0.0.1:\(redis.port) }
            routes:
              - { name: rest, match: "/**", class: pass }
            """, name: "drain.yaml")
        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--config", path, "--log-level", "error"]
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil { RedisServerProcess.accepts(port: port) }, "gateway did not start")

        let client = try TestClient(port: port, timeout: 10)
        try client.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertTrue(waitUntil { self.backend.requestCount(forPath: "/slow") == 1 })
        kill(process.processIdentifier, SIGTERM)
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "finished")
        XCTAssertEqual(response.header("Connection"), "close")
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit)
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertFalse(RedisServerProcess.accepts(port: port))
    }
}
