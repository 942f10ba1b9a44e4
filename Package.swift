// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "CacheGateway",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gateway", targets: ["gateway"]),
        .executable(name: "demo-monolith", targets: ["demo-monolith"]),
        .executable(name: "cachegateway-bench", targets: ["cachegateway-bench"]),
        .library(name: "GatewayCore", targets: ["GatewayCore"]),
        .library(name: "GatewayRuntime", targets: ["GatewayRuntime"]),
        .library(name: "GatewayHTTP", targets: ["GatewayHTTP"]),
    ],
    dependencies: [
        // YAML parsing with node positions, so config errors can name the line.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // The CLI: subcommands, --help, validation of flags.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Structured logging API; the gateway accepts a Logger and never creates its own backend.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The benchmark's latency histograms (HDR: 3 significant digits from 1 µs to 60 s).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // The metrics API; `gateway serve` points its global MetricsSystem at the gateway's registry.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        // Prometheus exposition: each Gateway keeps its own registry (tests run many in one process).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
    ],
    targets: [
        // Thin C shims: the only places that include hiredis/libcurl headers.
        .systemLibrary(
            name: "CHiredis",
            path: "Sources/CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            path: "Sources/CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // epoll without the packed struct, for the server's event loops.
        .target(name: "CEpoll", path: "Sources/CEpoll"),
        // The event loops' readiness: one epoll set behind one Dispatch source, shared by every
        // descriptor a loop owns (client, Redis), and writes held to the end of a batch.
        .target(name: "GatewayIO", dependencies: ["CEpoll"]),
        // The HTTP/1.1 server on POSIX sockets and the loops' epoll sets.
        .target(name: "GatewayHTTP", dependencies: ["GatewayIO", .product(name: "Logging", package: "swift-log")]),
        // Redis over hiredis's async API, in the owning loop's epoll set.
        .target(
            name: "GatewayRedis",
            dependencies: ["CHiredis", "GatewayIO", .product(name: "Logging", package: "swift-log")]
        ),
        // Upstream HTTP over libcurl's multi interface, in the owning loop's epoll set.
        .target(name: "GatewayUpstream", dependencies: ["CCurl", "GatewayIO"]),
        // Policy, pure: config, routing, request classification, cache keys, cache policy, stored
        // entries, SingleFlight, the read-through state machine. No clients, no queues, no sockets:
        // only GatewayHTTP's value types (headers, request heads, responses).
        .target(
            name: "GatewayCore",
            dependencies: ["GatewayHTTP", .product(name: "Yams", package: "Yams")]
        ),
        // The wiring: the driver that runs the state machine's actions on each event loop with its
        // Redis connection and upstream client, the service lifecycle, purging, admin endpoints.
        .target(
            name: "GatewayRuntime",
            dependencies: [
                "GatewayCore", "GatewayHTTP", "GatewayRedis", "GatewayUpstream",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "gateway",
            dependencies: [
                "GatewayCore", "GatewayRuntime", "GatewayHTTP", "GatewayRedis", "GatewayUpstream",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["GitCommit"]
        ),
        // `gateway --version` names the commit it was built from (git, at build time).
        .plugin(name: "GitCommit", capability: .buildTool(), path: "Plugins/GitCommit"),
        // The demo "slow monolith": used by the README's demo, the integration tests and the benchmark.
        .executableTarget(
            name: "demo-monolith",
            dependencies: ["GatewayHTTP", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/DemoMonolith"
        ),
        // epoll and a non-blocking socket() for the load generator (Glibc's module lacks them).
        .target(name: "CLoadGen", path: "Benchmarks/CLoadGen"),
        // The HTTP load generator of the benchmark (library, so scenarios and tests can drive it).
        // Independent of the gateway's modules: Glibc, Dispatch and the histogram only.
        .target(
            name: "LoadGenerator",
            dependencies: ["CLoadGen", .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "Benchmarks/LoadGenerator"
        ),
        // The benchmark: `cachegateway-bench load` (one load against one URL) and `run` (the
        // scenarios, against the backend directly, the gateway and nginx, with a report).
        .executableTarget(
            name: "cachegateway-bench",
            dependencies: ["LoadGenerator", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/Bench"
        ),
        // The benchmark's pure parts: Cache-Status reading, generated configs, workload, merging, the table.
        .testTarget(name: "BenchTests", dependencies: ["cachegateway-bench", "GatewayCore"]),
        // Real parts for tests: a redis-server process, a scriptable HTTP backend, a raw-socket client.
        .target(name: "GatewayTestSupport", path: "Tests/GatewayTestSupport"),
        .testTarget(name: "GatewayHTTPTests", dependencies: ["GatewayHTTP", "GatewayTestSupport"]),
        .testTarget(name: "GatewayCoreTests", dependencies: ["GatewayCore"]),
        .testTarget(name: "GatewayIOTests", dependencies: ["GatewayIO"]),
        .testTarget(name: "LoadGeneratorTests", dependencies: ["LoadGenerator", "GatewayTestSupport"]),
        .testTarget(
            name: "GatewayRedisTests",
            dependencies: ["GatewayRedis", "GatewayTestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "GatewayUpstreamTests", dependencies: ["GatewayUpstream", "GatewayTestSupport"]),
        // The whole read-through path: gateway on a real socket, real redis-server, real backend.
        .testTarget(
            name: "GatewayIntegrationTests",
            dependencies: ["GatewayCore", "GatewayRuntime", "GatewayHTTP", "GatewayTestSupport", .product(name: "Logging", package: "swift-log")],
            // The commit the tests were built at, to check `gateway --version` against.
            plugins: ["GitCommit"]
        ),
    ]
)
