import Yams

extension ConfigReader {
    /// `admin: { listen: 127.0.0.1:9901, public_health: true }`; `admin: {}` (or `admin:` alone)
    /// turns the listener on with both defaults.
    func readAdmin(_ root: Fields) -> GatewayConfig.Admin? {
        guard let node = root["admin"],
              let f = fields(node, "admin", known: ["listen", "public_health"], nullIsEmpty: true)
        else { return nil }
        var admin = GatewayConfig.Admin()
        if let node = f["listen"],
           let listen = parsed(node, f.path("listen"), { try GatewayConfig.ListenAddress(parsing: $0) })
        {
            // Port 0 twice is two different free ports; anything else would fail to bind at start.
            if let publicNode = root["listen"], case .scalar(let scalar) = publicNode,
               let publicListen = try? GatewayConfig.ListenAddress(parsing: scalar.string),
               publicListen == listen, listen.port != 0
            {
                report(node, f.path("listen"), "must differ from listen (\(listen)): the admin port is a second listener")
            } else {
                admin.listen = listen
            }
        }
        admin.publicHealth = bool(f, "public_health", default: admin.publicHealth)
        return admin
    }
}
