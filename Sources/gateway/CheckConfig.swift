import ArgumentParser
import GatewayCore

#if canImport(Glibc)
import Glibc
#endif

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a config file and print a summary of its routes.",
        discussion: "Exits 0 when the file is valid; otherwise prints every problem as file:line:column: error: … and exits 1."
    )

    @Argument(help: "The config file to check.")
    var path: String = "gateway.yaml"

    func run() throws {
        do {
            let config = try GatewayConfig.load(path: path)
            print(config.summary())
            print("\(path): OK")
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
    }
}

func printError(_ text: String) {
    var text = text
    if !text.hasSuffix("\n") { text += "\n" }
    // write(2) to fd 2: the C `stderr` global is not concurrency-safe in Swift 6.
    _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}
