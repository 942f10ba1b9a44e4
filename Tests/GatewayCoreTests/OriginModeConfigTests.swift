import Foundation
import XCTest
@testable import GatewayCore

/// `ttl: origin` in gateway.yaml: the loader, its golden errors and the summary.
final class OriginModeConfigTests: XCTestCase {
    /// 6 lines: routes appended start at line 7.
    private let base = """
        listen: 127.0.0.1:8080
        upstream:
          url: http://127.0.0.1:9000
        redis:
          url: redis://127.0.0.1:6379/0
        routes:

        """

    func testOriginModeDefaultsAndOptions() throws {
        let config = try GatewayConfig.parse(yaml: base + """
              - { name: a, match: /a, class: public, ttl: origin }
              - { name: b, match: /b, class: public, ttl: origin, max_ttl: 1h, heuristic: true, ttl_by_status: { 404: origin, 301: origin } }
              - { name: c, match: /c, class: public, ttl: 30s }
            """, fileName: "gateway.yaml")
        let a = try XCTUnwrap(config.routes[0].cache)
        XCTAssertEqual(a.mode, .origin(OriginModeSettings(statuses: [200], heuristic: false)))
        XCTAssertEqual(a.ttl, .seconds(86_400), "max_ttl defaults to 24h")
        XCTAssertEqual(a.ttl(forStatus: 404), nil)
        let b = try XCTUnwrap(config.routes[1].cache)
        XCTAssertEqual(b.mode, .origin(OriginModeSettings(statuses: [200, 301, 404], heuristic: true)))
        XCTAssertEqual(b.ttl, .seconds(3600))
        XCTAssertEqual(b.ttlByStatus, [:])
        XCTAssertEqual(config.routes[2].cache?.mode, .forcedTTL)
        let summary = config.summary()
        XCTAssertTrue(summary.contains("origin (max 24h)"), summary)
        XCTAssertTrue(summary.contains("origin (max 1h, heuristic) (also 301, 404)"), summary)
    }

    /// The commented-out example route in gateway.yaml loads once uncommented.
    func testTheExampleFilesOriginRouteLoads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("gateway.yaml"), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let start = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("  # - name: articles") })
        let block = lines[start...].prefix { !$0.isEmpty }.map { "  " + $0.dropFirst(4) }.joined(separator: "\n")
        let config = try GatewayConfig.parse(yaml: base + block + "\n", fileName: "gateway.yaml")
        XCTAssertEqual(config.routes.first?.cache?.mode, .origin(OriginModeSettings(statuses: [200, 404], heuristic: false)))
        XCTAssertEqual(config.routes.first?.cache?.freshness.staleIfError, .seconds(600))
    }

    func testOriginModeErrors() {
        XCTAssertEqual(diagnostics(base + """
              - { name: a, match: /a, class: public, ttl: 30s, max_ttl: 1h, heuristic: true }
              - { name: b, match: /b, class: public, ttl: origin, ttl_by_status: { 404: 30s, 200: origin }, max_ttl: 0s }
              - { name: c, match: /c, class: public, ttl: origin, heuristic: maybe, ttl_by_status: [404] }
              - { name: d, match: /d, class: pass, max_ttl: 1h }
            """), """
            gateway.yaml:7:52: error: routes[0].max_ttl: "max_ttl" is only allowed with "ttl: origin" (a forced ttl is the lifetime itself)
            gateway.yaml:7:65: error: routes[0].heuristic: "heuristic" is only allowed with "ttl: origin" (a forced ttl is the lifetime itself)
            gateway.yaml:8:77: error: routes[1].ttl_by_status.404: expected origin (the route has "ttl: origin": the origin's Cache-Control gives each status its freshness), found "30s"
            gateway.yaml:8:82: error: routes[1].ttl_by_status: status 200 is always stored on a route with "ttl: origin"; do not list it here
            gateway.yaml:8:106: error: routes[1].max_ttl: must be greater than 0, got "0s"
            gateway.yaml:9:66: error: routes[2].heuristic: expected true or false, found "maybe"
            gateway.yaml:9:88: error: routes[2].ttl_by_status: expected a mapping of status to origin, e.g. { 404: origin }, found a list
            gateway.yaml:10:40: error: routes[3].max_ttl: "max_ttl" is not allowed on a pass route (pass routes are never cached)
            """)
    }
}
