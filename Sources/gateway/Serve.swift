import ArgumentParser
import Dispatch
import GatewayCore
import GatewayRuntime
import GatewayHTTP
import Logging

#if canImport(Glibc)
import Glibc
#endif

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway (the default command).",
        discussion: """
            SIGTERM or SIGINT stops accepting, lets in-flight requests finish within server.drain_timeout, then exits 0. \
            SIGHUP re-reads the config file: on errors it keeps serving with the running config and logs each error; \
            otherwise new requests get the new routes, cache policies, Redis and upstream settings, \
            and settings that take a restart are named in the log.
            """
    )

    @Option(name: .shortAndLong, help: "The config file.")
    var config: String = "gateway.yaml"

    @Option(name: .long, help: "Override `listen` from the config (host:port; a host name is resolved at start).")
    var listen: String?

    @Option(name: .long, help: ArgumentHelp("Write the process ID here at start and remove it at a clean exit (overrides pid_file); `gateway reload` reads it.", valueName: "path"))
    var pidFile: String?

    @OptionGroup var logging: LoggingOptions

    func run() throws {
        // The config first, for its `log` section: its errors go to stderr as plain text, as in
        // check-config, whatever the file asks for.
        var loaded: GatewayConfig
        do {
            loaded = try GatewayConfig.load(path: config)
            if let listen { loaded.listen = try GatewayConfig.ListenAddress(parsing: listen) }
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
        let logFile: LogDescriptor?
        do {
            logFile = try logging.bootstrap(loaded.log, instanceID: loaded.instanceID)
        } catch {
            printError("gateway: cannot open log.path: \(error)")
            throw ExitCode(1)
        }
        let logger = Logger(label: "gateway")
        warnIfDescriptorsCannotCover(loaded, limit: OpenFileLimit.raiseToHardLimit(), logger: logger)
        let pidFile = self.pidFile ?? loaded.pidFile
        if let pidFile {
            do {
                try PidFile.claim(pidFile)
            } catch {
                printError("gateway: \(error)")
                throw ExitCode(1)
            }
        }
        let service = GatewayService(config: loaded, logger: logger)
        service.gateway.bootstrapGlobalMetrics()
        signal(SIGPIPE, SIG_IGN)
        do {
            try service.start()
        } catch {
            if let pidFile { PidFile.release(pidFile) }
            if service.accessLog == nil, loaded.accessLog != nil {
                printError("gateway: cannot open access_log.path: \(error)")
            } else {
                printError("gateway: cannot listen on \(loaded.listen): \(error)")
            }
            throw ExitCode(1)
        }
        if SocketAddress(host: loaded.listen.host, port: 0) == nil, let bound = service.localAddress {
            // A name can resolve to several addresses; say which one was taken.
            logger.info("listen host resolved", metadata: ["listen": "\(loaded.listen)", "listen.address": "\(bound)"])
        }
        stopOnSignals(service, pidFile: pidFile)
        reopenLogsOnSIGUSR1(service, logFile: logFile, logger: logger)
        reloadOnSIGHUP(service, path: config, logger: logger)
        dispatchMain()
    }
}

/// Every client connection is a descriptor, and so is every Redis and upstream connection of each
/// loop, plus a few for listening, epoll and the runtime (`margin`). Past the limit the server
/// answers 503, so a limit below what the config allows is worth saying at start.
private func warnIfDescriptorsCannotCover(_ config: GatewayConfig, limit: (soft: Int, hard: Int), logger: Logger) {
    let margin = 64
    let perLoop = config.upstream.maxConnections + 2 * config.redis.connections
    let needed = config.server.maxConnections + config.server.eventLoops * perLoop + margin
    guard needed > limit.soft else { return }
    logger.warning(
        "open file limit is below what server.max_connections needs",
        metadata: [
            "server.max_connections": "\(config.server.maxConnections)",
            "fd.needed": "\(needed)",
            "fd.limit": "\(limit.soft)",
            "fd.hard_limit": "\(limit.hard == Int.max ? "unlimited" : "\(limit.hard)")",
        ])
}

/// SIGTERM and SIGINT start a graceful shutdown; the process exits 0 once it is done, after
/// removing its pid file.
private func stopOnSignals(_ service: GatewayService, pidFile: String?) {
    for sig in [SIGTERM, SIGINT] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            service.shutdown {
                if let pidFile { PidFile.release(pidFile) }
                exit(0)
            }
        }
        source.resume()
        signalSources.append(source)
    }
}

/// SIGHUP: re-read and validate the file; apply what can be applied without a restart.
private func reloadOnSIGHUP(_ service: GatewayService, path: String, logger: Logger) {
    signal(SIGHUP, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "gateway.reload"))
    source.setEventHandler {
        let new: GatewayConfig
        do {
            new = try GatewayConfig.load(path: path)
        } catch {
            // The same lines as check-config, so the operator can fix the file and HUP again.
            let lines = "\(error)".split(separator: "\n").map(String.init)
            for line in lines {
                logger.error("reload failed, keeping the running config", metadata: ["error": "\(line)"])
            }
            service.gateway.reloadFailed(errors: lines)
            return
        }
        let report = service.reload(new)
        logger.notice("config reloaded", metadata: [
            "config": "\(path)", "routes": "\(new.routes.count)",
            "applied": "\(report.applied.joined(separator: ", "))",
            "needs_restart": "\(report.needsRestart.isEmpty ? "nothing" : report.needsRestart.joined(separator: ", "))",
        ])
    }
    source.resume()
    signalSources.append(source)
}

/// SIGUSR1 (logrotate's `postrotate`): reopens the access log's and the application log's files
/// at their paths, so that new lines go to new files once the old ones were renamed.
private func reopenLogsOnSIGUSR1(_ service: GatewayService, logFile: LogDescriptor?, logger: Logger) {
    signal(SIGUSR1, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: DispatchQueue(label: "gateway.reopen"))
    source.setEventHandler {
        do {
            try service.reopenAccessLog()
            try logFile?.reopen()
            logger.info("log files reopened")
        } catch {
            // The old files stay in use: no line is lost, they land in the renamed file.
            logger.error("cannot reopen a log file, still writing to the old one", metadata: ["error": "\(error)"])
        }
    }
    source.resume()
    signalSources.append(source)
}

/// Keeps the signal sources alive for the life of the process; written once, on the main thread.
nonisolated(unsafe) private var signalSources: [DispatchSourceSignal] = []
