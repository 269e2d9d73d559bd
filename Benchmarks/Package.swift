// swift-tools-version:6.1
import PackageDescription

// Micro-benchmarks of ChatCore with ordo-one/benchmark (see README.md). A package of its own,
// so that the root package (and CI's `swift test`) never builds it or fetches its dependencies.
let package = Package(
    name: "tcp_chat-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "tcp_chat", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ChatCoreBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "ChatCore", package: "tcp_chat"),
            ],
            path: "Benchmarks/ChatCoreBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ]
)
