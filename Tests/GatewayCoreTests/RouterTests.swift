import XCTest
@testable import GatewayCore

private func pattern(_ source: String, file: StaticString = #filePath, line: UInt = #line) -> RoutePattern {
    do {
        return try RoutePattern(source)
    } catch {
        XCTFail("\(source): \(error)", file: file, line: line)
        return try! RoutePattern("/never-used")
    }
}

private func router(_ table: [(String, String, MethodSet)]) -> Router {
    Router(routes: table.map { name, source, methods in
        Route(name: name, pattern: pattern(source), methods: methods, routeClass: .pass)
    })
}

/// Which of the given paths the pattern matches.
private func matching(_ source: String, _ paths: [String]) -> [String] {
    let compiled = pattern(source)
    return paths.filter { compiled.matches($0) }
}

private let samplePaths = [
    "/", "//", "/catalog", "/catalog/", "/catalog/a", "/catalog/a/", "/catalog/a/b", "/catalog//a",
    "/Catalog", "/catalogue", "/catalog.json", "/users/42/resources", "/users//resources",
    "/users/42/resources/", "", "catalog", "*",
]

final class RouterTests: XCTestCase {
    func testLiteralSegmentsMatchExactlyAndCaseSensitively() {
        XCTAssertEqual(matching("/catalog", samplePaths), ["/catalog"])
        XCTAssertEqual(matching("/catalog/a/b", samplePaths), ["/catalog/a/b"])
        XCTAssertEqual(matching("/Catalog", samplePaths), ["/Catalog"])
        XCTAssertEqual(matching("/", samplePaths), ["/"])
        XCTAssertEqual(matching("/catalog.json", samplePaths), ["/catalog.json"])
    }

    func testCapturesTakeExactlyOneNonEmptySegment() {
        XCTAssertEqual(matching("/users/{user}/resources", samplePaths), ["/users/42/resources"])
        XCTAssertEqual(matching("/catalog/{id}", samplePaths), ["/catalog/a"])
        let compiled = pattern("/users/{user}/items/{item_id}")
        XCTAssertEqual(compiled.captureNames, ["user", "item_id"])
        XCTAssertEqual(compiled.captures(in: "/users/u-1/items/%20x"), ["user": "u-1", "item_id": "%20x"])
        XCTAssertNil(compiled.captures(in: "/users/u-1/items/"))
        XCTAssertNil(compiled.captures(in: "/users/u-1/items/x/y"))
    }

    func testStarTakesExactlyOneNonEmptySegment() {
        XCTAssertEqual(matching("/catalog/*", samplePaths), ["/catalog/a"])
        XCTAssertEqual(matching("/*", samplePaths), ["/catalog", "/Catalog", "/catalogue", "/catalog.json"])
        XCTAssertEqual(matching("/*/*/resources", samplePaths), ["/users/42/resources"])
    }

    func testTrailingDoubleStarTakesZeroOrMoreSegments() {
        XCTAssertEqual(matching("/catalog/**", samplePaths), [
            "/catalog", "/catalog/", "/catalog/a", "/catalog/a/", "/catalog/a/b", "/catalog//a",
        ])
        XCTAssertEqual(matching("/**", samplePaths), samplePaths.filter { $0.hasPrefix("/") })
        XCTAssertEqual(matching("/users/*/**", samplePaths), ["/users/42/resources", "/users/42/resources/"])
    }

    /// The trailing slash is significant: `/catalog` and `/catalog/` are different resources
    /// upstream and different cache keys. Only `**` absorbs it; a pattern ending in "/" matches
    /// exactly the slash form.
    func testTrailingSlashIsSignificant() {
        XCTAssertEqual(matching("/catalog", samplePaths), ["/catalog"])
        XCTAssertEqual(matching("/catalog/", samplePaths), ["/catalog/"])
        XCTAssertEqual(matching("/catalog/*/", samplePaths), ["/catalog/a/"])
        XCTAssertFalse(pattern("/catalog/*").matches("/catalog/"), "a * needs a non-empty segment")
        XCTAssertFalse(pattern("/users/{u}/resources").matches("/users//resources"))
    }

    func testPathsNotStartingWithSlashNeverMatch() {
        XCTAssertEqual(matching("/**", ["", "*", "catalog", "http://a/b"]), [])
        XCTAssertNil(router([("all", "/**", .all)]).match(method: "OPTIONS", path: "*"))
    }

    func testMethodsAndFirstMatchWins() {
        let table = router([
            ("catalog", "/catalog/**", .cacheable),
            ("item-writes", "/catalog/{id}", [.put, .delete]),
            ("catalog-post", "/catalog/**", .post),
            ("rest", "/**", .all),
        ])
        XCTAssertEqual(table.match(method: "GET", path: "/catalog/7"), 0)
        XCTAssertEqual(table.match(method: "HEAD", path: "/catalog"), 0)
        XCTAssertEqual(table.match(method: "PUT", path: "/catalog/7"), 1)
        XCTAssertEqual(table.match(method: "PUT", path: "/catalog/7/x"), 3, "item-writes needs one segment")
        XCTAssertEqual(table.match(method: "POST", path: "/catalog/7"), 2)
        XCTAssertEqual(table.match(method: "GET", path: "/other"), 3)
        XCTAssertEqual(table.match(method: "PURGE", path: "/catalog/7"), 3, "unknown methods are in .all")
        XCTAssertEqual(table.match(method: "get", path: "/catalog/7"), 3, "methods are case-sensitive")
        XCTAssertEqual(table.route(method: "DELETE", path: "/catalog/9")?.name, "item-writes")
    }

    func testNoMatch() {
        let table = router([("catalog", "/catalog/**", .cacheable), ("user", "/users/{u}", .all)])
        XCTAssertNil(table.match(method: "GET", path: "/"))
        XCTAssertNil(table.match(method: "POST", path: "/catalog/1"))
        XCTAssertNil(table.match(method: "GET", path: "/users/1/x"))
        XCTAssertNil(table.match(method: "GET", path: "/catalogue"))
        XCTAssertNil(table.route(method: "GET", path: ""))
        XCTAssertNil(Router(routes: []).match(method: "GET", path: "/"))
    }

    func testMatchOnBytes() {
        let table = router([("catalog", "/catalog/**", .cacheable)])
        let bytes: [UInt8] = Array("/catalog/a?ignored".utf8.prefix(10))
        XCTAssertEqual(bytes.withUnsafeBufferPointer { table.match(method: .get, path: $0) }, 0)
        XCTAssertNil(bytes.withUnsafeBufferPointer { table.match(method: .post, path: $0) })
    }

    func testMethodSet() {
        XCTAssertEqual(MethodSet(requestMethod: "GET"), .get)
        XCTAssertEqual(MethodSet(requestMethod: "CONNECT"), .connect)
        XCTAssertEqual(MethodSet(requestMethod: "PROPFIND"), .other)
        XCTAssertEqual(MethodSet(requestMethod: "get"), .other)
        XCTAssertEqual(MethodSet(name: "PATCH"), .patch)
        XCTAssertNil(MethodSet(name: "patch"))
        XCTAssertEqual(MethodSet.cacheable.description, "GET,HEAD")
        XCTAssertEqual(MethodSet.all.description, "*")
        XCTAssertEqual(MethodSet([.post, .other]).description, "POST,other")
    }

    func testInvalidPatternsSayWhy() {
        let cases: [(String, String)] = [
            ("catalog/**", "a pattern must start with \"/\""),
            ("", "a pattern must start with \"/\""),
            ("/a/**/b", "\"**\" is only allowed as the last segment"),
            ("/**/", "\"**\" is only allowed as the last segment"),
            ("/a*", "\"*\" and \"**\" must be a whole segment, not part of \"a*\""),
            ("/***", "\"*\" and \"**\" must be a whole segment, not part of \"***\""),
            ("/users/{}", "empty capture name \"{}\""),
            ("/users/{1d}", "invalid capture name \"1d\" (use letters, digits and \"_\", not starting with a digit)"),
            ("/users/{a-b}", "invalid capture name \"a-b\" (use letters, digits and \"_\", not starting with a digit)"),
            ("/users/{id", "a capture must be a whole segment, like /users/{id}, not \"{id\""),
            ("/users/x{id}", "a capture must be a whole segment, like /users/{id}, not \"x{id}\""),
            ("/users/{{id}}", "a capture must be a whole segment, like /users/{id}, not \"{{id}}\""),
            ("/a/{id}/b/{id}", "duplicate capture name \"id\""),
            ("/a//b", "empty segment (\"//\")"),
            ("//", "empty segment (\"//\")"),
            ("/a?b=1", "a pattern matches the path only; list query parameters under \"query\""),
            ("/a#top", "a pattern matches the path only; list query parameters under \"query\""),
            ("/a b", "character \" \" is not allowed in a path"),
            ("/caf\u{E9}", "a non-ASCII character (percent-encode it) is not allowed in a path"),
        ]
        for (source, reason) in cases {
            XCTAssertThrowsError(try RoutePattern(source), source) { error in
                XCTAssertEqual((error as? RoutePatternError)?.reason, reason, source)
            }
        }
        for valid in ["/", "/**", "/a/", "/a/*/b", "/{a}/{b}/**", "/a:b/@c/%20/~x", "/v1/items.json"] {
            XCTAssertNoThrow(try RoutePattern(valid), valid)
        }
    }

    func testCovers() {
        let yes: [(String, String)] = [
            ("/**", "/anything/{x}/**"), ("/**", "/"), ("/a/**", "/a"), ("/a/**", "/a/"), ("/a/**", "/a/*/**"),
            ("/a/*", "/a/{id}"), ("/a/{id}", "/a/b"), ("/a/*/c", "/a/b/c"), ("/a", "/a"), ("/a/", "/a/"),
            ("/*/**", "/a/**"),
        ]
        for (a, b) in yes {
            XCTAssertTrue(pattern(a).covers(pattern(b)), "\(a) covers \(b)")
        }
        let no: [(String, String)] = [
            ("/a", "/a/"), ("/a/", "/a"), ("/a/*", "/a/"), ("/a/*", "/a/**"), ("/a/b", "/a/*"), ("/a/*", "/a/b/c"),
            ("/a/**", "/b"), ("/*", "/"), ("/*/**", "/**"), ("/a/b/**", "/a/**"), ("/a", "/b"),
        ]
        for (a, b) in no {
            XCTAssertFalse(pattern(a).covers(pattern(b)), "\(a) does not cover \(b)")
        }
    }

    func testShadowedRoutes() {
        let entries: [(pattern: RoutePattern, methods: MethodSet)] = [
            (pattern("/catalog/**"), .cacheable), // 0
            (pattern("/catalog/{id}"), .get), // 1: shadowed by 0
            (pattern("/catalog/{id}"), [.get, .post]), // 2: POST still reaches it
            (pattern("/**"), .all), // 3
            (pattern("/late"), .post), // 4: shadowed by 3
            (pattern("/catalog/x"), .head), // 5: shadowed by 0 (the first one)
        ]
        XCTAssertEqual(Router.shadowedRoutes(entries), [
            Router.Shadowing(shadowed: 1, by: 0),
            Router.Shadowing(shadowed: 4, by: 3),
            Router.Shadowing(shadowed: 5, by: 0),
        ])
        XCTAssertEqual(Router.shadowedRoutes([(pattern("/a"), .get), (pattern("/a/"), .get)]), [])
    }

    func testRouterFromExampleConfig() throws {
        let config = try GatewayConfig.parse(yaml: """
            listen: 127.0.0.1:0
            upstream: { url: "http://127.0.0.1:9000" }
            redis: { url: "redis://127.0.0.1" }
            routes:
              - { name: catalog, match: "/catalog/**", class: public, ttl: 5m }
              - { name: mine, match: "/users/{user}/resources", class: per_user, ttl: 30s, identity: { header: Authorization } }
              - { name: rest, match: "/**", class: pass }
            """, fileName: "gateway.yaml")
        let table = Router(config: config)
        XCTAssertEqual(table.route(method: "GET", path: "/catalog/shoes")?.name, "catalog")
        XCTAssertEqual(table.route(method: "POST", path: "/catalog/shoes")?.name, "rest")
        XCTAssertEqual(table.route(method: "HEAD", path: "/users/7/resources")?.name, "mine")
        XCTAssertEqual(table.route(method: "GET", path: "/users/7/resources/")?.name, "rest")
        XCTAssertEqual(table.route(method: "GET", path: "/")?.routeClass, .pass)
    }
}
