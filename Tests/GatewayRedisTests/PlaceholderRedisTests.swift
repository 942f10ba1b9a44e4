import XCTest
@testable import GatewayRedis
final class PlaceholderRedisTests: XCTestCase { func testBuilds() {} }
