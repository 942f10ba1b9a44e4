import Yams

private enum LogKeys {
    static let accessLog = ["path", "format", "query"]
    static let log = ["format", "path"]
}

extension ConfigReader {
    /// `access_log:`; absent means the default (on, stdout, json), `off` (or `false`) means none.
    func readAccessLog(_ root: Fields) -> GatewayConfig.AccessLog? {
        var log = GatewayConfig.AccessLog()
        guard let node = root["access_log"] else { return log }
        if case .scalar(let scalar) = node, ["off", "false", "Off", "OFF", "False", "FALSE"].contains(scalar.string) {
            return nil
        }
        guard let f = fields(node, "access_log", known: LogKeys.accessLog, nullIsEmpty: true,
                             expected: "off or a mapping with path, format and query")
        else { return log }
        if let node = f["path"] { log.destination = destination(node, f.path("path")) ?? log.destination }
        if let node = f["format"] { log.format = choice(node, f.path("format")) ?? log.format }
        if let node = f["query"] { log.query = choice(node, f.path("query")) ?? log.query }
        return log
    }

    /// `log:`, the application log's format and destination.
    func readLog(_ root: Fields) -> GatewayConfig.Log {
        var log = GatewayConfig.Log()
        guard let node = root["log"],
              let f = fields(node, "log", known: LogKeys.log, nullIsEmpty: true)
        else { return log }
        if let node = f["path"] { log.destination = destination(node, f.path("path")) ?? log.destination }
        if let node = f["format"] { log.format = choice(node, f.path("format")) ?? log.format }
        return log
    }

    private func destination(_ node: Node, _ path: String) -> GatewayConfig.LogDestination? {
        guard let text = string(node, path, expected: "stdout, stderr or an absolute file path") else { return nil }
        switch text {
        case "stdout": return .stdout
        case "stderr": return .stderr
        default:
            // Relative paths would depend on the directory the service manager starts us in.
            guard text.hasPrefix("/"), text.count > 1, !text.hasSuffix("/") else {
                report(node, path, "expected stdout, stderr or an absolute file path, found \"\(text)\"")
                return nil
            }
            return .file(text)
        }
    }

    private func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ path: String) -> T? where T.RawValue == String {
        let names = T.allCases.map(\.rawValue)
        let list = names.dropLast().joined(separator: ", ") + " or " + names.last!
        guard let text = string(node, path, expected: list) else { return nil }
        guard let value = T(rawValue: text) else {
            report(node, path, "expected \(list), found \"\(text)\"")
            return nil
        }
        return value
    }
}
