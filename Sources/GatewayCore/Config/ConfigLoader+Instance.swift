extension ConfigReader {
    /// `instance_id`; the process default when absent (or wrong: the error is reported).
    func readInstanceID(_ root: Fields) -> GatewayConfig.InstanceID {
        guard let node = root["instance_id"], let text = string(node, "instance_id", expected: "a name such as web-1") else {
            return .processDefault
        }
        do {
            return try GatewayConfig.InstanceID(parsing: text)
        } catch {
            report(node, "instance_id", error.description)
            return .processDefault
        }
    }
}
