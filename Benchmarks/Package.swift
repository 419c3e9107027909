// swift-tools-version: 6.1
// Kappa's benchmarks (ordo-one/package-benchmark). A separate package so that the main
// package's `swift test` does not build the benchmark harness. Run: tools/bench.sh
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name, which is whatever the clone is called.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "KappaBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "KappaBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "KappaLog", package: root),
                .product(name: "KappaHistory", package: root),
                .product(name: "RebuGenerator", package: root),
            ],
            path: "KappaBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ],
    swiftLanguageModes: [.v5]
)
