import GatewayCore
import GatewayHTTP
import Logging

/// Application log lines (`log.format`): `json` (one object per line) or `logfmt`, with the
/// event's metadata as fields, escaped like the access log's; or `text` when it goes to a file
/// or stdout (swift-log's own handler writes text on stderr). Each line is one `write(2)`, so lines from different
/// threads never interleave; application logs are rare (warnings are throttled), so they are
/// written at once rather than buffered.
public struct StructuredLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: GatewayConfig.Log.Format
    private let descriptor: LogDescriptor

    /// Field names of the line itself; metadata with one of these names gets a `meta.` prefix,
    /// so that no metadata value can pose as the message or the level.
    private static let reserved: Set<String> = ["time", "level", "label", "message"]

    public init(label: String, format: GatewayConfig.Log.Format, descriptor: LogDescriptor,
                metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.format = format
        self.descriptor = descriptor
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let own = event.metadata { all.merge(own) { _, new in new } }
        let line = Self.line(time: WallClock.nowMilliseconds(), level: event.level, label: label,
                             message: "\(event.message)", metadata: all, format: format)
        descriptor.write(line)
    }

    /// One line, newline included.
    static func line(time: UInt64, level: Logger.Level, label: String, message: String,
                     metadata: Logger.Metadata, format: GatewayConfig.Log.Format) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        var clock = LogText.Clock()
        let fields = metadata.sorted { $0.key < $1.key }.map { key, value in
            (Self.reserved.contains(key) ? "meta." + key : key, Self.flatten(value))
        }
        if format == .text {
            // swift-log's text layout, for a file: time, level, label, message, then the fields.
            clock.appendRFC3339(milliseconds: time, to: &out)
            out.append(contentsOf: Array(" \(level.rawValue) \(label): \(message)".utf8.map { $0 < 0x20 ? UInt8(ascii: " ") : $0 }))
            for (key, value) in fields {
                out.append(contentsOf: Array(" \(key)=".utf8))
                LogText.appendLogfmtValue(value.utf8, to: &out)
            }
            out.append(UInt8(ascii: "\n"))
            return out
        }
        // Keys are the code's constants, but they are escaped like values all the same.
        var line = LogText.FieldWriter(json: format == .json)
        line.key("time", to: &out)
        line.raw(quoted: true, to: &out) { clock.appendRFC3339(milliseconds: time, to: &$0) }
        line.key("level", to: &out)
        line.string(level.rawValue, to: &out)
        line.key("label", to: &out)
        line.string(label, to: &out)
        line.key("message", to: &out)
        line.string(message, to: &out)
        for (key, value) in fields {
            line.key(key, to: &out)
            line.string(value, to: &out)
        }
        line.end(to: &out)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    private static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        case .array, .dictionary: value.description
        }
    }
}
