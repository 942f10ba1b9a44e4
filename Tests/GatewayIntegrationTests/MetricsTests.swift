import Foundation
import GatewayCore
import GatewayRuntime
import GatewayTestSupport
import XCTest

/// The Prometheus exposition and the status JSON after a known sequence of requests: counters
/// exact, histograms consistent with them, labels only route and outcome names.
final class MetricsTests: GatewayTestCase {
    /// The gateway's `/metrics` text, parsed (values read when called).
    func scrape(file: StaticString = #filePath, line: UInt = #line) throws -> PrometheusExposition {
        try PrometheusExposition(render { $0.prometheusText(completion: $1) })
    }

    func statsJSON() throws -> [String: Any] {
        let text = render { $0.statsJSON(completion: $1) }
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    private func render(_ call: (Gateway, @escaping @Sendable (String) -> Void) -> Void) -> String {
        let done = expectation(description: "rendered")
        nonisolated(unsafe) var text = ""
        call(service!.gateway) { rendered in
            text = rendered
            done.fulfill()
        }
        wait(for: [done], timeout: 10)
        return text
    }

    /// 1 miss + 4 collapsed (or hits, if a herd member arrives after the fill), 3 hits, 1 bypass,
    /// 1 upstream error, 1 refusal, 1 local, 2 per-user misses for two users.
    private func runKnownSequence() throws {
        backend.setBehaviour(.delayed(0.3, .ok("hot")), forPath: "/catalog/hot")
        backend.setBehaviour(.closeMidBody(contentLength: 100, sentBytes: 10), forPath: "/catalog/broken")
        backend.setBehaviour(.ok("passed"), forPath: "/other")
        backend.setBehaviour(.ok("mine"), forPath: "/users/alice/resources")
        backend.setBehaviour(.ok("mine"), forPath: "/users/bob/resources")
        try startGateway()

        XCTAssertEqual(try burst(5) { _ in "/catalog/hot" }.map(\.status), [200, 200, 200, 200, 200])
        for _ in 0..<3 { XCTAssertEqual(try get("/catalog/hot").status, 200) }
        XCTAssertEqual(try get("/other").status, 200)
        XCTAssertEqual(try get("/catalog/broken").status, 502)
        XCTAssertEqual(try get("/catalog/bad", headers: ["Connection": "Authorization"]).status, 400)
        XCTAssertEqual(try get("/healthz").status, 200)
        XCTAssertEqual(try get("/users/alice/resources", headers: ["Authorization": "Bearer alice-secret"]).status, 200)
        XCTAssertEqual(try get("/users/bob/resources", headers: ["Authorization": "Bearer bob-secret"]).status, 200)
    }

    /// Counters are bumped before the response is written, so once the last answer arrived they
    /// are final; poll only for the herd's stragglers' records on other loops.
    private func settledScrape(total: Double) throws -> PrometheusExposition {
        var metrics = try scrape()
        for _ in 0..<100 where requestCount(metrics) < total {
            usleep(20_000)
            metrics = try scrape()
        }
        return metrics
    }

    private func requestCount(_ metrics: PrometheusExposition) -> Double {
        metrics.samples.filter { $0.name == "cachegateway_requests_total" }.reduce(0) { $0 + $1.value }
    }

    func testCountersAreExactAfterAKnownSequence() throws {
        try runKnownSequence()
        let metrics = try settledScrape(total: 14)
        func requests(_ route: String, _ outcome: CacheOutcome) -> Double {
            metrics.value("cachegateway_requests_total", ["route": route, "outcome": outcome.rawValue])
        }
        XCTAssertEqual(requestCount(metrics), 14)
        XCTAssertEqual(requests("catalog", .miss), 1)
        let collapsed = requests("catalog", .collapsed)
        XCTAssertGreaterThanOrEqual(collapsed, 1, "a 300 ms fill collapses some of the herd")
        XCTAssertEqual(collapsed + requests("catalog", .hit), 7, "4 of the herd and 3 after it")
        XCTAssertEqual(requests("catalog", .error), 1)
        XCTAssertEqual(requests("rest", .bypass), 1)
        XCTAssertEqual(requests("resources", .miss), 2)
        XCTAssertEqual(requests("-", .rejected), 1)
        XCTAssertEqual(requests("-", .local), 1)
        for outcome in [CacheOutcome.stale, .revalidated, .bypass, .rejected, .local] {
            XCTAssertEqual(requests("catalog", outcome), 0, "\(outcome)")
        }

        // Each route's histogram counts each of its requests once; buckets are cumulative.
        for route in ["catalog", "resources", "rest", "-"] {
            let total = CacheOutcome.allCases.reduce(0) { $0 + requests(route, $1) }
            let name = "cachegateway_request_duration_seconds"
            XCTAssertEqual(metrics.value(name + "_count", ["route": route]), total, route)
            let buckets = metrics.buckets(name, ["route": route])
            XCTAssertEqual(buckets.map(\.le), GatewayMetrics.latencyBuckets + [.infinity], route)
            XCTAssertEqual(buckets.last?.count, total, "+Inf is the count (\(route))")
            XCTAssertEqual(buckets.map(\.count), buckets.map(\.count).sorted(), "cumulative (\(route))")
            XCTAssertGreaterThan(metrics.value(name + "_sum", ["route": route]), 0, route)
        }
        XCTAssertEqual(metrics.value("cachegateway_coalesced_wait_seconds_count", ["route": "catalog"]), collapsed,
                       "every collapsed request waited, nothing else did")
        XCTAssertGreaterThanOrEqual(metrics.value("cachegateway_upstream_duration_seconds_sum", ["route": "catalog"]), 0.3,
                                    "the leader's fetch took the backend's 300 ms")
        XCTAssertEqual(metrics.value("cachegateway_upstream_duration_seconds_count", ["route": "rest"]), 1)
        XCTAssertEqual(metrics.value("cachegateway_upstream_errors_total"), 1)

        // Redis: the two loops are up; lookups and stores were timed by command.
        XCTAssertEqual(metrics.value("cachegateway_redis_connected", ["loop": "0"]), 1)
        XCTAssertEqual(metrics.value("cachegateway_redis_connected", ["loop": "1"]), 1)
        XCTAssertGreaterThanOrEqual(metrics.value("cachegateway_redis_command_duration_seconds_count", ["command": "set"]), 3,
                                    "catalog/hot, alice's and bob's entries were stored")
        XCTAssertGreaterThanOrEqual(metrics.value("cachegateway_redis_command_duration_seconds_count", ["command": "get"]), 6)
        XCTAssertEqual(metrics.value("cachegateway_redis_errors_total"), 0)
        XCTAssertEqual(metrics.value("cachegateway_upstream_in_flight"), 0)
        XCTAssertEqual(metrics.value("cachegateway_upstream_queued"), 0)
        XCTAssertEqual(metrics.value("cachegateway_reloads_total", ["result": "ok"]), 0)
        XCTAssertEqual(metrics.value("cachegateway_build_info", [
            "version": GatewayRelease.version, "hiredis": GatewayRelease.hiredisVersion, "libcurl": GatewayRelease.libcurlVersion,
            "instance_id": service!.gateway.runningConfig.instanceID.value,
        ]), 1)
        XCTAssertTrue(GatewayRelease.hiredisVersion.hasPrefix("0.14"), GatewayRelease.hiredisVersion)

        // Bounded labels: route and outcome names, never a path or a user.
        XCTAssertEqual(metrics.labelValues("route"), ["catalog", "resources", "rest", "-"])
        XCTAssertTrue(metrics.labelValues("outcome").isSubset(of: Set(CacheOutcome.allCases.map(\.rawValue))))
        XCTAssertEqual(Set(metrics.samples.flatMap(\.labels.keys)),
                       ["route", "outcome", "le", "command", "loop", "result", "reason", "version", "hiredis", "libcurl", "kind", "instance_id"],
                       "instance_id: one value per process, on build_info only")
        XCTAssertEqual(metrics.labelValues("kind"), ["moved", "ask"])
        XCTAssertEqual(metrics.value("cachegateway_redis_redirects_total", ["kind": "moved"]), 0, "a standalone Redis redirects nothing")
        for sample in metrics.samples {
            for value in sample.labels.values {
                XCTAssertFalse(value.contains("/") || value.contains("alice") || value.contains("bob") || value.contains("Bearer"),
                               "\(sample.name) has label value \(value)")
            }
        }
    }

    /// A request the HTTP parser refuses (answered by the connection, before the gateway's
    /// handler) counts as a rejected, unrouted request.
    func testAMalformedRequestCountsAsRejected() throws {
        try startGateway()
        let before = try scrape()
        XCTAssertEqual(before.value("cachegateway_requests_total", ["route": "-", "outcome": "rejected"]), 0)
        let client = try TestClient(port: port, timeout: 5)
        try client.send("GET /catalog/a HTTP/1.1 extra\r\nHost: test\r\n\r\n")
        XCTAssertEqual(try client.readResponse().status, 400)
        // Counted on the connection's loop right after the answer was queued; bounded poll.
        let metrics = try settledScrape(total: 1)
        XCTAssertEqual(metrics.value("cachegateway_requests_total", ["route": "-", "outcome": "rejected"]), 1)
        XCTAssertEqual(requestCount(metrics), 1, "nothing else was counted")
        XCTAssertEqual(metrics.value("cachegateway_request_duration_seconds_count", ["route": "-"]), 1)
    }

    func testTheStatsJSONCarriesTheSameNumbers() throws {
        try runKnownSequence()
        let metrics = try settledScrape(total: 14)
        let json = try statsJSON()
        XCTAssertEqual(json["version"] as? String, GatewayRelease.version)
        XCTAssertGreaterThan(try XCTUnwrap(json["uptime_seconds"] as? Double), 0)
        XCTAssertGreaterThan(try XCTUnwrap(json["time_ms"] as? Int), 1_700_000_000_000)
        let totals = try XCTUnwrap(json["totals"] as? [String: Any])
        XCTAssertEqual(totals["upstream_errors"] as? Int, 1)
        let routes = try XCTUnwrap(json["routes"] as? [[String: Any]])
        XCTAssertEqual(routes.compactMap { $0["name"] as? String }, ["catalog", "resources", "rest", "-"])
        for route in routes {
            let name = try XCTUnwrap(route["name"] as? String)
            let requests = try XCTUnwrap(route["requests"] as? [String: Int])
            XCTAssertEqual(Set(requests.keys), Set(CacheOutcome.allCases.map(\.rawValue)))
            for (outcome, count) in requests {
                XCTAssertEqual(Double(count), metrics.value("cachegateway_requests_total", ["route": name, "outcome": outcome]), "\(name) \(outcome)")
            }
            let latency = try XCTUnwrap(route["latency"] as? [String: Any])
            XCTAssertEqual(latency["le_seconds"] as? [Double], GatewayMetrics.latencyBuckets)
            let counts = try XCTUnwrap(latency["counts"] as? [Int])
            XCTAssertEqual(counts, counts.sorted(), "cumulative")
            XCTAssertEqual(latency["count"] as? Int, requests.values.reduce(0, +), name)
            XCTAssertLessThanOrEqual(counts.last ?? 0, requests.values.reduce(0, +))
        }
        XCTAssertEqual((routes.first { $0["name"] as? String == "catalog" }?["requests"] as? [String: Int])?["miss"], 1)
        let redis = try XCTUnwrap(json["redis"] as? [String: Int])
        XCTAssertEqual(redis, ["loops": 2, "connected_loops": 2, "errors": 0])
        let upstream = try XCTUnwrap(json["upstream"] as? [String: Int])
        XCTAssertEqual(upstream, ["in_flight": 0, "queued": 0, "max_connections": 16])
        XCTAssertEqual(json["in_flight_keys"] as? Int, service!.gateway.inFlightKeyCount)
        XCTAssertNotNil(json["open_connections"] as? Int)
        XCTAssertEqual(json["local_tier"] as? [String: Int], ["hits": 0, "entries": 0, "bytes": 0, "evictions": 0])
        XCTAssertTrue(json["stream"] is NSNull)
        XCTAssertTrue(json["last_reload"] is NSNull)
    }

    func testTheLocalTierIsCounted() throws {
        backend.setBehaviour(.ok("hot"), forPath: "/catalog/hot")
        try startGateway(extra: "cache: { local_ttl: 30s, local_tracking: false }")
        for _ in 0..<4 { XCTAssertEqual(try get("/catalog/hot").status, 200) }
        let metrics = try scrape()
        XCTAssertEqual(metrics.value("cachegateway_requests_total", ["route": "catalog", "outcome": "hit"]), 3)
        // Each loop keeps its own tier: a loop's first hit may come from Redis, its next ones not.
        let hits = metrics.value("cachegateway_local_tier_hits_total")
        XCTAssertTrue((1...3).contains(hits), "\(hits) local hits of 3 hits over 2 loops")
        XCTAssertGreaterThanOrEqual(metrics.value("cachegateway_local_tier_entries"), 1)
        XCTAssertGreaterThan(metrics.value("cachegateway_local_tier_bytes"), 3)
        XCTAssertEqual(metrics.value("cachegateway_local_tier_evictions_total"), 0)
        XCTAssertEqual(try XCTUnwrap(statsJSON()["local_tier"] as? [String: Int])["hits"], Int(hits))
    }

    func testAccessLogLinesLostToAFullDiskAreCounted() throws {
        backend.setBehaviour(.ok("hot"), forPath: "/catalog/hot")
        // /dev/full takes the open and refuses every write with ENOSPC: a disk that filled up.
        try startGateway(extra: "access_log: { path: /dev/full }")
        for _ in 0..<3 { XCTAssertEqual(try get("/catalog/hot").status, 200, "a failing log never fails a request") }
        XCTAssertTrue(waitUntil { (try? self.scrape().value("cachegateway_access_log_dropped_lines_total")) == 3 },
                      "\((try? scrape().value("cachegateway_access_log_dropped_lines_total")) ?? -1) lines counted as dropped")
    }

    func testAReloadAddsTheNewRoutesSeriesAndFailuresAreCounted() throws {
        backend.setBehaviour(.ok("new"), forPath: "/fresh/x")
        try startGateway()
        XCTAssertEqual(try get("/catalog/a").status, 200)
        let gateway = service!.gateway
        var new = gateway.config
        new.routes = try GatewayConfig.parse(yaml: """
            listen: 127.0.0.1:0
            upstream: { url: \(backend.baseURL) }
            redis: { url: redis://127.0.0.1:\(redis.port)/0 }
            routes:
              - { name: fresh, match: "/fresh/**", class: public, ttl: 1m }
              - { name: rest, match: "/**", class: pass }
            """, fileName: "new.yaml").routes
        XCTAssertEqual(gateway.reload(new).needsRestart, [])
        XCTAssertEqual(try get("/fresh/x").status, 200)
        var metrics = try scrape()
        XCTAssertEqual(metrics.value("cachegateway_requests_total", ["route": "fresh", "outcome": "miss"]), 1)
        XCTAssertEqual(metrics.value("cachegateway_requests_total", ["route": "catalog", "outcome": "miss"]), 1,
                       "a removed route's counters keep their totals")
        XCTAssertEqual(metrics.value("cachegateway_reloads_total", ["result": "ok"]), 1)
        XCTAssertEqual(metrics.value("cachegateway_reloads_total", ["result": "failed"]), 0)
        XCTAssertEqual(try XCTUnwrap(statsJSON()["routes"] as? [[String: Any]]).compactMap { $0["name"] as? String },
                       ["fresh", "rest", "-"])

        gateway.reloadFailed(errors: ["new.yaml:3:5: error: routes[0].ttl: \"soon\" is not a duration"])
        metrics = try scrape()
        XCTAssertEqual(metrics.value("cachegateway_reloads_total", ["result": "failed"]), 1)
        let last = try XCTUnwrap(statsJSON()["last_reload"] as? [String: Any])
        XCTAssertEqual(last["ok"] as? Bool, false)
        XCTAssertEqual(last["errors"] as? [String], ["new.yaml:3:5: error: routes[0].ttl: \"soon\" is not a duration"])
    }

    func testTheAdminMetricsEndpointServesTheExposition() throws {
        try startGateway(extra: "admin: { listen: 127.0.0.1:0 }")
        let response = try admin("/metrics")
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        let metrics = try PrometheusExposition(response.text)
        XCTAssertEqual(metrics.types["cachegateway_requests_total"], "counter")
        XCTAssertEqual(metrics.types["cachegateway_coalesced_wait_seconds"], "histogram")
    }

    /// Every metric a panel of the shipped Grafana dashboard queries is one the gateway exports.
    func testEveryDashboardQueryNamesAnExportedMetric() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("contrib/grafana/cachegateway-dashboard.json")
        let dashboard = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any])
        let inputs = try XCTUnwrap(dashboard["__inputs"] as? [[String: Any]])
        XCTAssertEqual(inputs.first?["name"] as? String, "DS_PROMETHEUS")
        var exprs: [(panel: String, expr: String)] = []
        func collect(_ panels: [[String: Any]]) {
            for panel in panels {
                for target in panel["targets"] as? [[String: Any]] ?? [] {
                    if let expr = target["expr"] as? String { exprs.append((panel["title"] as? String ?? "?", expr)) }
                }
                collect(panel["panels"] as? [[String: Any]] ?? [])
            }
        }
        collect(try XCTUnwrap(dashboard["panels"] as? [[String: Any]]))
        XCTAssertGreaterThanOrEqual(exprs.count, 12)

        backend.setBehaviour(.ok("x"), forPath: "/catalog/a")
        try startGateway()
        XCTAssertEqual(try get("/catalog/a").status, 200)
        let metrics = try scrape()
        let identifier = try NSRegularExpression(pattern: "cachegateway_[a-z_]+")
        var queried = Set<String>()
        for (panel, expr) in exprs {
            let names = identifier.matches(in: expr, range: NSRange(expr.startIndex..., in: expr)).map {
                String(expr[Range($0.range, in: expr)!])
            }
            XCTAssertFalse(names.isEmpty, "panel \(panel) queries no gateway metric: \(expr)")
            for name in names {
                let family = metrics.family(of: name)
                XCTAssertNotNil(family, "panel \(panel) queries \(name), which the gateway does not export")
                queried.insert(family ?? name)
            }
        }
        XCTAssertTrue(queried.isSuperset(of: [
            "cachegateway_requests_total", "cachegateway_request_duration_seconds", "cachegateway_coalesced_wait_seconds",
            "cachegateway_upstream_duration_seconds", "cachegateway_redis_connected", "cachegateway_reloads_total",
        ]), "\(queried)")
    }
}
