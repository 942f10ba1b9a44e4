import Foundation
import XCTest
@testable import GatewayCore

/// Operator-facing config: secrets from the environment and files, unix-socket Redis URLs,
/// host names in `listen`, `pid_file`.
final class OperationsConfigTests: XCTestCase {
    /// A valid file whose redis section is `redis` (lines 4 and 5), with `extra` after it.
    private func yaml(redis: String, extra: String = "") -> String {
        """
        listen: localhost:8080
        upstream:
          url: http://127.0.0.1:9000
        redis:
        \(redis)
        \(extra)
        routes:
          - { name: rest, match: "/**", class: pass }

        """
    }

    private func parse(_ text: String, environment: [String: String] = [:]) throws -> GatewayConfig {
        try GatewayConfig.parse(yaml: text, fileName: "gateway.yaml", environment: environment)
    }

    private func temporaryFile(_ contents: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gw-secret-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { unlink(path) }
        return path
    }

    // MARK: ${ENV}

    func testRedisURLTakesVariablesFromTheEnvironment() throws {
        let config = try parse(yaml(redis: "  url: redis://:${REDIS_PASSWORD}@${REDIS_HOST:-127.0.0.1}:6379/${REDIS_DB:-0}"),
                               environment: ["REDIS_PASSWORD": "s3cr$t", "REDIS_DB": "3"])
        XCTAssertEqual(config.redis.url, GatewayConfig.RedisURL(host: "127.0.0.1", port: 6379, password: "s3cr$t", database: 3))
        XCTAssertEqual("\(config.redis.url)", "redis://:***@127.0.0.1:6379/3")
    }

    func testAnUnsetVariableNamesLineFieldAndVariable() {
        XCTAssertEqual(diagnostics(yaml(redis: "  url: redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0")), """
            gateway.yaml:5:8: error: redis.url: environment variable "REDIS_PASSWORD" is not set (the value uses ${REDIS_PASSWORD}; set it, or write ${REDIS_PASSWORD:-default})
            """)
        XCTAssertEqual(diagnostics(yaml(redis: "  url: redis://:${P}@127.0.0.1/0"), environment: ["P": ""]), """
            gateway.yaml:5:8: error: redis.url: environment variable "P" is empty (the value uses ${P})
            """)
        XCTAssertEqual(diagnostics(yaml(redis: "  url: redis://:${P@127.0.0.1/0")), """
            gateway.yaml:5:8: error: redis.url: unterminated ${ (write ${NAME}, ${NAME:-default}, or $${ for a literal ${)
            """)
    }

    func testDollarsThatAreNotVariablesStayAsWritten() throws {
        let config = try parse(yaml(redis: "  url: redis://:pa$$word$${x}@127.0.0.1/0"))
        XCTAssertEqual(config.redis.url.password, "pa$$word${x}")
    }

    func testAnErrorInAnExpandedURLNeverShowsThePassword() {
        let text = diagnostics(yaml(redis: "  url: redis://:${PW}@127.0.0.1:99999/0"), environment: ["PW": "hunter2hunter2"])
        XCTAssertEqual(text, """
            gateway.yaml:5:8: error: redis.url: invalid Redis URL "redis://:***@127.0.0.1:99999/0": port must be a number between 1 and 65535
            """)
    }

    func testPurgeTokenTakesAVariable() throws {
        let extra = "invalidation:\n  channel: events\n  purge_api: { token: \"${PURGE_TOKEN}\" }"
        let config = try parse(yaml(redis: "  url: redis://127.0.0.1/0", extra: extra), environment: ["PURGE_TOKEN": "0123456789abcdef0123"])
        XCTAssertEqual(config.invalidation?.purgeAPI?.token, "0123456789abcdef0123")
        XCTAssertEqual(diagnostics(yaml(redis: "  url: redis://127.0.0.1/0", extra: extra)), """
            gateway.yaml:8:23: error: invalidation.purge_api.token: environment variable "PURGE_TOKEN" is not set (the value uses ${PURGE_TOKEN}; set it, or write ${PURGE_TOKEN:-default})
            """)
    }

    // MARK: password_file

    func testPasswordFileIsReadAtLoadWithoutItsTrailingNewline() throws {
        let path = try temporaryFile("from-the-file\n")
        let config = try parse(yaml(redis: "  url: redis://app:@127.0.0.1:6379/1\n  password_file: \(path)".replacingOccurrences(of: "app:@", with: "")))
        XCTAssertEqual(config.redis.url.password, "from-the-file")
        XCTAssertEqual(config.redis.passwordFile, path)
        XCTAssertEqual("\(config.redis.url)", "redis://:***@127.0.0.1:6379/1")
        let crlf = try temporaryFile("windows\r\n")
        XCTAssertEqual(try parse(yaml(redis: "  url: unix:///run/redis.sock\n  password_file: \(crlf)")).redis.url.password, "windows")
    }

    func testPasswordFileProblemsNameTheLineAndThePathNeverTheSecret() throws {
        XCTAssertEqual(diagnostics(yaml(redis: "  url: redis://127.0.0.1/0\n  password_file: /nonexistent/redis-password")), """
            gateway.yaml:6:18: error: redis.password_file: cannot read the password from "/nonexistent/redis-password": no such file
            """)
        let path = try temporaryFile("file-secret\n")
        let both = diagnostics(yaml(redis: "  url: redis://:url-secret@127.0.0.1/0\n  password_file: \(path)"))
        XCTAssertEqual(both, """
            gateway.yaml:6:18: error: redis.password_file: redis.url has a password too: give it in one place (remove it from the URL, or drop password_file)
            """)
        let empty = try temporaryFile("\n")
        XCTAssertEqual(diagnostics(yaml(redis: "  url: redis://127.0.0.1/0\n  password_file: \(empty)")), """
            gateway.yaml:6:18: error: redis.password_file: "\(empty)" is empty (expected the Redis password)
            """)
    }

    // MARK: sentinel_password

    func testSentinelPasswordTakesTheEnvironmentAndIsNeverShown() throws {
        let config = try parse(yaml(redis: "  url: redis+sentinel://127.0.0.1:26379/mymaster/0\n  sentinel_password: ${SENTINEL_PASSWORD}"),
                               environment: ["SENTINEL_PASSWORD": "sentinel-pw"])
        XCTAssertEqual(config.redis.url.sentinel?.password, "sentinel-pw")
        XCTAssertNil(config.redis.url.password, "the master's password is another one")
        XCTAssertEqual("\(config.redis.url)", "redis+sentinel://127.0.0.1:26379/mymaster/0")
        let json = config.redactedJSON()
        XCTAssertFalse(json.contains("sentinel-pw"), json)
        XCTAssertTrue(json.contains("\"sentinel_password\" : \"<redacted>\""), json)
    }

    func testSentinelPasswordProblemsNameTheLine() throws {
        XCTAssertEqual(diagnostics(yaml(redis: "  url: redis://127.0.0.1/0\n  sentinel_password: pw")), """
            gateway.yaml:6:22: error: redis.sentinel_password: only a redis+sentinel:// URL asks Sentinels (redis.url is not one)
            """)
        XCTAssertEqual(diagnostics(yaml(redis: "  url: redis+sentinel://127.0.0.1/m/0\n  sentinel_password: \"${UNSET_SENTINEL_PW:-}\"")), """
            gateway.yaml:6:22: error: redis.sentinel_password: is empty (remove it to ask the Sentinels without AUTH)
            """)
    }

    // MARK: unix:// URLs

    func testUnixSocketURLs() throws {
        let plain = try GatewayConfig.RedisURL(parsing: "unix:///run/redis/redis.sock")
        XCTAssertEqual(plain, GatewayConfig.RedisURL(unixSocketPath: "/run/redis/redis.sock"))
        XCTAssertEqual(plain.description, "unix:///run/redis/redis.sock")
        XCTAssertEqual(plain.address, "/run/redis/redis.sock")
        let full = try GatewayConfig.RedisURL(parsing: "unix://app:p%40ss@/tmp/a@b/redis.sock?db=2")
        XCTAssertEqual(full, GatewayConfig.RedisURL(unixSocketPath: "/tmp/a@b/redis.sock", username: "app", password: "p@ss", database: 2))
        XCTAssertEqual(full.description, "unix://app:***@/tmp/a@b/redis.sock?db=2")

        XCTAssertEqual(diagnostics(yaml(redis: "  url: unix://redis.sock")), """
            gateway.yaml:5:8: error: redis.url: invalid Redis URL "unix://redis.sock": a unix socket needs an absolute path, e.g. unix:///run/redis/redis.sock
            """)
        XCTAssertEqual(diagnostics(yaml(redis: "  url: \"unix://:secret@/run/r.sock?database=2\"")), """
            gateway.yaml:5:8: error: redis.url: invalid Redis URL "unix://:***@/run/r.sock?database=2": the only parameter is db=N, e.g. unix:///run/redis/redis.sock?db=2
            """)
        let long = "/" + String(repeating: "s", count: 110)
        XCTAssertThrowsError(try GatewayConfig.RedisURL(parsing: "unix://" + long))
    }

    // MARK: listen, pid_file

    func testListenHostNamesAreKeptWithTheirPosition() throws {
        let config = try parse(yaml(redis: "  url: redis://127.0.0.1/0", extra: "pid_file: /run/gateway.pid"))
        XCTAssertEqual(config.listen, GatewayConfig.ListenAddress(host: "localhost", port: 8080))
        XCTAssertEqual(config.pidFile, "/run/gateway.pid")
        XCTAssertEqual(config.error(at: "listen", "cannot resolve host \"localhost\"").description,
                       "gateway.yaml:1:9: error: listen: cannot resolve host \"localhost\"")
        XCTAssertEqual(diagnostics(yaml(redis: "  url: redis://127.0.0.1/0", extra: "pid_file: \"\"")), """
            gateway.yaml:6:11: error: pid_file: must not be empty (leave it out for no pid file)
            """)
    }
}
