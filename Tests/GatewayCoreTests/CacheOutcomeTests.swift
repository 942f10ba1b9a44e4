import GatewayCore
import XCTest

final class CacheOutcomeTests: XCTestCase {
    func testEveryCacheStatusTheStateMachineWritesHasItsOutcome() {
        let cases: [(CacheStatus?, Bool, CacheOutcome)] = [
            (.hit, false, .hit),
            (.hit("local"), false, .hit),
            (CacheStatus(forward: .miss, stored: true), false, .miss),
            (.miss("not-stored-vary"), false, .miss),
            (CacheStatus(forward: .miss, collapsed: true), false, .collapsed),
            (CacheStatus(forward: .miss, collapsed: true, detail: "max-wait"), true, .error),
            (CacheStatus(forward: .stale, detail: "stale-while-revalidate"), false, .stale),
            (CacheStatus(forward: .stale, collapsed: true, detail: "updating"), false, .stale),
            (CacheStatus(forward: .stale, forwardStatus: 503, detail: "stale-if-error"), false, .stale),
            (CacheStatus(forward: .stale, forwardStatus: 304), false, .revalidated),
            (CacheStatus(forward: .stale, forwardStatus: 304, stored: true), false, .revalidated),
            // A stale entry refetched with a new answer is a miss like any other fetch.
            (CacheStatus(forward: .stale, stored: true), false, .miss),
            (.bypass("pass"), false, .bypass),
            (CacheStatus(forward: .method), false, .bypass),
            (.miss("redis-timeout"), true, .error),
            (nil, true, .rejected),
            (nil, false, .local),
        ]
        for (status, gatewayError, expected) in cases {
            XCTAssertEqual(CacheOutcome(status: status, gatewayError: gatewayError), expected, "\(status?.description ?? "nil")")
        }
    }
}
