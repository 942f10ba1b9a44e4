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

    func testVersionNamesTheGatewayAndItsLibraries() throws {
        let result = try run(["--version"])
        XCTAssertEqual(result.status, 0)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, result.stdout)
        // The binary and these tests were built together, so both recorded the same commit; it
        // is one this checkout has (a tree with uncommitted changes marks it `-modified`).
        XCTAssertEqual(lines.first, "CacheGateway 0.7.0 (commit \(BuildInfo.gitCommit))")
        let commit = BuildInfo.gitCommit.replacingOccurrences(of: "-modified", with: "")
        if commit != "unknown" {
            XCTAssertNotNil(commit.wholeMatch(of: /[0-9a-f]{12}/), commit)
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            let git = Process()
            git.executableURL = URL(fileURLWithPath: "/usr/bin/git")
            git.arguments = ["-C", root.path, "cat-file", "-e", commit + "^{commit}"]
            try git.run()
            git.waitUntilExit()
            XCTAssertEqual(git.terminationStatus, 0, "\(commit) is not a commit of this checkout")
        }
        XCTAssertEqual(lines.dropFirst().first, "hiredis 0.14.1")
        XCTAssertTrue(lines.last?.hasPrefix("libcurl/") == true, result.stdout)
    }

    func testHelpNamesTheSubcommands() throws {
        let result = try run(["--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("serve"))
        XCTAssertTrue(result.stdout.contains("check-config"))
    }

    /// SIGHUP under load: a valid file's routes, TTLs and upstream take effect, an invalid one
    /// is refused with its errors logged and the running config kept; no request fails either way.
    func testSIGHUPReloadsRoutesUnderLoadAndKeepsTheOldConfigOnErrors() throws {
        let port = try RedisServerProcess.freePort()
        let second = try TestHTTPBackend(defaultBehaviour: .ok("second"))
        defer { second.stop() }
        func yaml(_ routes: String, listen: Int, upstream: String? = nil) -> String {
            """
            listen: 127.0.0.1:\(listen)
            upstream: { url: \(upstream ?? backend.baseURL) }
            redis: { url: redis://127.0.0.1:\(redis.port), key_prefix: "\(prefix)" }
            routes:
            \(routes)
            """
        }
        let path = try writeTemp(yaml("""
              - { name: catalog, match: "/catalog/**", class: public, ttl: 5m }
              - { name: rest, match: "/**", class: pass }
            """, listen: port), name: "reload.yaml")
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("reload-\(prefix).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--config", path, "--log-level", "info"]
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil { RedisServerProcess.accepts(port: port) }, "gateway did not start")
        @Sendable func status(_ target: String) -> String {
            guard let client = try? TestClient(port: port, timeout: 5),
                  (try? client.send("GET \(target) HTTP/1.1\r\nHost: t\r\n\r\n")) != nil,
                  let response = try? client.readResponse() else { return "no answer" }
            return "\(response.status) \(response.header("Cache-Status") ?? "")"
        }
        XCTAssertTrue(waitUntil { status("/catalog/a").hasSuffix("hit") })
        XCTAssertEqual(status("/fresh/a"), "200 CacheGateway; fwd=bypass; detail=pass")

        // Load from another thread for the whole test, hits and pass-throughs (which go upstream):
        // every answer must be a 200.
        let failures = LoadCounter()
        let stop = LoadCounter()
        let load = Thread {
            while stop.value == 0 {
                if !status("/catalog/a").hasPrefix("200") { failures.bump() }
                if !status("/load").hasPrefix("200") { failures.bump() }
            }
        }
        load.start()
        defer { stop.bump() }

        try yaml("""
              - { name: fresh, match: "/fresh/**", class: public, ttl: 1m }
              - { name: catalog, match: "/catalog/**", class: public, ttl: 5m }
              - { name: rest, match: "/**", class: pass }
            """, listen: port + 1, upstream: second.baseURL).write(toFile: path, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        XCTAssertTrue(waitUntil { status("/fresh/a") == "200 CacheGateway; fwd=miss; stored" }, "the new route is in effect")
        XCTAssertTrue(waitUntil { (try? String(contentsOf: log, encoding: .utf8))?.contains("config reloaded") == true })
        let reloaded = try String(contentsOf: log, encoding: .utf8)
        XCTAssertTrue(reloaded.contains("needs_restart=listen"), "a new listen address is reported, not applied: \(reloaded)")
        XCTAssertTrue(reloaded.contains("applied=routes, upstream.url, upstream.host "), "the upstream is applied: \(reloaded)")
        XCTAssertTrue(waitUntil { second.requestCount(forPath: "/load") > 0 }, "pass-throughs go to the new upstream")
        let firstAfterReload = backend.requestCount(forPath: "/load")
        XCTAssertTrue(RedisServerProcess.accepts(port: port), "still on the running address")

        try "routes:\n  - { name: broken, match: /x, class: publik, ttl: 1m }\n".write(toFile: path, atomically: true, encoding: .utf8)
        kill(process.processIdentifier, SIGHUP)
        XCTAssertTrue(waitUntil { (try? String(contentsOf: log, encoding: .utf8))?.contains("reload failed, keeping the running config") == true })
        let refused = try String(contentsOf: log, encoding: .utf8)
        XCTAssertTrue(refused.contains("reload.yaml:2:"), "errors named with file and line: \(refused)")
        XCTAssertEqual(status("/fresh/a"), "200 CacheGateway; hit", "the last good config still serves")
        XCTAssertTrue(process.isRunning)
        stop.bump()
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(failures.value, 0, "no request failed across the reloads")
        XCTAssertEqual(backend.requestCount(forPath: "/load"), firstAfterReload, "none went to the old upstream after the switch")
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

    /// logrotate's way: rename the files, SIGUSR1, and the next lines land in new files at the
    /// configured paths, the earlier ones stay in the renamed files; the application log is in
    /// the configured format; the last request before SIGTERM is logged before the exit.
    func testSIGUSR1ReopensTheLogFilesAfterARename() throws {
        backend.setBehaviour(.ok("x"), forPath: "/a")
        let port = try RedisServerProcess.freePort()
        let dir = URL(fileURLWithPath: try writeTemp("", name: "placeholder")).deletingLastPathComponent().path
        let access = dir + "/access.log", app = dir + "/app.log"
        let path = try writeTemp("""
            listen: 127.0.0.1:\(port)
            upstream: { url: \(backend.baseURL) }
            redis: { url: redis://127.0.0.1:\(redis.port), key_prefix: "\(prefix)" }
            access_log: { path: \(access), format: json }
            log: { format: json, path: \(app) }
            routes:
              - { name: rest, match: "/**", class: pass }
            """, name: "rotate.yaml")
        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--config", path, "--log-level", "info"]
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil { RedisServerProcess.accepts(port: port) }, "gateway did not start")

        func lines(_ file: String) -> [String] {
            guard let data = FileManager.default.contents(atPath: file) else { return [] }
            return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        }
        func request(_ id: String) throws {
            let client = try TestClient(port: port, timeout: 5)
            try client.send("GET /a HTTP/1.1\r\nHost: t\r\nX-Request-ID: \(id)\r\n\r\n")
            XCTAssertEqual(try client.readResponse().status, 200)
        }
        try request("before-1")
        try request("before-2")
        XCTAssertTrue(waitUntil { lines(access).count == 2 }, "\(lines(access))")
        try FileManager.default.moveItem(atPath: access, toPath: access + ".1")
        try FileManager.default.moveItem(atPath: app, toPath: app + ".1")
        kill(process.processIdentifier, SIGUSR1)
        XCTAssertTrue(waitUntil { lines(app).contains { $0.contains("log files reopened") } }, "no new application log")
        try request("after-1")
        try request("after-2")
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)

        func ids(_ file: String) throws -> [String] {
            try lines(file).map { line in
                let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
                return try XCTUnwrap(object["request_id"] as? String, line)
            }
        }
        // Sorted: each event loop writes its own lines, so two loops' lines may swap.
        XCTAssertEqual(try ids(access + ".1").sorted(), ["before-1", "before-2"])
        XCTAssertEqual(try ids(access).sorted(), ["after-1", "after-2"], "written after the reopen")
        let started = try XCTUnwrap(lines(app + ".1").first { $0.contains("gateway listening") })
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(started.utf8)) as? [String: String])
        XCTAssertEqual(object["level"], "info")
        XCTAssertEqual(object["routes"], "1")
        XCTAssertTrue(lines(app).contains { $0.contains("\"message\":\"stopped\"") }, "\(lines(app))")
    }

    /// Every application log line names its instance: `instance_id` when set, else host name and
    /// the gateway's own pid (two instances on one host differ).
    func testEveryApplicationLogLineNamesTheInstance() throws {
        for explicit in [true, false] {
            let port = try RedisServerProcess.freePort()
            let dir = URL(fileURLWithPath: try writeTemp("", name: "placeholder")).deletingLastPathComponent().path
            let app = dir + "/app.log"
            let path = try writeTemp("""
                listen: 127.0.0.1:\(port)
                \(explicit ? "instance_id: web-9" : "")
                upstream: { url: \(backend.baseURL) }
                redis: { url: redis://127.0.0.1:\(redis.port), key_prefix: "\(prefix)" }
                access_log: off
                log: { format: json, path: \(app) }
                routes:
                  - { name: rest, match: "/**", class: pass }
                """, name: "instance.yaml")
            let process = Process()
            process.executableURL = binary
            process.arguments = ["serve", "--config", path, "--log-level", "info"]
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            func lines() -> [Substring] {
                String(decoding: FileManager.default.contents(atPath: app) ?? Data(), as: UTF8.self).split(separator: "\n")
            }
            // Signals are handled once it has said so.
            XCTAssertTrue(waitUntil { lines().contains { $0.contains("gateway listening") } }, "gateway did not start")
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            let lines = lines()
            XCTAssertTrue(lines.contains { $0.contains("\"message\":\"stopped\"") }, "\(lines)")
            let expected = explicit ? "web-9" : "\(ProcessInfo.processInfo.hostName.prefix(20))"
            for line in lines {
                let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String], String(line))
                let instance = try XCTUnwrap(object["instance"], String(line))
                if explicit {
                    XCTAssertEqual(instance, expected, String(line))
                } else {
                    XCTAssertTrue(instance.hasPrefix(expected) && instance.hasSuffix(":\(process.processIdentifier)"), String(line))
                }
            }
        }
    }

    /// Run out of descriptors (a limit of 64 against `max_connections: 10000`): a new client gets a
    /// quick 503 instead of waiting unanswered, the accept loop does not spin, the log says so once,
    /// and once clients leave the gateway serves again.
    func testOutOfDescriptorsAnswers503WithoutSpinningAndRecovers() throws {
        let port = try RedisServerProcess.freePort()
        let path = try writeTemp("""
            listen: 127.0.0.1:\(port)
            server: { max_connections: 10000, event_loops: 2 }
            upstream: { url: \(backend.baseURL) }
            redis: { url: redis://127.0.0.1:\(redis.port) }
            routes:
              - { name: rest, match: "/**", class: pass }
            """, name: "fds.yaml")
        let process = Process()
        // `ulimit -n` sets the hard limit too, so the gateway cannot raise it; exec keeps the pid.
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -n 64 && exec \"$0\" \"$@\"", binary.path, "serve", "--config", path, "--log-level", "warning"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var exited = false
        defer { if !exited { kill(process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil { RedisServerProcess.accepts(port: port) }, "gateway did not start")

        func healthz(timeout: TimeInterval) throws -> (client: TestClient, response: TestClient.Response) {
            let client = try TestClient(port: port, timeout: timeout)
            try client.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            return (client, try client.readResponse())
        }

        // Keep-alive clients until the gateway has no descriptor left for the next one.
        var held: [TestClient] = []
        var refusal: TestClient.Response?
        for _ in 0..<100 {
            do {
                let (client, response) = try healthz(timeout: 3)
                if response.status == 200 {
                    held.append(client)
                    continue
                }
                refusal = response
            } catch {
                XCTFail("a client past the descriptor limit got no answer within 3 s: \(error)")
            }
            break
        }
        XCTAssertGreaterThan(held.count, 10, "the gateway served some clients first")
        XCTAssertEqual(refusal?.status, 503)
        XCTAssertEqual(refusal?.header("Connection"), "close")
        XCTAssertEqual(refusal?.text, "server out of file descriptors")

        // While still out of descriptors, more clients arrive: each is answered, and the process
        // mostly sleeps (it spun at ~80 % of a core before).
        let before = try cpuTicks(process.processIdentifier)
        let started = Date()
        for _ in 0..<3 {
            let (_, response) = try healthz(timeout: 3)
            XCTAssertEqual(response.status, 503)
        }
        // A client that connects and sends nothing is answered too: the refusal is at accept.
        let silent = try TestClient(port: port, timeout: 3)
        XCTAssertEqual(try silent.readResponse().status, 503)
        Thread.sleep(until: started.addingTimeInterval(1))
        let used = try cpuTicks(process.processIdentifier) - before
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        XCTAssertLessThan(Double(used) / ticksPerSecond / Date().timeIntervalSince(started), 0.3, "CPU share while out of descriptors")

        held.removeAll()  // closes them
        var served = false
        let deadline = Date().addingTimeInterval(5)
        while !served && Date() < deadline {
            if let (_, response) = try? healthz(timeout: 3), response.status == 200 { served = true } else { usleep(50_000) }
        }
        XCTAssertTrue(served, "the gateway serves again once clients leave")

        kill(process.processIdentifier, SIGTERM)
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        exited = true
        XCTAssertEqual(log.components(separatedBy: "out of file descriptors").count - 1, 1, log)
        XCTAssertTrue(log.contains("fd.limit=64"), log)
        XCTAssertTrue(log.contains("open file limit is below what server.max_connections needs"), log)
    }

    // MARK: - gateway purge

    /// A config for `gateway purge`: this test's Redis, and `invalidation` as given.
    private func purgeConfig(_ invalidation: String, redisPort: Int? = nil) throws -> String {
        try writeTemp("""
            listen: 127.0.0.1:0
            upstream: { url: \(backend.baseURL) }
            redis: { url: redis://127.0.0.1:\(redisPort ?? redis.port) }
            \(invalidation)
            routes:
              - { name: rest, match: "/**", class: pass }
            """, name: "purge.yaml")
    }

    func testPurgeThroughTheStreamIsAppliedByARunningGateway() throws {
        let version = CLIVersionCounter()
        backend.setBehaviour(.perRequest { _ in .ok("v\(version.value)") }, forPath: "/catalog/hot")
        let stream = "stream-" + prefix
        try startGateway(extra: "invalidation: { stream: \"\(stream)\", instance: cli-a }")
        XCTAssertTrue(waitUntil { ((try? self.redis.cli("XINFO", "GROUPS", stream)) ?? []).contains("cachegateway:cli-a") })
        XCTAssertEqual(try get("/catalog/hot").text, "v0")
        XCTAssertEqual(try get("/catalog/hot").text, "v0", "cached")

        version.bump()
        let config = try purgeConfig("invalidation: { stream: \"\(stream)\" }")
        let result = try run(["purge", "--config", config, "--path", "/catalog/hot", "--route", "nothing-here"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertNotNil(result.stdout.range(of: #"^[0-9]+-[0-9]+\n$"#, options: .regularExpression), "the entry ID: \(result.stdout)")
        XCTAssertEqual(result.stderr, "")
        XCTAssertTrue(waitUntil { self.service?.streamConsumer?.snapshot.applied == 1 })
        XCTAssertEqual(try get("/catalog/hot").text, "v1")
        // What was added is the documented event, in the `event` field.
        let entry = try redis.cli("XRANGE", stream, "-", "+")
        XCTAssertEqual(entry.suffix(2), ["event", #"{"purge":{"paths":["/catalog/hot"],"routes":["nothing-here"]},"soft":false}"#])

        let soft = try run(["purge", "--config", config, "--path", "/catalog/hot", "--tag", "t1", "--soft"])
        XCTAssertEqual(soft.status, 0, soft.stderr)
        XCTAssertEqual(try redis.cli("XRANGE", stream, "-", "+").suffix(2),
                       ["event", #"{"purge":{"paths":["/catalog/hot"],"tags":["t1"]},"soft":true}"#])
        XCTAssertTrue(waitUntil { self.service?.streamConsumer?.snapshot.applied == 2 })
    }

    /// The gateway killed (SIGKILL) after reading an event and before acknowledging it: the
    /// event stays pending in its group and is applied once the instance is back.
    func testAnEventReadButNotAcknowledgedBeforeSIGKILLIsAppliedAfterRestart() throws {
        let stream = "stream-" + prefix
        let port = try RedisServerProcess.freePort()
        let path = try writeTemp("""
            listen: 127.0.0.1:\(port)
            upstream: { url: \(backend.baseURL) }
            redis: { url: redis://127.0.0.1:\(redis.port), key_prefix: "\(prefix)" }
            invalidation: { stream: "\(stream)", instance: kill-a }
            routes:
              - { name: catalog, match: "/catalog/**", class: public, ttl: 5m }
            """, name: "kill.yaml")
        func launch() throws -> Process {
            let process = Process()
            process.executableURL = binary
            process.arguments = ["serve", "--config", path, "--log-level", "error"]
            try process.run()
            return process
        }
        var process = try launch()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let group = "cachegateway:kill-a"
        XCTAssertTrue(waitUntil { ((try? self.redis.cli("XINFO", "GROUPS", stream)) ?? []).contains(group) })
        // A route purge walks the keyspace with SCAN: with a million keys of the route it takes a
        // while, long enough to kill the gateway in the middle of it.
        _ = try redis.cli("DEBUG", "POPULATE", "1000000", prefix + "e:catalog:")
        defer { _ = try? redis.cli("FLUSHDB") }
        _ = try redis.cli("XADD", stream, "*", "event", "purge-route catalog")
        XCTAssertTrue(waitUntil(timeout: 10) { (try? self.redis.cli("XPENDING", stream, group).first) == "1" }, "read, not yet acknowledged")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(try redis.cli("XPENDING", stream, group).first, "1", "still pending after the kill")

        process = try launch()
        XCTAssertTrue(waitUntil(timeout: 60) { (try? self.redis.cli("XPENDING", stream, group).first) == "0" },
                      "re-read and applied after the restart")
        XCTAssertEqual(try redis.cli("--scan", "--pattern", prefix + "e:catalog:*").count, 0, "the purge was carried out")
    }

    func testPurgeThroughAChannelPrintsTheSubscribers() throws {
        let version = CLIVersionCounter()
        backend.setBehaviour(.perRequest { _ in .ok("v\(version.value)") }, forPath: "/catalog/hot")
        let channel = "events-" + prefix
        try startGateway(extra: "invalidation: { channel: \"\(channel)\" }")
        XCTAssertTrue(waitUntil { self.service?.subscriber?.isSubscribed == true })
        XCTAssertEqual(try get("/catalog/hot").text, "v0")
        version.bump()
        let result = try run(["purge", "-c", try purgeConfig("invalidation: { channel: \"\(channel)\" }"), "--path", "/catalog/hot"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "1 subscriber\n")
        XCTAssertTrue(waitUntil { (try? self.get("/catalog/hot").text) == "v1" })

        // Nobody listening: said on standard error, but the command did what it was asked.
        let nobody = try run(["purge", "-c", try purgeConfig("invalidation: { channel: \"nobody-\(prefix)\" }"), "--route", "catalog"])
        XCTAssertEqual(nobody.status, 0, nobody.stderr)
        XCTAssertEqual(nobody.stdout, "0 subscribers\n")
        XCTAssertTrue(nobody.stderr.contains("warning: no gateway is subscribed"), nobody.stderr)
    }

    func testPurgeWithRedisUnreachableFailsNamingTheAddress() throws {
        let port = try RedisServerProcess.freePort()
        let config = try purgeConfig("invalidation: { stream: s }", redisPort: port)
        let result = try run(["purge", "--config", config, "--path", "/x"])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stdout, "")
        XCTAssertEqual(result.stderr, "gateway purge: error: cannot reach Redis at 127.0.0.1:\(port) (redis: cannot connect: Connection refused)\n")
    }

    func testPurgeOfNothingOrWithoutInvalidationIsRefused() throws {
        let config = try purgeConfig("invalidation: { stream: s }")
        let nothing = try run(["purge", "--config", config, "--soft"])
        XCTAssertEqual(nothing.status, 64)  // EX_USAGE
        XCTAssertTrue(nothing.stderr.hasPrefix("Error: nothing to purge: give at least one --path, --route or --tag\n"), nothing.stderr)
        let relative = try run(["purge", "--config", config, "--path", "catalog/x"])
        XCTAssertEqual(relative.status, 64)
        XCTAssertTrue(relative.stderr.contains("a purged path must start with /"), relative.stderr)

        let none = try purgeConfig("")
        let unconfigured = try run(["purge", "--config", none, "--path", "/x"])
        XCTAssertEqual(unconfigured.status, 1)
        XCTAssertEqual(unconfigured.stderr, "\(none): error: invalidation: no stream or channel is configured, so no gateway would hear a purge\n")
        XCTAssertEqual(try redis.cli("EXISTS", "s"), ["0"], "nothing was sent")
    }

    /// utime + stime of a process, in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
    // MARK: - Operations: check-config --connect, listen host names, pid files, reload

    /// A config with this test's backend and Redis unless told otherwise.
    private func opsConfig(listen: String = "127.0.0.1:0", upstream: String? = nil, redis redisURL: String? = nil, extra: String = "") throws -> String {
        try writeTemp("""
            listen: \(listen)
            upstream: { url: \(upstream ?? backend.baseURL), connect_timeout: 1s }
            redis: { url: "\(redisURL ?? "redis://127.0.0.1:\(redis.port)/0")", key_prefix: "\(prefix)" }
            \(extra)
            routes:
              - { name: rest, match: "/**", class: pass }
            """, name: "ops.yaml")
    }

    func testCheckConfigConnectPassesWhenRedisAndUpstreamAnswer() throws {
        let path = try opsConfig()
        let result = try run(["check-config", "--connect", path])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("redis redis://127.0.0.1:\(redis.port)/0: ok (connected, PING answered in ") }, result.stdout)
        let upstreamPort = URL(string: backend.baseURL)!.port!
        XCTAssertTrue(lines.contains { $0.hasPrefix("upstream \(backend.baseURL): ok (connected to 127.0.0.1:\(upstreamPort) in ") }, result.stdout)
        XCTAssertEqual(lines.last, "\(path): OK")
    }

    /// A real 3-master cluster and one seed where nothing listens: every seed gets its line (the
    /// dead one fails the check), every master of the slot map is PINGed with its slots.
    func testCheckConfigConnectOnAClusterChecksEverySeedAndReportsTheMasters() throws {
        let cluster = try RedisClusterProcess()
        let closed = try RedisServerProcess.freePort()  // bound and released: nothing listens there
        let seeds = cluster.ports.map { "127.0.0.1:\($0)" }
        let result = try run(["check-config", "--connect", try opsConfig(redis: "redis+cluster://\((seeds + ["127.0.0.1:\(closed)"]).joined(separator: ","))/0")])
        XCTAssertEqual(result.status, 1, "a seed down fails the check: \(result.stdout)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        for seed in seeds {
            XCTAssertTrue(lines.contains { $0.hasPrefix("redis seed \(seed): ok (CLUSTER SLOTS answered in ") && $0.hasSuffix(": 3 master(s))") },
                          "\(seed): \(result.stdout)")
        }
        XCTAssertTrue(lines.contains { $0.hasPrefix("redis seed 127.0.0.1:\(closed): FAILED: ") && $0.contains("127.0.0.1:\(closed)") }, result.stdout)
        var slots = 0
        for seed in seeds {
            let line = try XCTUnwrap(lines.first { $0.hasPrefix("redis master \(seed): ok (") }, "\(seed): \(result.stdout)")
            XCTAssertTrue(line.contains(" slots, PING answered in "), line)
            let count = line.dropFirst("redis master \(seed): ok (".count).prefix { $0.isNumber }
            slots += Int(count) ?? 0
        }
        XCTAssertEqual(slots, 16384, "the masters' slots add up: \(result.stdout)")
        XCTAssertTrue(lines.contains { $0.hasSuffix(": ok (3 master(s) serve all 16384 slots)") }, result.stdout)

        let healthy = try run(["check-config", "--connect", try opsConfig(redis: cluster.url)])
        XCTAssertEqual(healthy.status, 0, healthy.stdout + healthy.stderr)
        XCTAssertEqual(healthy.stdout.split(separator: "\n").filter { $0.hasPrefix("redis seed ") }.count, 3, healthy.stdout)
    }

    func testCheckConfigConnectNamesAWrongPasswordWithoutPrintingIt() throws {
        let guarded = try RedisServerProcess(extraArguments: ["--requirepass", "the-right-one"])
        try guarded.start()
        defer { guarded.stop() }
        let path = try opsConfig(redis: "redis://:not-the-password@127.0.0.1:\(guarded.port)/0")
        let result = try run(["check-config", "--connect", path])
        XCTAssertEqual(result.status, 1)
        let line = result.stdout.split(separator: "\n").first { $0.hasPrefix("redis redis://") }.map(String.init) ?? ""
        XCTAssertTrue(line.hasPrefix("redis redis://:***@127.0.0.1:\(guarded.port)/0: FAILED: WRONGPASS invalid username-password pair"), result.stdout)
        XCTAssertTrue(line.contains("check the password in redis.url or redis.password_file"), line)
        XCTAssertFalse((result.stdout + result.stderr).contains("not-the-password"), "the secret is never printed")
        XCTAssertTrue(result.stdout.contains("upstream \(backend.baseURL): ok"), "the other check still runs: \(result.stdout)")
        XCTAssertEqual(result.stderr, "\(path): the file is valid, but 1 connection check(s) failed\n")

        // Without any password, NOAUTH says that one is needed.
        let none = try run(["check-config", "--connect", try opsConfig(redis: "redis://127.0.0.1:\(guarded.port)/0")])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stdout.contains("FAILED: NOAUTH Authentication required. (this Redis requires a password"), none.stdout)
    }

    func testCheckConfigConnectExplainsADatabaseThatDoesNotExist() throws {
        let result = try run(["check-config", "--connect", try opsConfig(redis: "redis://127.0.0.1:\(redis.port)/99")])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stdout.contains(
            "redis redis://127.0.0.1:\(redis.port)/99: FAILED: DB index is out of range (this Redis has 16 databases: set redis.url's /N below 16)\n"),
            result.stdout)
    }

    func testCheckConfigConnectReportsAnUpstreamThatIsDownOrUnresolvable() throws {
        let closed = try RedisServerProcess.freePort()  // bound and released: nothing listens there
        let down = try run(["check-config", "--connect", try opsConfig(upstream: "http://127.0.0.1:\(closed)")])
        XCTAssertEqual(down.status, 1)
        XCTAssertTrue(down.stdout.contains("upstream http://127.0.0.1:\(closed): FAILED: cannot connect to 127.0.0.1:\(closed): Connection refused\n"), down.stdout)
        XCTAssertTrue(down.stdout.contains("redis redis://127.0.0.1:\(redis.port)/0: ok"), down.stdout)

        let nowhere = try run(["check-config", "--connect", try opsConfig(upstream: "http://monolith.invalid:9000")])
        XCTAssertEqual(nowhere.status, 1)
        XCTAssertTrue(nowhere.stdout.contains("upstream http://monolith.invalid:9000: FAILED: cannot resolve host \"monolith.invalid\""), nowhere.stdout)
        // Without --connect nothing is contacted: the same file is valid.
        XCTAssertEqual(try run(["check-config", try opsConfig(upstream: "http://monolith.invalid:9000")]).status, 0)
    }

    func testCheckConfigRejectsAListenHostThatDoesNotResolveNamingTheLine() throws {
        let path = try opsConfig(listen: "gateway.invalid:8080")
        let result = try run(["check-config", path])
        XCTAssertEqual(result.status, 1)
        XCTAssertEqual(result.stdout, "")
        XCTAssertTrue(result.stderr.hasPrefix("\(path):1:9: error: listen: cannot resolve host \"gateway.invalid\": "), result.stderr)
        // serve agrees, and so does its --listen override.
        let serve = try run(["serve", "--config", try opsConfig(), "--listen", "gateway.invalid:0"])
        XCTAssertEqual(serve.status, 1)
        XCTAssertTrue(serve.stderr.contains("cannot listen on gateway.invalid:0: cannot resolve host \"gateway.invalid\""), serve.stderr)
    }

    /// `serve` on `localhost:0` with a pid file; `gateway reload` HUPs it; a clean exit removes
    /// the file, after which reload says the gateway is not running.
    func testServeBindsLocalhostWritesItsPidAndReloadSignalsIt() throws {
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("gw-\(prefix).pid").path
        let path = try opsConfig(listen: "localhost:0", extra: "pid_file: \(pidFile)")
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("ops-\(prefix).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--config", path, "--log-level", "info"]
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        func logText() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        XCTAssertTrue(waitUntil { logText().contains("listen host resolved") }, logText())
        XCTAssertNotNil(logText().range(of: #"listen=localhost:0 listen.address=127\.0\.0\.1:[0-9]+"#, options: .regularExpression), logText())
        XCTAssertEqual(try String(contentsOfFile: pidFile, encoding: .utf8), "\(process.processIdentifier)\n")

        // A second gateway with the same pid file is refused while the first runs.
        let second = try run(["serve", "--config", path, "--pid-file", pidFile])
        XCTAssertEqual(second.status, 1)
        XCTAssertTrue(second.stderr.contains("names a running gateway (pid \(process.processIdentifier))"), second.stderr)

        let reload = try run(["reload", "--config", path])
        XCTAssertEqual(reload.status, 0, reload.stderr)
        XCTAssertEqual(reload.stdout, "sent SIGHUP to the gateway (pid \(process.processIdentifier)): it re-reads its config and logs the result\n")
        XCTAssertTrue(waitUntil { logText().contains("config reloaded") }, logText())

        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: pidFile), "removed at a clean exit")
        let gone = try run(["reload", "--pid-file", pidFile])
        XCTAssertEqual(gone.status, 1)
        XCTAssertEqual(gone.stderr, "gateway reload: error: no pid in \(pidFile): no such file (is the gateway running with --pid-file \(pidFile) or pid_file: \(pidFile)?)\n")

        // A stale file: the process it names has exited.
        try "\(process.processIdentifier)\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
        defer { unlink(pidFile) }
        let stale = try run(["reload", "--pid-file", pidFile])
        XCTAssertEqual(stale.status, 1)
        XCTAssertTrue(stale.stderr.contains("process \(process.processIdentifier) named in \(pidFile) is not running"), stale.stderr)
    }

    /// A wrong password is one clear error line (then at most one a minute), however often the
    /// connections retry, and the gateway keeps serving meanwhile.
    func testServeWithAWrongPasswordLogsOnceAndKeepsServing() throws {
        let guarded = try RedisServerProcess(extraArguments: ["--requirepass", "the-right-one"])
        try guarded.start()
        defer { guarded.stop() }
        let port = try RedisServerProcess.freePort()
        let path = try opsConfig(listen: "127.0.0.1:\(port)", redis: "redis://:wrong-secret@127.0.0.1:\(guarded.port)/0",
                                 extra: "server: { event_loops: 2 }\ninvalidation: { channel: ops }")
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("wrongpass-\(prefix).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--config", path, "--log-level", "info"]
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil { RedisServerProcess.accepts(port: port) }, "gateway did not start")
        // Refused several times over (2 loops and the subscriber, backoff up to 1 s)...
        func refusalsCounted() -> Int {
            // INFO ends its lines with CRLF, which Swift counts as one Character: search the text.
            let info = ((try? guarded.cli("-a", "the-right-one", "--no-auth-warning", "INFO", "errorstats")) ?? []).joined()
            guard let range = info.range(of: #"errorstat_WRONGPASS:count=[0-9]+"#, options: .regularExpression) else { return 0 }
            return Int(info[range].split(separator: "=").last ?? "") ?? 0
        }
        XCTAssertTrue(waitUntil(timeout: 10) { refusalsCounted() >= 8 }, "the gateway keeps retrying: \(refusalsCounted()) refusals")
        // ...and serving without the cache.
        let client = try TestClient(port: port, timeout: 5)
        try client.send("GET /anything HTTP/1.1\r\nHost: t\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 200)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        let refusals = text.split(separator: "\n").filter { $0.contains("redis refuses the configured settings") }
        XCTAssertEqual(refusals.count, 1, text)
        XCTAssertTrue(refusals.first?.contains("redis.error=WRONGPASS") == true, text)
        XCTAssertTrue(refusals.first?.contains("redis.fix=the password (or the ACL user) is wrong") == true, text)
        XCTAssertFalse(text.contains("wrong-secret"), "the password is never logged")
    }

    private func cpuTicks(_ pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // The command name may contain spaces: count fields after its closing parenthesis.
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        return Int(fields[11])! + Int(fields[12])!
    }
}

/// A value tests bump from one thread and read from a backend's.
final class CLIVersionCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func bump() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}

private final class LoadCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func bump() { lock.withLock { n += 1 } }
    var value: Int { lock.withLock { n } }
}
