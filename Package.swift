// swift-tools-version:6.0
import PackageDescription

/// Strict concurrency is the Swift 6 language mode's default; these keep the rest of the code honest.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "genflow",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "genflow", targets: ["genflow"]),
        // For writing plugins in Swift: declare stages, receive invokes, report progress, answer.
        .library(name: "GenflowPluginKit", targets: ["GenflowPluginKit"]),
        .executable(name: "genflow-bench", targets: ["genflow-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
    ],
    targets: [
        // C libraries, one system-library target each (Debian package in `providers`).
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CWebSockets", pkgConfig: "libwebsockets", providers: [.apt(["libwebsockets-dev"])]),
        // Shims for what Swift cannot import, one target per C library: variadic functions, macros,
        // libev's watcher structs, and the Linux/GNU parts Swift's Glibc module leaves out.
        .target(name: "CCurlShims", dependencies: ["CCurl"]),
        .target(name: "CWebSocketsShims", dependencies: ["CWebSockets"]),
        .target(name: "CEventLoop", linkerSettings: [.linkedLibrary("ev")]),
        .target(name: "CLinux"),

        // Pure logic: values, errors, durations, retry policy, diagnostics.
        .target(name: "GenflowCore", swiftSettings: swiftSettings),
        // YAML node tree with source positions, on libyaml.
        .target(name: "GenflowYAML", dependencies: ["CYAML", "GenflowCore"], swiftSettings: swiftSettings),
        // Pipeline model, validation, references, templates, stage registry.
        .target(
            name: "GenflowPipeline",
            dependencies: [
                "GenflowCore", "GenflowYAML",
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Canvas objects: lenient JSON extraction from model replies and schema v1 validation.
        .target(name: "GenflowCanvas", dependencies: ["GenflowCore"], swiftSettings: swiftSettings),
        // Outbound HTTP on libcurl's multi interface, one thread for every transfer.
        .target(
            name: "GenflowHTTPClient",
            dependencies: ["GenflowCore", "CCurl", "CCurlShims", "CLinux", .product(name: "Instrumentation", package: "swift-distributed-tracing")],
            swiftSettings: swiftSettings
        ),
        // Traces: the tracer (swift-distributed-tracing), OTLP/HTTP JSON export over GenflowHTTPClient,
        // a job's trace and its spans, trace ids in log lines.
        .target(
            name: "GenflowTracing",
            dependencies: [
                "GenflowCore", "GenflowHTTPClient",
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Model providers: the Provider protocol, its kinds (openai, anthropic, offline) and their settings' schemas.
        .target(name: "GenflowProviders", dependencies: ["GenflowCore", "GenflowHTTPClient", "GenflowPipeline"], swiftSettings: swiftSettings),
        // The HTTP + WebSocket listener on libwebsockets (I/O only; routes live in GenflowAPI).
        .target(
            name: "GenflowHTTPServer",
            dependencies: [
                "GenflowCore", "CWebSockets", "CWebSocketsShims", "CEventLoop", "CLinux",
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The built-in stages of SPEC §6.
        .target(
            name: "GenflowStages",
            dependencies: [
                "GenflowCore", "GenflowPipeline", "GenflowCanvas", "GenflowConfig", "GenflowHTTPClient", "GenflowProviders", "GenflowTracing",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // Daemon configuration (etc/genflow.yaml) with `${VAR}` expansion and env overrides.
        .target(name: "GenflowConfig", dependencies: ["GenflowCore", "GenflowYAML", "GenflowPipeline", "GenflowProviders"], swiftSettings: swiftSettings),
        // PostgreSQL client on libpq.
        .target(name: "GenflowPostgres", dependencies: ["CLibPQ"], swiftSettings: swiftSettings),
        // The database schema: numbered migrations, applied under an advisory lock.
        .target(name: "GenflowSchema", dependencies: ["GenflowPostgres"], swiftSettings: swiftSettings),
        // The job queue in SQL: jobs, step runs, leases, claims, the event log, and JobBatch (many
        // jobs' writes in set-based statements).
        .target(name: "GenflowQueue", dependencies: ["GenflowCore", "GenflowPostgres"], swiftSettings: swiftSettings),
        // The product's records in SQL: prompts, canvases, images, the token ledger, budget holds and
        // the model cache, as typed values; RecordBatch rides in the queue's flush.
        .target(name: "GenflowRecords", dependencies: ["GenflowCore", "GenflowPostgres", "GenflowQueue"], swiftSettings: swiftSettings),
        // The durable runner: claims jobs, runs steps with checkpoints and retries, heartbeats leases.
        .target(
            name: "GenflowEngine",
            dependencies: [
                "GenflowCore", "GenflowPipeline", "GenflowQueue", "GenflowRecords", "GenflowPostgres", "GenflowTracing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),

        // The plugin host: manifests, plugin processes speaking genflow-plugin/1, their stages.
        .target(
            name: "GenflowPlugins",
            dependencies: [
                "GenflowCore", "GenflowYAML", "GenflowPipeline", "GenflowTracing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),

        // The Swift side of genflow-plugin/1, for plugin authors.
        .target(name: "GenflowPluginKit", dependencies: ["GenflowCore"], swiftSettings: swiftSettings),
        // The shipped Swift example plugin: Anthropic's Messages API as a stage (plugins/anthropic).
        .executableTarget(
            name: "genflow-plugin-anthropic",
            dependencies: ["GenflowCore", "GenflowPluginKit", "GenflowProviders"],
            swiftSettings: swiftSettings
        ),

        // The REST API, auth and the WebSocket event fan-out, on GenflowHTTPServer.
        .target(
            name: "GenflowAPI",
            dependencies: [
                "GenflowCore", "GenflowPipeline", "GenflowQueue", "GenflowRecords", "GenflowPostgres", "GenflowEngine", "GenflowHTTPServer", "GenflowHTTPClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The dashboard page (SPEC §10): plain HTML, CSS and JavaScript, copied beside the binary.
            resources: [.copy("Dashboard")],
            swiftSettings: swiftSettings
        ),

        // `genflow test` and `genflow run --dry-run`: pipeline test files, scripted replies, the
        // production engine on a throwaway database, expectations checked with their file:line:col.
        .target(
            name: "GenflowTesting",
            dependencies: [
                "GenflowCore", "GenflowYAML", "GenflowPipeline", "GenflowStages", "GenflowQueue", "GenflowEngine", "GenflowConfig",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // `genflow serve`: the embedded database, migrations, the engine, notifications, reload.
        .target(
            name: "GenflowDaemon",
            dependencies: [
                "GenflowCore", "GenflowConfig", "GenflowPipeline", "GenflowStages", "GenflowQueue", "GenflowSchema", "GenflowPostgres", "GenflowEngine",
                "GenflowAPI", "GenflowPlugins", "GenflowProviders", "GenflowHTTPServer", "GenflowTracing", "CLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "genflow",
            dependencies: [
                "GenflowCore", "GenflowPipeline", "GenflowStages", "GenflowConfig", "GenflowPostgres", "GenflowQueue", "GenflowSchema",
                "GenflowEngine", "GenflowDaemon", "GenflowAPI", "GenflowPlugins", "GenflowTesting", "GenflowTracing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["GenflowBuildInfo"]
        ),
        // Writes the commit `genflow --version` prints into the genflow target before each build.
        .plugin(name: "GenflowBuildInfo", capability: .buildTool(), path: "Sources/GenflowBuildInfo"),

        // `make faults`: property-based fuzzing of the YAML loader, pipeline validation and the
        // canvas-object parser (no crash; every rejection a located, clear error).
        .executableTarget(
            name: "genflow-fuzz",
            dependencies: ["GenflowCore", "GenflowYAML", "GenflowPipeline", "GenflowStages", "GenflowCanvas", "GenflowConfig"],
            swiftSettings: swiftSettings
        ),

        // bench/model-concurrency's client: N concurrent chat calls through one HTTPClient.
        .executableTarget(
            name: "genflow-bench", dependencies: ["GenflowCore", "GenflowHTTPClient", "GenflowProviders"], swiftSettings: swiftSettings
        ),

        // Helpers for the test suites only: a local HTTP server that speaks the providers' protocols,
        // and (GenflowTestHarness) migrated databases, engines, daemon processes, API and WebSocket
        // clients. Their waits throw after a time limit instead of hanging.
        .target(name: "GenflowTestSupport", dependencies: ["GenflowCore", "GenflowHTTPClient"], swiftSettings: swiftSettings),
        .target(
            name: "GenflowTestHarness",
            dependencies: [
                "GenflowAPI", "GenflowConfig", "GenflowCore", "GenflowEngine", "GenflowHTTPClient", "GenflowPipeline", "GenflowPostgres",
                "GenflowQueue", "GenflowSchema", "GenflowStages", "GenflowTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // Tests, one target per module or capability. Those that start `genflow` processes depend on
        // the executable so that it is built.
        .testTarget(name: "CShimTests", dependencies: ["CCurl", "CCurlShims", "CWebSocketsShims", "CEventLoop", "CLinux"], swiftSettings: swiftSettings),
        .testTarget(name: "GenflowCoreTests", dependencies: ["GenflowCore"], swiftSettings: swiftSettings),
        .testTarget(name: "GenflowYAMLTests", dependencies: ["GenflowCore", "GenflowYAML"], swiftSettings: swiftSettings),
        .testTarget(name: "GenflowCanvasTests", dependencies: ["GenflowCore", "GenflowCanvas"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GenflowPipelineTests", dependencies: ["GenflowConfig", "GenflowCore", "GenflowPipeline", "GenflowStages"], swiftSettings: swiftSettings
        ),
        .testTarget(name: "GenflowConfigTests", dependencies: ["GenflowConfig", "GenflowCore", "GenflowProviders"], swiftSettings: swiftSettings),
        .testTarget(name: "GenflowPostgresTests", dependencies: ["GenflowPostgres"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GenflowHTTPClientTests", dependencies: ["GenflowCore", "GenflowHTTPClient", "GenflowProviders", "GenflowTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "GenflowHTTPServerTests", dependencies: ["GenflowCore", "GenflowHTTPServer"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GenflowEngineTests",
            dependencies: [
                "genflow", "GenflowAPI", "GenflowConfig", "GenflowCore", "GenflowEngine", "GenflowPipeline", "GenflowPostgres", "GenflowQueue",
                "GenflowRecords", "GenflowSchema", "GenflowTestHarness", "GenflowTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GenflowRecordsTests", dependencies: ["GenflowPostgres", "GenflowQueue", "GenflowRecords", "GenflowTestHarness"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GenflowStagesTests",
            dependencies: [
                "genflow", "GenflowAPI", "GenflowConfig", "GenflowCore", "GenflowEngine", "GenflowProviders", "GenflowQueue", "GenflowRecords",
                "GenflowTestHarness", "GenflowTestSupport",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GenflowAPITests",
            dependencies: [
                "genflow", "GenflowAPI", "GenflowConfig", "GenflowCore", "GenflowHTTPClient", "GenflowQueue", "GenflowRecords", "GenflowTestHarness",
                "GenflowTestSupport",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GenflowPluginsTests", dependencies: ["genflow", "GenflowCore", "GenflowQueue", "GenflowTestHarness", "GenflowTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GenflowDaemonTests",
            dependencies: [
                "genflow", "GenflowConfig", "GenflowCore", "GenflowHTTPClient", "GenflowQueue", "GenflowRecords", "GenflowTestHarness",
                "GenflowTestSupport",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GenflowTracingTests",
            dependencies: [
                "GenflowCore", "GenflowTracing", "GenflowTestSupport", .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "GenflowCLITests", dependencies: ["genflow", "GenflowTestHarness"], swiftSettings: swiftSettings),
    ]
)
