// swift-tools-version:6.0
import PackageDescription

/// Strict concurrency is the Swift 6 language mode's default; these keep the rest of the code honest.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "genflow",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "genflow", targets: ["genflow"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        // C libraries, one system-library target each (Debian package in `providers`).
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CWebSockets", pkgConfig: "libwebsockets", providers: [.apt(["libwebsockets-dev"])]),
        // Typed shims for what Swift cannot import: variadic functions and function-like macros.
        .target(name: "CGenflowShims", dependencies: ["CCurl", "CWebSockets"]),

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
        // The built-in stages of SPEC §6.
        .target(name: "GenflowStages", dependencies: ["GenflowCore", "GenflowPipeline"], swiftSettings: swiftSettings),
        // Daemon configuration (etc/genflow.yaml) with `${VAR}` expansion and env overrides.
        .target(name: "GenflowConfig", dependencies: ["GenflowCore", "GenflowYAML"], swiftSettings: swiftSettings),
        // PostgreSQL client on libpq.
        .target(name: "GenflowPostgres", dependencies: ["CLibPQ"], swiftSettings: swiftSettings),

        .executableTarget(
            name: "genflow",
            dependencies: [
                "GenflowCore", "GenflowPipeline", "GenflowStages", "GenflowConfig", "GenflowPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "GenflowCoreTests", dependencies: ["GenflowCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GenflowPipelineTests",
            dependencies: ["GenflowCore", "GenflowYAML", "GenflowPipeline", "GenflowStages", "GenflowConfig"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "GenflowPostgresTests", dependencies: ["GenflowPostgres", "CGenflowShims"], swiftSettings: swiftSettings),
        .testTarget(name: "GenflowCLITests", dependencies: ["genflow"], swiftSettings: swiftSettings),
    ]
)
