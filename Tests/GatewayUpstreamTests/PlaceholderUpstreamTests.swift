import XCTest
@testable import GatewayUpstream
final class PlaceholderUpstreamTests: XCTestCase { func testBuilds() {} }
