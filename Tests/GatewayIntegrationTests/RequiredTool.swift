import Foundation
import XCTest

/// A program a test needs (redis-sentinel, systemd-analyze). On a developer's machine without it
/// the test is skipped, with the package to install; in CI (`CI` set) it is a failure, because
/// scripts/test.sh installs it there, so a missing one means that install step broke.
func requiredTool(_ candidates: [String], package: String) throws -> String {
    if let path = candidates.first(where: FileManager.default.isExecutableFile) { return path }
    let message = "\(candidates[0]) is not installed (apt-get install \(package))"
    if ProcessInfo.processInfo.environment["CI"] != nil {
        throw MissingTool(description: message + ": scripts/test.sh installs it for CI, so its install step failed")
    }
    throw XCTSkip(message)
}

struct MissingTool: Error, CustomStringConvertible {
    let description: String
}
