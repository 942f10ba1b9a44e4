import Foundation
import LoadGenerator

#if canImport(Glibc)
import Glibc
#endif

/// The settings every scenario reads (from the `run` command line).
struct BenchOptions: Sendable {
    var smoke: Bool
    /// Seconds of measured load per target (hit splits it across its cases).
    var duration: Double
    var backendDelayMs: Int
    var herdSize: Int
    var herdRounds: Int
    var targets: [Target]
    /// Gateway event loops, and nginx worker processes.
    var workers: Int
    /// Closed-loop connections (hit).
    var connections: Int
    /// users: requests per second offered.
    var usersRate: Double
    /// shield: the demo monolith's concurrency cap.
    var shieldConcurrency: Int
    /// The gateway's `cache.local_ttl` (in-process tier); "0s" = every hit read from Redis.
    var localTTL: String = "0s"
    /// hit: rounds per target and case, taken in turns.
    var rounds: Int = 3
    /// hit: foreign CPU, in cores, above which a round is noisy.
    var noiseThresholdCores: Double = HitScenario.defaultNoiseThreshold
    /// Where the gateway's Prometheus text is, on its admin listener (herd reports its coalesced-wait histogram).
    var metricsPath: String = "/metrics"
    /// Both the gateway and nginx write an access log (the gateway's default, and nginx's): a
    /// comparison where only one of them logs is not one.
    var accessLog: Bool = true
}

/// What the demo monolith of one phase looks like.
struct BackendShape {
    var delayMs: Int
    var bodySize: Int = 1024
    /// 0 = unlimited.
    var concurrency: Int = 0
}

/// TTLs of the generated configs (gateway and nginx alike).
enum CacheRules {
    static let catalogTTLSeconds = 300
    static let userTTLSeconds = 30
    static let maxWaitSeconds = 5
    static let upstreamConnections = 64
}

/// A route with stale windows (`expiry`, `outage`): `/fresh/**`, public, the same TTL and windows
/// in the gateway's config (`stale_while_revalidate`, `stale_if_error`, `keep`) and in nginx's
/// (`proxy_cache_valid`, `proxy_cache_use_stale`, `proxy_cache_background_update`,
/// `proxy_cache_revalidate`). Other scenarios have no such route: their configs stay as they were.
struct FreshRoute: Sendable {
    static let prefix = "/fresh/"
    /// Whole seconds: nginx's cache clock has a resolution of one second.
    var ttlSeconds: Int
    /// 0 = off. nginx has no bound: `updating` serves stale for as long as the entry is kept, and
    /// `proxy_cache_background_update` is on exactly when this is above 0.
    var staleWhileRevalidateSeconds: Int
    /// 0 = off. nginx has no bound here either (`error timeout http_5xx`, until `inactive`).
    var staleIfErrorSeconds: Int
    /// How long the gateway keeps an entry for revalidation after its windows (nginx keeps it until `inactive`).
    var keepSeconds = 60
    /// The gateway's `upstream.timeout` and nginx's proxy connect/send/read timeouts; nil = their
    /// defaults (10 s and 60 s). A hung backend shows as this timeout, so both must use the same.
    var upstreamTimeoutSeconds: Int? = nil
}

/// Shared by the scenarios of one run: options, the run's folder and redis-server, progress output.
final class BenchContext: @unchecked Sendable {
    let options: BenchOptions
    let workDir: String
    let redis: RedisService
    let nginxAvailable: Bool
    /// Distinguishes this run's keys in Redis and the backends' paths.
    let runID = String(UInt32.random(in: 0...UInt32.max), radix: 36)
    private var phases = 0

    init(options: BenchOptions, workDir: String, redis: RedisService, nginxAvailable: Bool) {
        self.options = options
        self.workDir = workDir
        self.redis = redis
        self.nginxAvailable = nginxAvailable
    }

    /// The targets this run compares.
    var targets: [Target] { options.targets.filter { $0 != .nginx || nginxAvailable } }

    /// A progress line on standard error (the table goes to standard output).
    func say(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// A fresh demo monolith, and in front of it a fresh gateway or nginx (none for `.direct`):
    /// each phase starts from empty caches and zero counters.
    /// - Parameter localTTL: The gateway's `cache.local_ttl`, when not the one of the options.
    /// - Parameter fresh: A `/fresh/**` route with stale windows in both caches' configs.
    func startStack(_ target: Target, backend shape: BackendShape, scenario: String, localTTL: String? = nil,
                    fresh: FreshRoute? = nil) throws -> Stack {
        phases += 1
        let tag = "\(scenario)-\(phases)-\(target.rawValue)"
        let backend = try Backend.start(delayMs: shape.delayMs, bodySize: shape.bodySize, concurrency: shape.concurrency,
                                        logDir: workDir, name: "demo-monolith-\(tag)")
        switch target {
        case .direct:
            return Stack(target: target, backend: backend, front: nil, port: backend.port, tag: tag)
        case .gateway:
            let port = try Ports.free()
            let adminPort = try Ports.free()
            let gateway: GatewayService
            do {
                gateway = try GatewayService.start(
                    config: gatewayConfig(port: port, backendPort: backend.port, tag: tag, localTTL: localTTL, fresh: fresh, adminPort: adminPort),
                    port: port, logDir: workDir, name: "gateway-\(tag)")
            } catch {
                backend.process.stop()
                throw error
            }
            return Stack(target: target, backend: backend, front: gateway.process, port: port, tag: tag, adminPort: adminPort,
                         helpers: redis.process.map { [$0.pid] } ?? [])
        case .nginx:
            let config = NginxConfig(
                prefix: "\(workDir)/nginx-\(tag)", port: try Ports.free(), backendPort: backend.port, workers: options.workers,
                catalogTTLSeconds: CacheRules.catalogTTLSeconds, userTTLSeconds: CacheRules.userTTLSeconds,
                lockTimeoutSeconds: CacheRules.maxWaitSeconds, upstreamConnections: CacheRules.upstreamConnections, fresh: fresh,
                accessLog: options.accessLog)
            let nginx: NginxService
            do {
                nginx = try NginxService.start(config: config, logDir: workDir, name: "nginx-\(tag)")
            } catch {
                backend.process.stop()
                throw error
            }
            return Stack(target: target, backend: backend, front: nginx.process, port: nginx.port, tag: tag)
        }
    }

    /// The gateway's config for one phase: the routes of the reference gateway.yaml (a public
    /// catalog, per-user resources, everything else passed), its own key prefix in the shared Redis.
    func gatewayConfig(port: Int, backendPort: Int, tag: String, localTTL: String? = nil, fresh: FreshRoute? = nil,
                       adminPort: Int? = nil) -> String {
        Self.gatewayConfig(port: port, backendPort: backendPort, redisPort: redis.port, keyPrefix: "bench:\(runID):\(tag):",
                           workers: options.workers, tag: tag, localTTL: localTTL ?? options.localTTL, fresh: fresh,
                           adminPort: adminPort, accessLog: options.accessLog)
    }

    /// - Parameters:
    ///   - invalidation: Read purges from this Redis stream as this instance (`invalidate`).
    ///   - adminPort: The admin listener's port (its `/metrics` is what herd scrapes); none if nil.
    ///   - instanceID: `instance_id` (`scale`: several instances on one prefix); the default if nil.
    ///   - crossInstance: `cache.cross_instance` (`scale`: one fill per key for all instances).
    static func gatewayConfig(port: Int, backendPort: Int, redisPort: Int, keyPrefix: String, workers: Int, tag: String,
                              localTTL: String = "0s", fresh: FreshRoute? = nil,
                              invalidation: (stream: String, instance: String)? = nil, adminPort: Int? = nil,
                              instanceID: String? = nil, crossInstance: Bool = false, accessLog: Bool = true) -> String {
        let timeout = fresh?.upstreamTimeoutSeconds.map { "\n  connect_timeout: \($0)s\n  timeout: \($0)s" } ?? ""
        let freshRoute = fresh.map { f in
            """

              - name: fresh
                match: "\(FreshRoute.prefix)**"
                class: public
                ttl: \(f.ttlSeconds)s
                stale_while_revalidate: \(f.staleWhileRevalidateSeconds)s
                stale_if_error: \(f.staleIfErrorSeconds)s
                keep: \(f.keepSeconds)s
            """
        } ?? ""
        let instanceLine = instanceID.map { "\ninstance_id: \"\($0)\"" } ?? ""
        let adminSection = adminPort.map { "\nadmin: { listen: 127.0.0.1:\($0) }" } ?? ""
        // On: the default (JSON lines on stdout, which the run's folder keeps in the gateway's log file).
        let accessLogLine = accessLog ? "" : "\naccess_log: off"
        let invalidationSection = invalidation.map { "\ninvalidation: { stream: \"\($0.stream)\", instance: \"\($0.instance)\" }" } ?? ""
        return """
        # Generated by cachegateway-bench for phase \(tag).
        listen: 127.0.0.1:\(port)\(instanceLine)\(adminSection)\(accessLogLine)
        server:
          event_loops: \(workers)
          max_connections: 20000
          max_requests_per_connection: 1000000
        upstream:
          url: http://127.0.0.1:\(backendPort)
          max_connections: \(CacheRules.upstreamConnections)\(timeout)
        redis:
          url: redis://127.0.0.1:\(redisPort)/0
          key_prefix: "\(keyPrefix)"\(invalidationSection)
        cache:
          max_wait: \(CacheRules.maxWaitSeconds)s
          local_ttl: \(localTTL)\(crossInstance ? "\n  cross_instance: true" : "")
        routes:
          - name: catalog
            match: "/catalog/**"
            class: public
            ttl: \(CacheRules.catalogTTLSeconds)s
            query: [page, size]
          - name: user-resources
            match: "/users/{user}/resources"
            class: per_user
            identity: { header: Authorization }
            ttl: \(CacheRules.userTTLSeconds)s\(freshRoute)
          - name: everything-else
            match: "/**"
            class: pass

        """
    }
}

/// The processes of one phase: a demo monolith and what stands in front of it.
final class Stack {
    let target: Target
    let backend: Backend
    /// The gateway or nginx; nil when measuring the backend directly.
    let front: ManagedProcess?
    /// Where the load goes.
    let port: Int
    let tag: String
    /// The gateway's admin listener (`/metrics`); nil for the other targets.
    let adminPort: Int?
    /// Processes that work for `front` and whose CPU is its cost: the gateway's redis-server (when
    /// the benchmark started it; one given with `--redis-port` is not ours to find, and counts as foreign).
    let helpers: [Int32]

    init(target: Target, backend: Backend, front: ManagedProcess?, port: Int, tag: String, adminPort: Int? = nil, helpers: [Int32] = []) {
        self.target = target
        self.backend = backend
        self.front = front
        self.port = port
        self.tag = tag
        self.adminPort = adminPort
        self.helpers = helpers
    }

    /// The processes whose CPU is this target's: the gateway and its redis-server, nginx's master
    /// and (below it) its workers, the demo monolith when measured directly.
    var cpuRoots: Set<Int32> { Set([front?.pid ?? backend.process.pid] + helpers) }

    func stop() {
        front?.stop()
        backend.process.stop()
    }

    /// Runs `body` with a fresh stack, and stops it whatever happens.
    static func with<T>(_ context: BenchContext, _ target: Target, backend: BackendShape, scenario: String,
                        localTTL: String? = nil, fresh: FreshRoute? = nil, _ body: (Stack) throws -> T) throws -> T {
        let stack = try context.startStack(target, backend: backend, scenario: scenario, localTTL: localTTL, fresh: fresh)
        defer { stack.stop() }
        return try body(stack)
    }

    /// Runs `body` with a fresh stack for each target, all up at once (so that the targets' loads
    /// can take turns), and stops them all whatever happens.
    static func withAll<T>(_ context: BenchContext, _ targets: [Target], backend: BackendShape, scenario: String,
                           fresh: FreshRoute? = nil, _ body: ([Stack]) throws -> T) throws -> T {
        var stacks: [Stack] = []
        defer { for s in stacks.reversed() { s.stop() } }
        for target in targets { stacks.append(try context.startStack(target, backend: backend, scenario: scenario, fresh: fresh)) }
        return try body(stacks)
    }

    /// Runs a load against this stack, counting the calls that reached the backend meanwhile.
    func measure(_ mode: LoadMode, duration: Double, maxRequests: Int? = nil, timeout: Double = 10,
                 progress: (@Sendable (LoadProgress) -> Void)? = nil,
                 request: @escaping @Sendable (Int) -> LoadRequest) throws -> (result: LoadOutcome, backendCalls: Int) {
        try backend.reset()
        let result = try load(mode, duration: duration, maxRequests: maxRequests, timeout: timeout, progress: progress, request: request).result
        // Requests the client gave up on may still be queued in the backend; their calls are
        // counted when it takes them, which is what "reached the backend" means here.
        let calls = try backend.stats().total
        return (result, calls)
    }

    /// Runs a load against this stack without touching the backend's counter (which a stopped
    /// backend could not answer), with the CPU the rest of the machine used meanwhile.
    /// - Parameter samples: Also return every answer (when it was due, latency, Cache-Status).
    func load(_ mode: LoadMode, duration: Double, maxRequests: Int? = nil, timeout: Double = 10, samples: Bool = false,
              progress: (@Sendable (LoadProgress) -> Void)? = nil, request: @escaping @Sendable (Int) -> LoadRequest) throws -> (result: LoadOutcome, foreignCores: Double, samples: [LoadSample]) {
        var spec = LoadSpec(port: port, mode: mode, duration: .milliseconds(Int(duration * 1000)), maxRequests: maxRequests,
                            timeout: .milliseconds(Int(timeout * 1000)), request: request)
        spec.recordSamples = samples
        let before = CPUSnapshot.take()
        let raw = try LoadGenerator.run(spec, progress: progress)
        return (LoadOutcome(raw), CPUSnapshot.take().foreignCores(since: before), raw.samples ?? [])
    }
}
