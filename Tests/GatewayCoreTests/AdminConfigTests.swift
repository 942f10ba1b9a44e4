import Foundation
import XCTest
@testable import GatewayCore

/// ConfigTests' ten lines, with a Redis password to redact.
private let passwordBase = base.replacingOccurrences(of: "redis://127.0.0.1", with: "redis://:hunter2@127.0.0.1")

final class AdminConfigTests: XCTestCase {
    func testAdminIsOffUnlessConfiguredAndDefaultsLikeEnvoy() throws {
        XCTAssertNil(try GatewayConfig.parse(yaml: passwordBase, fileName: "gateway.yaml").admin)
        let bare = try GatewayConfig.parse(yaml: passwordBase + "admin:\n", fileName: "gateway.yaml")
        XCTAssertEqual(bare.admin, GatewayConfig.Admin(listen: .init(host: "127.0.0.1", port: 9901), publicHealth: true))
        let set = try GatewayConfig.parse(yaml: passwordBase + "admin: { listen: \"[::1]:9902\", public_health: false }\n", fileName: "gateway.yaml")
        XCTAssertEqual(set.admin, GatewayConfig.Admin(listen: .init(host: "::1", port: 9902), publicHealth: false))
        let zero = try GatewayConfig.parse(yaml: passwordBase.replacingOccurrences(of: ":8080", with: ":0") + "admin: { listen: 127.0.0.1:0 }\n",
                                           fileName: "gateway.yaml")
        XCTAssertEqual(zero.admin?.listen.port, 0, "port 0 twice is two free ports, not a clash")
    }

    func testAdminErrorsNameLineAndField() {
        XCTAssertEqual(diagnostics(passwordBase + """
            admin:
              listen: nowhere
              public_health: maybe
              lisen: 127.0.0.1:1
            """), """
            gateway.yaml:12:11: error: admin.listen: invalid listen address "nowhere": missing port (expected host:port or [ipv6]:port, e.g. 127.0.0.1:8080)
            gateway.yaml:13:18: error: admin.public_health: expected true or false, found "maybe"
            gateway.yaml:14:3: error: admin: unknown key "lisen" (did you mean "listen"?)
            """)
        XCTAssertEqual(diagnostics(passwordBase + "admin: { listen: 127.0.0.1:8080 }\n"), """
            gateway.yaml:11:18: error: admin.listen: must differ from listen (127.0.0.1:8080): the admin port is a second listener
            """)
    }

    func testPurgeAPIPublicFlag() throws {
        let yaml = passwordBase + "invalidation: { channel: c, purge_api: { allow: [127.0.0.1], public: true } }\n"
        XCTAssertEqual(try GatewayConfig.parse(yaml: yaml, fileName: "gateway.yaml").invalidation?.purgeAPI?.onPublicPort, true)
        let off = passwordBase + "invalidation: { channel: c, purge_api: { allow: [127.0.0.1] } }\n"
        XCTAssertEqual(try GatewayConfig.parse(yaml: off, fileName: "gateway.yaml").invalidation?.purgeAPI?.onPublicPort, false)
    }

    /// The exact `/config` text for a config with a Redis password and a purge token.
    func testRedactedJSONHidesEverySecret() throws {
        let config = try GatewayConfig.parse(yaml: passwordBase + """
            invalidation: { channel: events, purge_api: { token: "0123456789abcdef-secret", token_env: PURGE_TOKEN, allow: [10.0.0.1] } }
            admin: { listen: 127.0.0.1:9901 }
            """, fileName: "gateway.yaml")
        let json = config.redactedJSON()
        XCTAssertFalse(json.contains("hunter2"), json)
        XCTAssertFalse(json.contains("0123456789abcdef-secret"), json)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? NSDictionary)
        XCTAssertEqual(object["redis"] as? NSDictionary, [
            "url": "redis://127.0.0.1:6379/0", "password": "<redacted>", "timeout": "50ms", "key_prefix": "gw:", "connections": 1,
        ] as NSDictionary)
        XCTAssertEqual((object["invalidation"] as? NSDictionary)?["purge_api"] as? NSDictionary, [
            "token": "<redacted>", "token_env": "PURGE_TOKEN", "allow": ["10.0.0.1"], "public": false,
        ] as NSDictionary)
        XCTAssertEqual(object["admin"] as? NSDictionary, ["listen": "127.0.0.1:9901", "public_health": true] as NSDictionary)
        let route = try XCTUnwrap((object["routes"] as? [NSDictionary])?.first)
        XCTAssertEqual(route["name"] as? String, "catalog")
        XCTAssertEqual(route["ttl"] as? String, "5m")
        XCTAssertEqual(route["match"] as? String, "/catalog/**")
        XCTAssertTrue(json.contains("\"password\" : \"<redacted>\""), json)
    }
}
