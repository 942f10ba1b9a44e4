/// One stream entry as read from `XREADGROUP` or `XAUTOCLAIM`.
struct StreamEntry: Sendable {
    let id: String
    /// nil when the entry is still pending but was deleted from the stream (`XREADGROUP … 0`
    /// returns `[id, nil]` for those).
    let fields: [(String, [UInt8])]?
}

/// Pure readers of the Streams replies (RESP2), so their shapes are tested without a server.
enum StreamReplies {
    /// `XREADGROUP … STREAMS s id`: nil (BLOCK timed out) or `[[stream, [[id, [f, v, …]], …]]]`.
    static func entries(fromReadGroup reply: RedisReply) -> [StreamEntry]? {
        switch reply {
        case .null: return []
        case .array(let streams):
            var all: [StreamEntry] = []
            for stream in streams {
                guard case .array(let pair) = stream, pair.count == 2 else { return nil }
                guard let entries = entries(fromList: pair[1]) else { return nil }
                all += entries
            }
            return all
        default: return nil
        }
    }

    /// `XAUTOCLAIM` (Redis 7): `[next-cursor, [[id, [f, v, …]], …], [deleted-id, …]]`. Redis 6.2
    /// has no third element. The deleted IDs were removed from the group's pending list by Redis.
    static func claimed(fromAutoClaim reply: RedisReply) -> (cursor: String, entries: [StreamEntry], deleted: Int)? {
        guard case .array(let parts) = reply, parts.count >= 2, let cursor = text(parts[0]),
            let entries = entries(fromList: parts[1])
        else { return nil }
        var deleted = 0
        if parts.count >= 3, case .array(let ids) = parts[2] { deleted = ids.count }
        return (cursor, entries, deleted)
    }

    /// `XINFO GROUPS s`: the `lag` field of the group named `group`; `.some(nil)` when Redis
    /// reports it as nil (unknown), nil when the group is not listed or the reply is malformed.
    static func lag(fromInfoGroups reply: RedisReply, group: String) -> Int?? {
        guard case .array(let groups) = reply else { return nil }
        for entry in groups {
            guard case .array(let flat) = entry else { continue }
            var fields: [String: RedisReply] = [:]
            var i = 0
            while i + 1 < flat.count {
                if let key = text(flat[i]) { fields[key] = flat[i + 1] }
                i += 2
            }
            guard let name = fields["name"].flatMap(text), name == group else { continue }
            switch fields["lag"] {
            case .integer(let lag)?: return .some(Int(lag))
            case .null?: return .some(nil)
            default: return nil  // Redis before 7.0 has no lag
            }
        }
        return nil
    }

    /// `[[id, [f, v, …] | nil], …]`.
    private static func entries(fromList reply: RedisReply) -> [StreamEntry]? {
        guard case .array(let list) = reply else { return reply == .null ? [] : nil }
        var entries: [StreamEntry] = []
        entries.reserveCapacity(list.count)
        for item in list {
            guard case .array(let pair) = item, pair.count == 2, let id = text(pair[0]) else { return nil }
            switch pair[1] {
            case .null:
                entries.append(StreamEntry(id: id, fields: nil))
            case .array(let flat):
                guard flat.count % 2 == 0 else { return nil }
                var fields: [(String, [UInt8])] = []
                fields.reserveCapacity(flat.count / 2)
                var i = 0
                while i < flat.count {
                    guard let name = text(flat[i]), case .string(let value) = flat[i + 1] else { return nil }
                    fields.append((name, value))
                    i += 2
                }
                entries.append(StreamEntry(id: id, fields: fields))
            default:
                return nil
            }
        }
        return entries
    }

    private static func text(_ reply: RedisReply) -> String? {
        switch reply {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let s): s
        default: nil
        }
    }
}
