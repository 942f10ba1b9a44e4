@testable import GatewayRedis
import XCTest

/// The Streams reply shapes (RESP2, Redis 7), read without a server.
final class StreamRepliesTests: XCTestCase {
    private func s(_ text: String) -> RedisReply { .string(Array(text.utf8)) }

    func testReadGroupEntriesIncludingDeletedAndTimedOutBlock() throws {
        XCTAssertEqual(StreamReplies.entries(fromReadGroup: .null)?.count, 0, "BLOCK timed out")
        let reply = RedisReply.array([.array([s("inval"), .array([
            .array([s("1-0"), .array([s("v"), s("a"), s("k"), s("b")])]),
            .array([s("2-0"), .null]),
        ])])])
        let entries = try XCTUnwrap(StreamReplies.entries(fromReadGroup: reply))
        XCTAssertEqual(entries.map(\.id), ["1-0", "2-0"])
        XCTAssertEqual(entries[0].fields?.map(\.0), ["v", "k"])
        XCTAssertEqual(entries[0].fields?.map(\.1), [Array("a".utf8), Array("b".utf8)])
        XCTAssertNil(entries[1].fields, "pending but deleted from the stream")
        XCTAssertNil(StreamReplies.entries(fromReadGroup: .array([.array([s("inval"), .array([.array([s("1-0"), .array([s("odd")])])])])])))
    }

    func testAutoClaimCursorEntriesAndDeletedIDs() throws {
        let reply = RedisReply.array([s("5-0"), .array([.array([s("3-0"), .array([s("v"), s("x")])])]), .array([s("4-0")])])
        let claimed = try XCTUnwrap(StreamReplies.claimed(fromAutoClaim: reply))
        XCTAssertEqual(claimed.cursor, "5-0")
        XCTAssertEqual(claimed.entries.map(\.id), ["3-0"])
        XCTAssertEqual(claimed.deleted, 1)
    }

    func testLagOfTheNamedGroupNilWhenRedisCannotTell() {
        let groups = RedisReply.array([
            .array([s("name"), s("other"), s("lag"), .integer(9)]),
            .array([s("name"), s("gw-1"), s("consumers"), .integer(1), s("lag"), .integer(3)]),
        ])
        XCTAssertEqual(StreamReplies.lag(fromInfoGroups: groups, group: "gw-1"), .some(3))
        XCTAssertEqual(StreamReplies.lag(fromInfoGroups: .array([.array([s("name"), s("gw-1"), s("lag"), .null])]), group: "gw-1"), .some(nil))
        XCTAssertNil(StreamReplies.lag(fromInfoGroups: groups, group: "missing") as Int??)
    }
}
