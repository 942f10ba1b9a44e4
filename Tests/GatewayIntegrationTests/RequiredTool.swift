import Foundation
import XCTest

/// A program a test needs (redis-sentinel, systemd-analyze). On a developer's machine running
/// `swift test` by hand without it, the test is skipped, naming the package to install. Through
/// scripts/test.sh (the README's test command, and so CI) it is a failure: that script installs
/// both and says so with `CACHEGATEWAY_TOOLS_INSTALLED`, so a missing one means its install step
/// broke. `CI` set has the same effect.
func requiredTool(_ candidates: [String], package: String) throws -> String {
    if let path = candidates.first(where: FileManager.default.isExecutableFile) { return path }
    let message = "\(candidates[0]) is not installed (apt-get install \(package))"
    let environment = ProcessInfo.processInfo.environment
    if environment["CACHEGATEWAY_TOOLS_INSTALLED"] != nil || environment["CI"] != nil {
        throw MissingTool(description: message + ": scripts/test.sh installs it for CI, so its install step failed")
    }
    throw XCTSkip(message)
}

struct MissingTool: Error, CustomStringConvertible {
    let description: String
}
