import GatewayTestSupport
import Dispatch
import Foundation
import Synchronization
import XCTest

@testable import GatewayHTTP

/// Answers `/echo` with the request's body, `/echo-header` with the request's `X-Echo` field as its
/// own, `/slow?ms=N` after N ms, `/path` with its own path; counts requests.
private final class TestHandler: HTTPHandler {
    let served = Atomic<Int>(0)

    func handle(_ request: HTTPRequest, context: HTTPRequestContext, responder: HTTPResponder) {
        served.add(1, ordering: .relaxed)
        let head = request.head
        switch head.path {
        case "/echo":
            var headers = HTTPHeaders()
            headers.add(name: "X-Method", value: head.method)
            responder.respond(HTTPResponse(status: 200, headers: headers, body: request.body))
        case "/echo-header":
            var headers = HTTPHeaders()
            headers.add(name: "X-Echo", value: head.headers["X-Echo"] ?? "")
            headers.add(name: "X-Snowman", value: "\u{2603}")
            responder.respond(HTTPResponse(status: 200, headers: headers))
        case "/slow":
            let ms = head.query.flatMap { Int($0.dropFirst(3)) } ?? 100
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(ms)) {
                responder.respond(.text(200, "slow \(ms)"))
            }
        default:
            responder.respond(.text(200, head.path))
        }
    }
}

final class HTTPServerTests: XCTestCase {
    private var server: HTTPServer!
    private var handler: TestHandler!
    private var port: Int { server.localAddress!.port }

    private func startServer(_ configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws {
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.eventLoops = 2
        configure(&configuration)
        handler = TestHandler()
        server = HTTPServer(configuration: configuration, handler: handler)
        try server.start()
    }

    override func tearDown() {
        if let server {
            let done = expectation(description: "drained")
            server.shutdown(drainTimeout: .seconds(1)) { done.fulfill() }
            wait(for: [done], timeout: 5)
        }
        server = nil
    }

    func testKeepAliveThousandSequentialRequests() throws {
        try startServer()
        let client = try TestClient(port: port)
        for i in 0..<1000 {
            try client.send("GET /n\(i) HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.text, "/n\(i)\n")
        }
        XCTAssertEqual(server.connectionCount, 1)
        XCTAssertEqual(handler.served.load(ordering: .relaxed), 1000)
    }

    func testPipelinedRequestsAnsweredInOrder() throws {
        try startServer()
        let client = try TestClient(port: port)
        // Earlier requests are slower, so answers are ready in reverse order.
        var batch = ""
        for i in 0..<10 { batch += "GET /slow?ms=\(200 - i * 20) HTTP/1.1\r\nHost: x\r\n\r\n" }
        try client.send(batch)
        for i in 0..<10 {
            let response = try client.readResponse()
            XCTAssertEqual(response.text, "slow \(200 - i * 20)\n")
        }
    }

    func testTwoHundredConcurrentConnections() throws {
        try startServer()
        let clients = try (0..<200).map { _ in try TestClient(port: port) }
        for (i, client) in clients.enumerated() {
            try client.send("GET /slow?ms=\(50 + i % 7) HTTP/1.1\r\nHost: x\r\n\r\n")
        }
        for (i, client) in clients.enumerated() {
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.text, "slow \(50 + i % 7)\n")
        }
        XCTAssertEqual(server.connectionCount, 200)
    }

    func testSlowlorisIsCutOffWhileOthersAreServed() throws {
        try startServer { $0.headerTimeout = .milliseconds(300) }
        let slow = try TestClient(port: port)
        try slow.send("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        let started = Date()
        // Meanwhile another client is served normally.
        let other = try TestClient(port: port)
        try other.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try other.readResponse().text, "/ok\n")
        // The stalled client gets a 408 and is closed, not kept forever.
        let response = try slow.readResponse()
        XCTAssertEqual(response.status, 408)
        XCTAssertTrue(slow.waitForClose())
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.25)
    }

    func testIdleKeepAliveConnectionIsClosed() throws {
        try startServer { $0.idleTimeout = .milliseconds(200) }
        let client = try TestClient(port: port)
        try client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 200)
        XCTAssertTrue(client.waitForClose())
    }

    func testOversizedHeadersGet431AndServerKeepsServing() throws {
        try startServer { $0.parserLimits.maxHeaderBytes = 1024 }
        let client = try TestClient(port: port)
        try client.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 431)
        XCTAssertEqual(response.header("Connection"), "close")
        XCTAssertTrue(client.waitForClose())

        let next = try TestClient(port: port)
        try next.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try next.readResponse().text, "/after\n")
    }

    func testMalformedRequestGets400AndClose() throws {
        try startServer()
        let client = try TestClient(port: port)
        try client.send("GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 400)
        XCTAssertTrue(client.waitForClose())
    }

    func testObsTextInHeaderValuesIsRelayedByteForByte() throws {
        try startServer()
        let client = try TestClient(port: port)
        try client.send(Array("GET /echo-header HTTP/1.1\r\nHost: x\r\nX-Echo: caf".utf8) + [0xE9, 0x20, 0x80, 0xFF] + Array("\r\n\r\n".utf8))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertTrue(response.rawHead.contains(Array("\r\nX-Echo: caf".utf8) + [0xE9, 0x20, 0x80, 0xFF, 0x0D, 0x0A]),
                      String(decoding: response.rawHead, as: UTF8.self))
        // A scalar above U+00FF cannot come from a parsed message; it is written as UTF-8, as before.
        XCTAssertTrue(response.rawHead.contains(Array("\r\nX-Snowman: ".utf8) + [0xE2, 0x98, 0x83, 0x0D, 0x0A]))
    }

    func testHeadHasContentLengthButNoBody() throws {
        try startServer()
        let client = try TestClient(port: port)
        try client.send("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        let head = try client.readResponse(head: true)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("Content-Length"), "7")
        // Had the server sent a body, it would be parsed as the next response's status line.
        XCTAssertEqual(try client.readResponse().text, "/next\n")
    }

    func testConnectionCloseIsHonoured() throws {
        try startServer()
        let client = try TestClient(port: port)
        try client.send("GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let response = try client.readResponse()
        XCTAssertEqual(response.header("Connection"), "close")
        XCTAssertTrue(client.waitForClose())
    }

    func testHTTP10WithoutKeepAliveCloses() throws {
        try startServer()
        let client = try TestClient(port: port)
        try client.send("GET /old HTTP/1.0\r\n\r\n")
        XCTAssertEqual(try client.readResponse().text, "/old\n")
        XCTAssertTrue(client.waitForClose())
    }

    func testContentLengthAndChunkedBodies() throws {
        try startServer()
        let client = try TestClient(port: port)
        try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        var response = try client.readResponse()
        XCTAssertEqual(response.text, "hello")
        XCTAssertEqual(response.header("X-Method"), "POST")
        try client.send("PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n")
        response = try client.readResponse()
        XCTAssertEqual(response.text, "abcdefg")
    }

    func testExpectContinue() throws {
        try startServer()
        let client = try TestClient(port: port)
        try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        let interim = try client.readResponse()
        XCTAssertEqual(interim.status, 100)
        try client.send("data")
        XCTAssertEqual(try client.readResponse().text, "data")
    }

    func testMaxConnectionsRefusesExtraButServesOthers() throws {
        try startServer { $0.maxConnections = 2 }
        let a = try TestClient(port: port)
        let b = try TestClient(port: port)
        // Make sure both are accepted before the third arrives.
        try a.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try a.readResponse().status, 200)
        try b.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try b.readResponse().status, 200)
        let c = try TestClient(port: port)
        XCTAssertEqual(try c.readResponse().status, 503)
        try a.send("GET /a2 HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertEqual(try a.readResponse().text, "/a2\n")
    }

    func testMaxRequestsPerConnection() throws {
        try startServer { $0.maxRequestsPerConnection = 3 }
        let client = try TestClient(port: port)
        for i in 1...3 {
            try client.send("GET /r HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try client.readResponse()
            XCTAssertEqual(response.header("Connection"), i == 3 ? "close" : nil)
        }
        XCTAssertTrue(client.waitForClose())
    }

    func testGracefulShutdownLetsInFlightRequestFinish() throws {
        try startServer()
        let busy = try TestClient(port: port)
        let idle = try TestClient(port: port)
        try idle.send("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try idle.readResponse()
        try busy.send("GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.05)
        let drained = expectation(description: "drained")
        server.shutdown(drainTimeout: .seconds(5)) { drained.fulfill() }
        // The idle connection is closed at once; the busy one gets its answer, then close.
        XCTAssertTrue(idle.waitForClose())
        let response = try busy.readResponse()
        XCTAssertEqual(response.text, "slow 300\n")
        XCTAssertEqual(response.header("Connection"), "close")
        wait(for: [drained], timeout: 5)
        XCTAssertThrowsError(try TestClient(port: port))
        server = nil
    }

    func testDrainTimeoutClosesStragglers() throws {
        try startServer()
        let busy = try TestClient(port: port)
        try busy.send("GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.05)
        let drained = expectation(description: "drained")
        let started = Date()
        server.shutdown(drainTimeout: .milliseconds(200)) { drained.fulfill() }
        wait(for: [drained], timeout: 5)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2.5)
        XCTAssertTrue(busy.waitForClose())
        server = nil
    }
}
