import Foundation
import XCTest
@testable import GatewayCore

/// `instance_id`: its default, an explicit one, refused ones (line and field), and the stream
/// consumer name that follows from it.
final class InstanceIDConfigTests: XCTestCase {
    /// A valid file with `top` as its first line(s).
    private func yaml(_ top: String = "", invalidation: String = "") -> String {
        """
        \(top)
        listen: 127.0.0.1:8080
        upstream: { url: http://127.0.0.1:9000 }
        redis: { url: redis://127.0.0.1:6379 }
        \(invalidation)
        routes:
          - { name: rest, match: "/**", class: pass }

        """
    }

    private func parse(_ text: String) throws -> GatewayConfig {
        try GatewayConfig.parse(yaml: text, fileName: "gateway.yaml")
    }

    func testTheDefaultIsHostNameAndProcessID() throws {
        let config = try parse(yaml())
        let expected = GatewayConfig.InstanceID.makeDefault(hostName: ProcessInfo.processInfo.hostName, pid: getpid())
        XCTAssertEqual(config.instanceID.value, expected)
        XCTAssertTrue(config.instanceID.value.hasSuffix(":\(getpid())"), config.instanceID.value)
        XCTAssertFalse(config.instanceID.isExplicit)
        XCTAssertNoThrow(try GatewayConfig.InstanceID(parsing: config.instanceID.value), "the default is itself a valid instance_id")
    }

    func testTheDefaultFitsAnyHostName() throws {
        XCTAssertEqual(GatewayConfig.InstanceID.makeDefault(hostName: "web-1.eu.example.com", pid: 12345), "web-1.eu.example.com:12345")
        XCTAssertEqual(GatewayConfig.InstanceID.makeDefault(hostName: "my host/é", pid: 7), "my-host--:7")
        XCTAssertEqual(GatewayConfig.InstanceID.makeDefault(hostName: "", pid: 7), "gateway:7")
        let long = GatewayConfig.InstanceID.makeDefault(hostName: String(repeating: "h", count: 200), pid: 4_194_304)
        XCTAssertEqual(long.count, 64)
        XCTAssertTrue(long.hasSuffix(":4194304"))
        for id in ["my-host--:7", long] { XCTAssertNoThrow(try GatewayConfig.InstanceID(parsing: id)) }
    }

    func testAnExplicitIDIsKeptAsWritten() throws {
        let config = try parse(yaml("instance_id: web-1.eu_west:a-2"))
        XCTAssertEqual(config.instanceID.value, "web-1.eu_west:a-2")
        XCTAssertTrue(config.instanceID.isExplicit)
        XCTAssertEqual(try parse(yaml("instance_id: \"\(String(repeating: "x", count: 64))\"")).instanceID.value.count, 64)
        XCTAssertEqual(try parse(yaml("instance_id: 42")).instanceID.value, "42")
    }

    func testInvalidIDsNameLineAndField() {
        XCTAssertEqual(diagnostics(yaml("instance_id: \"web 1\"")), """
            gateway.yaml:1:14: error: instance_id: a space is not allowed: use letters, digits and . _ : - (e.g. web-1)
            """)
        XCTAssertEqual(diagnostics(yaml("instance_id: web/1")), """
            gateway.yaml:1:14: error: instance_id: "/" is not allowed: use letters, digits and . _ : - (e.g. web-1)
            """)
        XCTAssertEqual(diagnostics(yaml("instance_id: \"a\\tb\"")), """
            gateway.yaml:1:14: error: instance_id: a control character (U+9) is not allowed: use letters, digits and . _ : - (e.g. web-1)
            """)
        XCTAssertEqual(diagnostics(yaml("instance_id: \"\(String(repeating: "x", count: 65))\"")), """
            gateway.yaml:1:14: error: instance_id: must be at most 64 characters, got 65
            """)
        XCTAssertEqual(diagnostics(yaml("instance_id: \"\"")), """
            gateway.yaml:1:14: error: instance_id: must not be empty (leave it out for host name and process ID)
            """)
        XCTAssertEqual(diagnostics(yaml("instance_id: [a, b]")), """
            gateway.yaml:1:14: error: instance_id: expected a name such as web-1, found a list
            """)
        XCTAssertEqual(diagnostics(yaml("instanceid: web-1")), """
            gateway.yaml:1:1: error: unknown key "instanceid" (did you mean "instance_id"?)
            """)
    }

    /// The consumer group must survive restarts: never the pid-bearing default.
    func testTheStreamConsumerNameIsStable() throws {
        let stream = "invalidation: { stream: events }"
        XCTAssertEqual(try parse(yaml(invalidation: stream)).streamConsumerName, ProcessInfo.processInfo.hostName,
                       "no instance_id: the host name, as before instance_id existed")
        XCTAssertEqual(try parse(yaml("instance_id: web-2", invalidation: stream)).streamConsumerName, "web-2")
        XCTAssertEqual(try parse(yaml("instance_id: web-2", invalidation: "invalidation: { stream: events, instance: gw-a }")).streamConsumerName,
                       "gw-a", "invalidation.instance wins: an existing group keeps its name")
    }

    func testConfigJSONNamesTheInstance() throws {
        let json = try parse(yaml("instance_id: web-3")).redactedJSON()
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["instance_id"] as? String, "web-3")
    }
}
