import XCTest
@testable import GatewayHTTP
final class HeadersTests: XCTestCase {
    func testCaseInsensitiveLookup() {
        var h = HTTPHeaders()
        h.add(name: "Content-Type", value: "a")
        XCTAssertEqual(h["content-type"], "a")
        XCTAssertNil(h["content-typf"])
        XCTAssertFalse(HTTPHeaders.equalsIgnoringCase("@", "`"))
    }
}
