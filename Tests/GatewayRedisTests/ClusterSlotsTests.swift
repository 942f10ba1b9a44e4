import GatewayRedis
import XCTest

/// The slot function and slot map against the Redis Cluster specification's vectors and a reply
/// recorded from redis-server 7.0.15.
final class ClusterSlotsTests: XCTestCase {
    func testCRC16MatchesTheSpecificationsCheckValue() {
        XCTAssertEqual(ClusterSlots.crc16(Array("123456789".utf8)), 0x31C3)
        XCTAssertEqual(ClusterSlots.crc16([UInt8]()), 0)
    }

    func testKnownKeysLandInTheSlotsRedisGivesThem() {
        // `CLUSTER KEYSLOT` on redis-server 7.0.15 gives these.
        XCTAssertEqual(ClusterSlots.slot(of: "foo"), 12182)
        XCTAssertEqual(ClusterSlots.slot(of: "bar"), 5061)
        XCTAssertEqual(ClusterSlots.slot(of: "hello"), 866)
        XCTAssertEqual(ClusterSlots.slot(of: ""), 0)
    }

    func testHashTagsFollowTheFirstBraceRules() {
        XCTAssertEqual(ClusterSlots.slot(of: "{user1000}.following"), ClusterSlots.slot(of: "{user1000}.followers"))
        XCTAssertEqual(ClusterSlots.slot(of: "{user1000}.following"), 3443)
        // Only the first `{` and the first `}` after it count.
        XCTAssertEqual(ClusterSlots.slot(of: "foo{bar}{zap}"), ClusterSlots.slot(of: "bar"))
        XCTAssertEqual(ClusterSlots.slot(of: "foo{{bar}}zap"), ClusterSlots.slot(of: "{bar"))
        // An empty tag is no tag: the whole key is hashed.
        XCTAssertEqual(ClusterSlots.slot(of: "foo{}{bar}"), Int(ClusterSlots.crc16(Array("foo{}{bar}".utf8)) & 16383))
        XCTAssertNotEqual(ClusterSlots.slot(of: "foo{}{bar}"), ClusterSlots.slot(of: "bar"))
        // An unclosed brace is no tag.
        XCTAssertEqual(ClusterSlots.slot(of: "foo{bar"), Int(ClusterSlots.crc16(Array("foo{bar".utf8)) & 16383))
    }

    func testEverySlotIsInRange() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<1000 {
            let key = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            XCTAssertTrue((0..<ClusterSlots.count).contains(ClusterSlots.slot(of: key)))
        }
    }

    /// `CLUSTER SLOTS` of a 3-master cluster after `redis-cli --cluster create` and one reshard
    /// of 100 slots from the first master to the third (so one master has two ranges).
    static let recorded: RedisReply = .array([
        range(100, 5460, "127.0.0.1", 30001, "a1"),
        range(0, 99, "127.0.0.1", 30003, "c3"),
        range(5461, 10922, "127.0.0.1", 30002, "b2"),
        range(10923, 16383, "", 30003, "c3"),
    ])

    static func range(_ start: Int64, _ end: Int64, _ host: String, _ port: Int64, _ id: String) -> RedisReply {
        .array([.integer(start), .integer(end), .array([.string(Array(host.utf8)), .integer(port), .string(Array(id.utf8)), .array([])])])
    }

    func testSlotMapFromARecordedReply() throws {
        let map = try ClusterSlotMap(clusterSlots: Self.recorded, queriedHost: "10.0.0.9")
        let first = ClusterNode(host: "127.0.0.1", port: 30001)
        let third = ClusterNode(host: "127.0.0.1", port: 30003)
        XCTAssertEqual(map.node(forSlot: 0), third)
        XCTAssertEqual(map.node(forSlot: 99), third)
        XCTAssertEqual(map.node(forSlot: 100), first)
        XCTAssertEqual(map.node(forSlot: 5461), ClusterNode(host: "127.0.0.1", port: 30002))
        // An empty host is the node that answered.
        XCTAssertEqual(map.node(forSlot: 16383), ClusterNode(host: "10.0.0.9", port: 30003))
        XCTAssertTrue(map.coversAllSlots)
        XCTAssertEqual(map.slotCount(of: first), 5361)
        XCTAssertEqual(map.slotCount(of: third), 100)
    }

    func testAPartialMapKnowsWhatIsMissing() throws {
        var map = try ClusterSlotMap(clusterSlots: .array([Self.range(0, 10, "127.0.0.1", 30001, "a")]), queriedHost: "x")
        XCTAssertFalse(map.coversAllSlots)
        XCTAssertNil(map.node(forSlot: 11))
        map.assign(slot: 11, to: ClusterNode(host: "127.0.0.1", port: 30002))
        XCTAssertEqual(map.node(forSlot: 11), ClusterNode(host: "127.0.0.1", port: 30002))
        XCTAssertEqual(map.nodes.count, 2)
    }

    func testMalformedRepliesAreProtocolErrors() {
        for reply: RedisReply in [
            .status("OK"),
            .array([.array([.integer(0), .integer(16384), .array([.string(Array("h".utf8)), .integer(1)])])]),
            .array([.array([.integer(5), .integer(4), .array([.string(Array("h".utf8)), .integer(1)])])]),
            .array([.array([.integer(0), .integer(1), .array([.string(Array("h".utf8)), .integer(0)])])]),
            .array([.array([.integer(0), .integer(1)])]),
        ] {
            XCTAssertThrowsError(try ClusterSlotMap(clusterSlots: reply, queriedHost: "h")) { error in
                XCTAssertEqual((error as? RedisError)?.shortDescription, "protocol_error", "\(reply)")
            }
        }
    }

    func testRedirectionsAreParsed() {
        XCTAssertEqual(ClusterRedirect(serverMessage: "MOVED 3999 127.0.0.1:6381"), .moved(slot: 3999, ClusterNode(host: "127.0.0.1", port: 6381)))
        XCTAssertEqual(ClusterRedirect(serverMessage: "ASK 3999 [::1]:6381"), .ask(slot: 3999, ClusterNode(host: "::1", port: 6381)))
        XCTAssertEqual(ClusterRedirect(serverMessage: "TRYAGAIN Multiple keys request during rehashing of slot"), .retryLater)
        XCTAssertEqual(ClusterRedirect(serverMessage: "CLUSTERDOWN The cluster is down"), .retryLater)
        XCTAssertNil(ClusterRedirect(serverMessage: "MOVED 16384 127.0.0.1:6381"))
        XCTAssertNil(ClusterRedirect(serverMessage: "MOVED 1 127.0.0.1"))
        XCTAssertNil(ClusterRedirect(serverMessage: "WRONGTYPE Operation against a key holding the wrong kind of value"))
    }

    func testCommandsAreRoutedByTheirOneKey() {
        func key(_ words: String...) -> String? {
            ClusterSlots.routingKey(of: words.map { Array($0.utf8) }).map { String(decoding: $0, as: UTF8.self) }
        }
        XCTAssertEqual(key("GET", "k"), "k")
        XCTAssertEqual(key("zadd", "t", "1", "m"), "t")
        XCTAssertEqual(key("EVAL", "return 1", "1", "k", "v"), "k")
        XCTAssertNil(key("EVAL", "return 1", "0"))
        XCTAssertNil(key("PUBLISH", "channel", "message"))
        XCTAssertNil(key("SCAN", "0", "MATCH", "gw:*"))
        XCTAssertNil(key("PING"))
    }
}
