import XCTest
@testable import GatewayCore
final class PlaceholderCoreTests: XCTestCase { func testBuilds() {} }
