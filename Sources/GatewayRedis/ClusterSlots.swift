/// Redis Cluster's key slots, as the cluster specification defines them: `CRC16(key) mod 16384`
/// (CRC16-XMODEM: polynomial 0x1021, initial value 0, no reflection), hashing only the hash tag
/// when the key has one.
public enum ClusterSlots {
    public static let count = 16384

    /// CRC16-XMODEM of `bytes`; `crc16("123456789") == 0x31C3` (the specification's check value).
    public static func crc16<Bytes: Collection>(_ bytes: Bytes) -> UInt16 where Bytes.Element == UInt8 {
        var crc: UInt16 = 0
        for byte in bytes { crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)] }
        return crc
    }

    /// The slot of `key`. With a hash tag (the bytes between the first `{` and the first `}` after
    /// it, when there is at least one of them) only the tag is hashed, so `{user1000}.following`
    /// and `{user1000}.followers` share a slot; `{}` and an unclosed `{` are no tag (the whole key
    /// is hashed).
    public static func slot(of key: [UInt8]) -> Int {
        Int(crc16(hashedPart(of: key)) & UInt16(count - 1))
    }

    public static func slot(of key: String) -> Int { slot(of: Array(key.utf8)) }

    static func hashedPart(of key: [UInt8]) -> ArraySlice<UInt8> {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")),
            close > open + 1
        else { return key[...] }
        return key[(open + 1)..<close]
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var crc = UInt16(index) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }

    /// The key a command is routed by, or nil for a command that names none (`PUBLISH` goes to
    /// any node: cluster pub/sub is cluster-wide; `SCAN` must be sent to each master itself).
    /// The gateway's commands name at most one key each (see the README's command list): this
    /// knows their shapes, with the key as the first argument unless listed otherwise.
    public static func routingKey(of arguments: [[UInt8]]) -> [UInt8]? {
        guard let name = arguments.first, arguments.count >= 2 else { return nil }
        let upper = String(decoding: name, as: UTF8.self).uppercased()
        switch upper {
        case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
            // EVAL script numkeys key… : keyless scripts go anywhere.
            guard arguments.count >= 4, String(decoding: arguments[2], as: UTF8.self) != "0" else { return nil }
            return arguments[3]
        case "PUBLISH", "SCAN", "PING", "ECHO", "INFO", "CLUSTER", "SCRIPT", "DBSIZE", "TIME", "CLIENT",
            "CONFIG", "COMMAND", "FLUSHALL", "FLUSHDB", "ASKING", "READONLY", "READWRITE", "AUTH", "SELECT":
            return nil
        default:
            return arguments[1]
        }
    }
}

/// A cluster node's client address, as `CLUSTER SLOTS` and redirections name it.
public struct ClusterNode: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port` (`[v6]:port`), the form `-MOVED` uses; nil when it is not one.
    public init?(address: Substring) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = address[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Which master serves each slot, from a `CLUSTER SLOTS` reply. A value: the cluster client keeps
/// one, patches it on `-MOVED` and replaces it on a refresh.
public struct ClusterSlotMap: Sendable, Equatable {
    /// The masters, in the order first seen.
    public private(set) var nodes: [ClusterNode]
    /// Per slot, an index into `nodes`, or `unassigned`.
    private var owners: [UInt16]
    private static let unassigned = UInt16.max

    public init() {
        nodes = []
        owners = Array(repeating: Self.unassigned, count: ClusterSlots.count)
    }

    /// Parses `CLUSTER SLOTS`: `[[start, end, [host, port, id, …], replica…], …]`. A master with
    /// an empty host (the node does not know its own address) is on `queriedHost`, the node
    /// that answered. Throws ``RedisError/protocolError(_:)`` on any other shape.
    public init(clusterSlots reply: RedisReply, queriedHost: String) throws(RedisError) {
        self.init()
        guard case .array(let ranges) = reply else { throw .protocolError("CLUSTER SLOTS: expected an array") }
        for range in ranges {
            guard case .array(let fields) = range, fields.count >= 3,
                case .integer(let start) = fields[0], case .integer(let end) = fields[1],
                case .array(let master) = fields[2], master.count >= 2,
                case .string(let hostBytes) = master[0], case .integer(let port) = master[1],
                0 <= start, start <= end, end < ClusterSlots.count, (1...65535).contains(port)
            else { throw .protocolError("CLUSTER SLOTS: unexpected range \(range)") }
            let host = hostBytes.isEmpty ? queriedHost : String(decoding: hostBytes, as: UTF8.self)
            let owner = index(of: ClusterNode(host: host, port: Int(port)))
            for slot in Int(start)...Int(end) { owners[slot] = owner }
        }
    }

    /// The master serving `slot`, nil when no node does (a cluster that is not fully covered).
    public func node(forSlot slot: Int) -> ClusterNode? {
        let owner = owners[slot]
        return owner == Self.unassigned ? nil : nodes[Int(owner)]
    }

    /// Whether every slot has a master.
    public var coversAllSlots: Bool { !owners.contains(Self.unassigned) }

    /// How many slots `node` serves.
    public func slotCount(of node: ClusterNode) -> Int {
        guard let owner = nodes.firstIndex(of: node) else { return 0 }
        return owners.lazy.filter { $0 == UInt16(owner) }.count
    }

    /// Records that `node` now serves `slot` (a `-MOVED` says so), until the next refresh.
    public mutating func assign(slot: Int, to node: ClusterNode) {
        owners[slot] = index(of: node)
    }

    private mutating func index(of node: ClusterNode) -> UInt16 {
        if let existing = nodes.firstIndex(of: node) { return UInt16(existing) }
        nodes.append(node)
        return UInt16(nodes.count - 1)
    }
}

/// A cluster node's answer that sends the command elsewhere or asks to try again.
public enum ClusterRedirect: Sendable, Equatable {
    /// `-MOVED slot host:port`: the slot lives there now; the map is out of date.
    case moved(slot: Int, ClusterNode)
    /// `-ASK slot host:port`: the slot is migrating; this key is there already. Send `ASKING`
    /// and the command there once; the map stays.
    case ask(slot: Int, ClusterNode)
    /// `-TRYAGAIN` (a multi-key command during migration) or `-CLUSTERDOWN`: retry later.
    case retryLater

    /// Parses a server error message (without the leading `-`); nil for any other error.
    public init?(serverMessage message: String) {
        let parts = message.split(separator: " ")
        guard let first = parts.first else { return nil }
        switch first {
        case "MOVED", "ASK":
            guard parts.count == 3, let slot = Int(parts[1]), (0..<ClusterSlots.count).contains(slot),
                let node = ClusterNode(address: parts[2])
            else { return nil }
            self = first == "MOVED" ? .moved(slot: slot, node) : .ask(slot: slot, node)
        case "TRYAGAIN", "CLUSTERDOWN":
            self = .retryLater
        default:
            return nil
        }
    }
}
