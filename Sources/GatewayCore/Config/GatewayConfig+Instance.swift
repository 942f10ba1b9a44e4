import Foundation

extension GatewayConfig {
    /// This process's name among the instances that share one Redis (`instance_id`): in every
    /// application log line (`instance=`), `/stats`, `/config`, `cachegateway_build_info`, and
    /// the value of the Redis leases this instance holds, so that an operator can tell which
    /// instance did what.
    ///
    /// 1–64 characters of `A–Z a–z 0–9 . _ : -`. Default: ``InstanceID/processDefault``
    /// (host name and process ID, e.g. `web-1:12345`), so that two instances on one host differ.
    public struct InstanceID: Sendable, Equatable, CustomStringConvertible {
        /// The name itself.
        public let value: String
        /// Whether `instance_id` was written in the file (false: the process default). Only a
        /// name the operator chose is stable across restarts.
        public let isExplicit: Bool

        /// Characters a name may use: safe in a log field, a metric label, a Redis value and a
        /// consumer group name without quoting.
        public static let allowedCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
        public static let maxLength = 64

        /// A name from the file.
        /// - Throws: ``InstanceIDError`` naming what is wrong with it.
        public init(parsing text: String) throws(InstanceIDError) {
            guard !text.isEmpty else { throw InstanceIDError("must not be empty (leave it out for host name and process ID)") }
            guard text.count <= Self.maxLength else {
                throw InstanceIDError("must be at most \(Self.maxLength) characters, got \(text.count)")
            }
            if let bad = text.first(where: { !Self.allowedCharacters.contains($0) }) {
                throw InstanceIDError("\(Self.describe(bad)) is not allowed: use letters, digits and . _ : - (e.g. web-1)")
            }
            value = text
            isExplicit = true
        }

        private init(defaultValue: String) {
            value = defaultValue
            isExplicit = false
        }

        /// `<host name>:<pid>`: distinct for two instances on one host, but new at every restart.
        /// Characters of the host name outside the allowed set become `-`, and it is cut so that
        /// the whole fits in 64 characters.
        public static var processDefault: InstanceID {
            InstanceID(defaultValue: makeDefault(hostName: ProcessInfo.processInfo.hostName, pid: ProcessInfo.processInfo.processIdentifier))
        }

        static func makeDefault(hostName: String, pid: Int32) -> String {
            let suffix = ":\(pid)"
            var host = String(hostName.map { allowedCharacters.contains($0) ? $0 : "-" }.prefix(maxLength - suffix.count))
            if host.isEmpty { host = "gateway" }
            return host + suffix
        }

        private static func describe(_ c: Character) -> String {
            if c == " " { return "a space" }
            if c.unicodeScalars.allSatisfy({ $0.properties.generalCategory == .control }) {
                return "a control character (U+" + String(c.unicodeScalars.first!.value, radix: 16, uppercase: true) + ")"
            }
            return "\"\(c)\""
        }

        public var description: String { value }
    }

    /// Why an `instance_id` was refused.
    public struct InstanceIDError: Error, Sendable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// The consumer name (and `cachegateway:<name>` group) this instance reads the invalidation
    /// stream with. It must survive restarts, or every restart leaves an orphaned group behind
    /// and a new one starts at the stream's end: `invalidation.instance` when set, else an
    /// `instance_id` written in the file, else the host name (not the default `instance_id`,
    /// whose pid changes at every start). Two instances on one host therefore need one of the
    /// two set, each its own.
    public var streamConsumerName: String {
        if let name = invalidation?.instance { return name }
        if instanceID.isExplicit { return instanceID.value }
        return ProcessInfo.processInfo.hostName
    }
}
