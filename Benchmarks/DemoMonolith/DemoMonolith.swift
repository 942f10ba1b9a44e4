import ArgumentParser
import Dispatch
import Foundation
import GatewayHTTP
import Synchronization

/// A stand-in for the HR company's slow monolith: catalog endpoints that are the same for
/// everyone, per-user resource endpoints that are slower (the monolith calls another service),
/// a cap on how many requests it works on at once (the database that locks up), and a count of
/// calls per path so that tests and the benchmark can see what reached it.
@main
struct DemoMonolith: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-monolith",
        abstract: "A deliberately slow HTTP backend for trying out and benchmarking CacheGateway.",
        discussion: """
            Endpoints:
              GET /catalog/...              public JSON, after --delay
              GET /users/{user}/resources   per-user JSON naming the caller's Authorization, after 2×--delay
              GET /__stats                  calls per path as JSON ({"total": N, "paths": {...}})
              POST /__reset                 zero the counters
              POST /__version               bump the data version every answer names ("version": N); answers the new one
              any other method/path         echoes method, path and body
            Query overrides on any path: delay_ms=N, size=N (body bytes), status=N.
            """
    )

    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port to bind.") var port = 9000
    @Option(help: "Work time per catalog request in milliseconds (resources take twice as long).")
    var delay = 100
    @Option(help: "Approximate response body size in bytes.") var bodySize = 1024
    @Option(help: "Requests worked on at once; the rest queue (0 = unlimited). Models the database lock.")
    var concurrency = 0
    @Option(help: "Event loops.") var eventLoops = 1

    func run() throws {
        var configuration = HTTPServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.eventLoops = eventLoops
        configuration.maxConnections = 20_000
        configuration.maxRequestsPerConnection = Int.max
        let backend = Backend(delayMs: delay, bodySize: bodySize, concurrency: concurrency)
        let server = HTTPServer(configuration: configuration, handler: backend)
        try server.start()
        let banner = "demo-monolith listening on \(server.localAddress!) (delay \(delay) ms, body \(bodySize) B, concurrency \(concurrency == 0 ? "unlimited" : String(concurrency)))\n"
        // Unbuffered, so a script waiting for this line sees it at once.
        FileHandle.standardOutput.write(Data(banner.utf8))
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let stop = DispatchSemaphore(value: 0)
        let sources = [SIGTERM, SIGINT].map { sig in
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { stop.signal() }
            s.resume()
            return s
        }
        // Keep the sources alive while waiting: released, they would stop handling the signals.
        withExtendedLifetime(sources) { stop.wait() }
    }
}

final class Backend: HTTPHandler, @unchecked Sendable {
    let delayMs: Int
    let bodySize: Int
    let concurrency: Int
    /// Owns the counters and the work queue.
    private let state = DispatchQueue(label: "demo-monolith.state")
    private var counts: [String: Int] = [:]
    private var total = 0
    private var working = 0
    private var waiting: [() -> Void] = []
    /// The data's version, named in every answer: `POST /__version` bumps it (a change the
    /// benchmark then purges). Read when the answer is made, after the delay.
    private var version = 0
    private let timers = DispatchQueue(label: "demo-monolith.timers", attributes: .concurrent)

    init(delayMs: Int, bodySize: Int, concurrency: Int) {
        self.delayMs = delayMs
        self.bodySize = bodySize
        self.concurrency = concurrency
    }

    func handle(_ request: HTTPRequest, context: HTTPRequestContext, responder: HTTPResponder) {
        let head = request.head
        if head.path == "/__stats" {
            state.async {
                let paths = self.counts.sorted { $0.key < $1.key }.map { "\"\(jsonEscape($0.key))\": \($0.value)" }
                let body = "{\"total\": \(self.total), \"paths\": {\(paths.joined(separator: ", "))}}\n"
                responder.respond(Backend.json(200, body))
            }
            return
        }
        if head.path == "/__reset" {
            state.async {
                self.counts.removeAll()
                self.total = 0
                responder.respond(.text(200, "reset"))
            }
            return
        }
        if head.path == "/__version" && head.method == "POST" {
            state.async {
                self.version += 1
                responder.respond(.text(200, "\(self.version)"))
            }
            return
        }
        let params = Backend.queryParameters(head.query)
        let isResource = head.path.hasPrefix("/users/") && head.path.hasSuffix("/resources")
        let delay = params["delay_ms"].flatMap(Int.init) ?? (isResource ? delayMs * 2 : delayMs)
        let size = params["size"].flatMap(Int.init) ?? bodySize
        let status = params["status"].flatMap(Int.init) ?? 200
        let key = head.target
        state.async {
            self.counts[key, default: 0] += 1
            self.total += 1
            self.admit {
                self.timers.asyncAfter(deadline: .now() + .milliseconds(delay)) {
                    let version = self.state.sync { self.version }
                    responder.respond(self.answer(request, isResource: isResource, size: size, status: status, version: version))
                    self.state.async { self.finished() }
                }
            }
        }
    }

    /// Runs `work` now if under the concurrency cap, else when a slot frees (FIFO). On `state`.
    private func admit(_ work: @escaping () -> Void) {
        if concurrency == 0 || working < concurrency {
            working += 1
            work()
        } else {
            waiting.append(work)
        }
    }

    private func finished() {
        if !waiting.isEmpty {
            let next = waiting.removeFirst()
            next()
        } else {
            working -= 1
        }
    }

    private func answer(_ request: HTTPRequest, isResource: Bool, size: Int, status: Int, version: Int) -> HTTPResponse {
        let head = request.head
        var prefix: String
        if head.method != "GET" && head.method != "HEAD" {
            prefix = "{\"method\": \"\(head.method)\", \"path\": \"\(jsonEscape(head.target))\", \"body\": \"\(jsonEscape(String(decoding: request.body, as: UTF8.self)))\""
        } else if isResource {
            let user = head.headers["Authorization"] ?? "anonymous"
            prefix = "{\"resources_of\": \"\(jsonEscape(user))\", \"path\": \"\(jsonEscape(head.target))\""
        } else {
            prefix = "{\"catalog\": \"\(jsonEscape(head.target))\""
        }
        prefix += ", \"version\": \(version), \"served_at\": \(Int(Date().timeIntervalSince1970 * 1000)), \"padding\": \""
        let padding = max(0, size - prefix.utf8.count - 3)
        let body = prefix + String(repeating: "x", count: padding) + "\"}\n"
        var response = Backend.json(status, body)
        if isResource { response.headers.add(name: "Vary", value: "Authorization") }
        return response
    }

    static func json(_ status: Int, _ body: String) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        return HTTPResponse(status: status, headers: headers, body: Array(body.utf8))
    }

    static func queryParameters(_ query: String?) -> [String: String] {
        var result: [String: String] = [:]
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            result[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return result
    }
}

func jsonEscape(_ s: String) -> String {
    var out = ""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out
}
