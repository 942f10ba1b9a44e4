extension GatewayConfig {
    /// Where a log goes: a standard stream, or a file opened with `O_APPEND` (and reopened on SIGUSR1).
    public enum LogDestination: Sendable, Equatable, CustomStringConvertible {
        case stdout
        case stderr
        case file(String)

        public var description: String {
            switch self {
            case .stdout: "stdout"
            case .stderr: "stderr"
            case .file(let path): path
            }
        }
    }

    /// The access log (`access_log:`): one line per answered request. On by default, to stdout
    /// as JSON (one object per line is what log shippers read without configuration);
    /// `access_log: off` turns it off.
    public struct AccessLog: Sendable, Equatable {
        /// One JSON object per line; `key=value` pairs (logfmt); or nginx's `combined` plus extra fields.
        public enum Format: String, Sendable, CaseIterable {
            case json, logfmt, combined
        }

        /// What the logged path shows of the query string.
        public enum Query: String, Sendable, CaseIterable {
            /// As received.
            case keep
            /// Parameter names kept, every value replaced by `REDACTED` (`?page=REDACTED&q=REDACTED`).
            case redact
            /// The path alone.
            case drop
        }

        /// `path`: `stdout` (default), `stderr` or an absolute file path.
        public var destination: LogDestination
        /// `format`, default `json`.
        public var format: Format
        /// `query`, default `keep`.
        public var query: Query

        public init(destination: LogDestination = .stdout, format: Format = .json, query: Query = .keep) {
            self.destination = destination
            self.format = format
            self.query = query
        }
    }

    /// The application log (`log:`): start-up, warnings, errors. The level is `--log-level`.
    public struct Log: Sendable, Equatable {
        public enum Format: String, Sendable, CaseIterable {
            /// swift-log's own lines (the default, as before).
            case text
            case json, logfmt
        }

        /// `format`, default `text`.
        public var format: Format
        /// `path`: `stderr` (default), `stdout` or an absolute file path.
        public var destination: LogDestination

        public init(format: Format = .text, destination: LogDestination = .stderr) {
            self.format = format
            self.destination = destination
        }
    }
}
