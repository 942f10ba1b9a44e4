import Foundation

/// One change announced by the monolith: what to purge, and whether softly.
///
/// Two spellings are understood, on the pub/sub channel and in the stream alike:
/// - JSON, `{"purge": {"paths": ["/users/42/resources"], "routes": ["catalog"]}, "soft": false}`
///   (in a stream, as the value of the field `event`); unknown keys are ignored so that the
///   monolith can add some before the gateway knows them;
/// - the one-line text commands `purge <path>` and `purge-route <route name>`.
public struct InvalidationEvent: Sendable, Equatable {
    /// Request paths: every entry stored for each (every user, every query variant).
    public var paths: [String] = []
    /// Route names: every entry of each.
    public var routes: [String] = []
    /// Tags (surrogate keys): every entry carrying each, from a route's `tags` or the
    /// response's `tags_header`.
    public var tags: [String] = []
    /// Path prefixes (`/catalog/items/`): every entry of every path that starts with one.
    public var prefixes: [String] = []
    /// Mark stale instead of delete (served under the stale windows while one refresh runs).
    public var soft = false

    public init(paths: [String] = [], routes: [String] = [], tags: [String] = [], prefixes: [String] = [], soft: Bool = false) {
        self.paths = paths
        self.routes = routes
        self.tags = tags
        self.prefixes = prefixes
        self.soft = soft
    }

    public var isEmpty: Bool { paths.isEmpty && routes.isEmpty && tags.isEmpty && prefixes.isEmpty }

    /// Why a message is not an event; bounded, for logs and counters.
    public struct Malformed: Error, Equatable, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    /// Parses a message body: JSON if it starts with `{`, else a text command.
    public static func parse(_ bytes: [UInt8]) -> Result<InvalidationEvent, Malformed> {
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("{") { return parseJSON(Data(bytes)) }
        let parts = text.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return .failure(Malformed(reason: "expected JSON or 'purge <path>' / 'purge-route <name>'")) }
        let argument = parts[1].trimmingCharacters(in: .whitespacesAndNewlines)
        switch parts[0] {
        case "purge":
            guard argument.hasPrefix("/") else { return .failure(Malformed(reason: "a purged path must start with /")) }
            return .success(InvalidationEvent(paths: [argument]))
        case "purge-route":
            return .success(InvalidationEvent(routes: [argument]))
        default:
            return .failure(Malformed(reason: "unknown command"))
        }
    }

    private struct Wire: Decodable {
        struct Purge: Decodable {
            var paths: [String]?
            var routes: [String]?
            var tags: [String]?
            var prefixes: [String]?
        }
        var purge: Purge?
        var soft: Bool?
    }

    private static func parseJSON(_ data: Data) -> Result<InvalidationEvent, Malformed> {
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: data)
        } catch {
            return .failure(Malformed(reason: "invalid JSON for an event"))
        }
        let event = InvalidationEvent(
            paths: wire.purge?.paths ?? [], routes: wire.purge?.routes ?? [], tags: wire.purge?.tags ?? [],
            prefixes: wire.purge?.prefixes ?? [], soft: wire.soft ?? false)
        guard !event.isEmpty else { return .failure(Malformed(reason: "the event purges nothing")) }
        guard (event.paths + event.prefixes).allSatisfy({ $0.hasPrefix("/") }) else {
            return .failure(Malformed(reason: "a purged path must start with /"))
        }
        guard event.tags.allSatisfy({ !$0.isEmpty }) else { return .failure(Malformed(reason: "an empty tag")) }
        return .success(event)
    }
}
