import GatewayHTTP
import XCTest

@testable import GatewayCore

final class VariantsTests: XCTestCase {
    private let settings = RouteCacheSettings(ttl: .seconds(60))

    func testWhatAVaryMeansForStoring() {
        func plan(_ varied: [String], _ routeClass: RouteClass = .public, identity: IdentitySource? = nil) -> Variants.Plan {
            var s = settings
            s.identity = identity
            return Variants.plan(varied: varied, settings: s, routeClass: routeClass)
        }
        XCTAssertEqual(plan([]), .none)
        XCTAssertEqual(plan(["accept-language", "accept-encoding", "accept-encoding"]), .variants(["accept-encoding", "accept-language"]))
        XCTAssertEqual(plan(["*"]), .unstorable)
        XCTAssertEqual(plan(["cookie"]), .unstorable)
        XCTAssertEqual(plan(["authorization"]), .unstorable)
        XCTAssertEqual(plan(["x-theme"]), .unstorable, "outside vary_headers")
        XCTAssertEqual(plan(["authorization"], .perUser, identity: .header("Authorization")), .none, "the key holds it")
        XCTAssertEqual(plan(["cookie", "accept"], .perUser, identity: .cookie("session")), .variants(["accept"]))
    }

    func testAcceptEncodingIsNormalisedToTheCodingsTheGatewayTellsApart() {
        XCTAssertEqual(Variants.normalise("accept-encoding", ["gzip, deflate, br"]), "br,gzip")
        XCTAssertEqual(Variants.normalise("accept-encoding", ["gzip;q=1.0", "deflate"]), "gzip")
        XCTAssertEqual(Variants.normalise("accept-encoding", ["br;q=0, gzip"]), "gzip")
        XCTAssertEqual(Variants.normalise("accept-encoding", ["deflate, identity"]), "")
        XCTAssertEqual(Variants.normalise("accept-encoding", ["*"]), "br,gzip")
        XCTAssertEqual(Variants.normalise("accept-language", ["fr-CH, fr;q=0.9", "en"]), "fr-CH,fr;q=0.9,en")
    }

    func testSelectorsComeFromWhatIsForwarded() {
        let names = ["accept-encoding", "accept-language"]
        let a = Variants.selector(names, in: [("Accept-Encoding", "gzip, deflate"), ("Accept-Language", "fr")])
        let b = Variants.selector(names, in: [("accept-encoding", "x-gzip"), ("Accept-Language", "fr")])
        let c = Variants.selector(names, in: [("Accept-Language", "fr")])
        let d = Variants.selector(names, in: [("Accept-Encoding", ""), ("Accept-Language", "fr")])
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertNotEqual(c, d, "absent and empty differ")
        XCTAssertEqual(Variants.variantKey("gw:e:r:abc", selector: a).count, "gw:e:r:abc:".count + 32)
        XCTAssertNotEqual(Variants.variantKey("k", selector: a), Variants.variantKey("k", selector: c))
    }

    func testMarkerCodec() {
        let marker = VaryMarker(names: ["accept", "accept-encoding"])
        XCTAssertEqual(VaryMarker.decode(marker.encode()), marker)
        XCTAssertNil(VaryMarker.decode(Array(marker.encode().dropLast())))
        XCTAssertNil(VaryMarker.decode(marker.encode() + [0]))
        XCTAssertNil(VaryMarker.decode([0x43, 0x56, 0x01, 0, 0]), "no names")
        XCTAssertNil(CachedResponse.decode(marker.encode()), "a marker is never read as an entry")
        XCTAssertNil(VaryMarker.decode(CachedResponse(status: 200, headers: HTTPHeaders(), body: [], storedAt: 0).encode()))
    }
}
