// swift-tools-version:6.1
import PackageDescription

// Layout (see CONTRIBUTING.md):
//   CUV        C shim over libuv (system library, found by pkg-config)
//   ChatCore   every rule of the protocol, no I/O: names, framing, validation, rooms, registry
//   ChatNode   the libuv runtime: sockets, timers, write queues; feeds bytes to ChatCore
//   ChatClient the terminal client
//   ChatBench  `tcp_chat bench`, the load tool
//   tcp_chat   the executable: parses arguments, starts a node or a client
// Swift's dynamic exclusivity checks cost ~8% of the relay's CPU (perf, fanout); the
// loop is single-threaded and the hot types are final classes, so release builds skip them.
let fast: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "tcp_chat",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "tcp_chat", targets: ["tcp_chat"]),
        .library(name: "ChatCore", targets: ["ChatCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "ChatCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: fast
        ),
        .target(
            name: "ChatNode",
            dependencies: [
                "CUV", "COpenSSL", "ChatCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: fast
        ),
        .target(
            name: "ChatClient",
            dependencies: ["ChatCore", "COpenSSL"]
        ),
        .target(
            name: "ChatBench",
            dependencies: ["ChatCore", "COpenSSL", .product(name: "Histogram", package: "hdrhistogram-swift")]
        ),
        .executableTarget(
            name: "tcp_chat",
            dependencies: [
                "ChatNode", "ChatClient", "ChatCore", "ChatBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Processes, pipes, deadlines, `retry`, the binary's path and a seeded PRNG, shared by the test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // The in-memory cluster network, one file shared with the `cluster` fuzz target (CONTRIBUTING.md).
        .target(
            name: "InMemoryClusterSupport",
            dependencies: ["ChatCore"],
            path: "Fuzz/Support",
            sources: ["InMemoryCluster.swift"],
            swiftSettings: [.define("IN_MEMORY_CLUSTER_MODULE")]
        ),
        .testTarget(name: "ChatCoreTests", dependencies: ["ChatCore", "TestSupport", "InMemoryClusterSupport"]),
        .testTarget(name: "ChatNodeTests", dependencies: ["ChatCore", "TestSupport", "tcp_chat"]),
        .testTarget(name: "ChatBenchTests", dependencies: ["ChatBench", "ChatCore", "TestSupport", "tcp_chat"]),
        .testTarget(name: "ChatClientTests", dependencies: ["ChatClient", "ChatCore", "TestSupport", "tcp_chat"]),
    ]
)
