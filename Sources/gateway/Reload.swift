import ArgumentParser
import GatewayCore

#if canImport(Glibc)
import Glibc
#endif

/// `gateway reload`: SIGHUP to the gateway named by a pid file, like `nginx -s reload`.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Make a running gateway re-read its config: send SIGHUP to the process in its pid file.",
        discussion: """
            The gateway validates the file again and keeps its running config when it has errors (its log says \
            which). Exits 1 when the pid file is missing or unreadable, or its process is gone or is not a gateway.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The pid file the gateway was started with (serve --pid-file, or pid_file in the config).", valueName: "path"))
    var pidFile: String?

    @Option(name: .shortAndLong, help: "The config file whose pid_file is used when --pid-file is not given.")
    var config: String = "gateway.yaml"

    func run() throws {
        let path: String
        if let pidFile {
            path = pidFile
        } else {
            do {
                guard let configured = try GatewayConfig.load(path: config).pidFile else {
                    printError("gateway reload: error: \(config) sets no pid_file: give --pid-file PATH")
                    throw ExitCode(1)
                }
                path = configured
            } catch let errors as ConfigErrors {
                printError("\(errors)")
                throw ExitCode(1)
            }
        }
        do throws(PidFile.Failure) {
            let pid = try PidFile.read(path)
            guard PidFile.isAlive(pid) else {
                throw PidFile.Failure(description: "process \(pid) named in \(path) is not running (the pid file is stale: is the gateway running?)")
            }
            if let name = PidFile.processName(pid), name != "gateway" {
                throw PidFile.Failure(description: "process \(pid) named in \(path) is \"\(name)\", not a gateway (the pid file is stale)")
            }
            guard kill(pid, SIGHUP) == 0 else {
                throw PidFile.Failure(description: "cannot signal process \(pid): \(String(cString: strerror(errno)))")
            }
            print("sent SIGHUP to the gateway (pid \(pid)): it re-reads its config and logs the result")
        } catch {
            printError("gateway reload: error: \(error)")
            throw ExitCode(1)
        }
    }
}
