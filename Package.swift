// swift-tools-version: 6.1
// Kappa: a Kappa-architecture stream processor. Dependencies point one way:
// CLI → Server → Streams → Groups → Log → Format/IO → Core; JSON (simdjson shim) sits beside
// Format; History (the user-history index, on RocksDB) sits beside Groups, over Log and
// JSON. KappaIO is the one place that touches files and clocks (the log and the groups do
// all their file operations through its FileSystem, which tests replace with a simulation).
import PackageDescription

// Hot-path modules run without dynamic exclusivity checks in release builds: profiling
// `produce` showed swift_beginAccess and its TLS lookups at ~15% of the time. Debug
// builds (and so the tests) keep the checks.
let fast: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"], .when(configuration: .release))]

let package = Package(
    name: "kappa",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kappa", targets: ["kappa"]),
        .executable(name: "rebu-gen", targets: ["rebu-gen"]),
        .library(name: "KappaLog", targets: ["KappaLog"]),
        // For Fuzz/ (a separate package, like Benchmarks/): the job-file, checkpoint and
        // repartition-record decoders it fuzzes live here.
        .library(name: "KappaStreams", targets: ["KappaStreams"]),
        .library(name: "KappaHistory", targets: ["KappaHistory"]),
        .library(name: "KappaTesting", targets: ["KappaTesting"]),
        .library(name: "RebuGenerator", targets: ["RebuGenerator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
    ],
    targets: [
        // System and native code: liblz4 (Debian liblz4-dev), CRC-32C with the hardware
        // instruction, and a small C++ shim over simdjson (Debian libsimdjson-dev).
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .target(name: "CCRC32C"),
        .target(name: "CPrefetch"),
        // The user-history index's storage: RocksDB's C API (Debian librocksdb-dev).
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb", providers: [.apt(["librocksdb-dev"])]),
        .target(
            name: "CSimdJSON",
            cxxSettings: [.unsafeFlags(["-O3", "-std=c++17"])],
            linkerSettings: [.linkedLibrary("simdjson")]
        ),

        .target(name: "KappaCore", swiftSettings: fast),
        .target(name: "KappaIO", dependencies: ["KappaCore"], swiftSettings: fast),
        .target(name: "KappaFormat", dependencies: ["KappaCore", "CLZ4", "CCRC32C"], swiftSettings: fast),
        .target(name: "KappaJSON", dependencies: ["KappaCore", "CSimdJSON"], swiftSettings: fast),
        .target(name: "KappaLog", dependencies: ["KappaCore", "KappaIO", "KappaFormat"], swiftSettings: fast),
        // The user-history index (issue 10): every user's events across topics, by event time.
        .target(
            name: "KappaHistory",
            dependencies: ["KappaCore", "KappaIO", "KappaFormat", "KappaJSON", "KappaLog", "CRocksDB"],
            swiftSettings: fast
        ),
        .target(name: "KappaGroups", dependencies: ["KappaCore", "KappaIO", "KappaFormat", "KappaLog"]),
        .target(
            name: "KappaStreams",
            dependencies: [
                "KappaCore", "KappaFormat", "KappaJSON", "KappaLog", "KappaGroups", "CPrefetch",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: fast
        ),
        // `kappa serve`: the Kafka wire protocol over the log (SwiftNIO).
        .target(
            name: "KappaServer",
            dependencies: [
                "KappaCore", "KappaFormat", "KappaLog", "KappaGroups", "KappaStreams",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: fast
        ),
        // Bad-line handling shared by `kappa produce` and the HTTP ingest route.
        .target(name: "KappaIngest", dependencies: ["KappaCore", "KappaIO", "KappaFormat", "KappaJSON", "KappaLog"], swiftSettings: fast),
        // The dashboard's forecast: pure, deterministic, no I/O.
        .target(name: "KappaForecast"),
        // `kappa serve --http`: the HTTP API, dashboard and /metrics (Hummingbird 2), and the
        // Prometheus metrics of jobs (swift-metrics + swift-prometheus) that `kappa process` serves too.
        .target(
            name: "KappaHTTP",
            dependencies: [
                "KappaCore", "KappaFormat", "KappaJSON", "KappaLog", "KappaStreams", "KappaIngest", "KappaForecast", "KappaHistory",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: fast
        ),
        .target(
            name: "KappaCLI",
            dependencies: [
                "KappaCore", "KappaFormat", "KappaJSON", "KappaLog", "KappaGroups", "KappaStreams", "KappaServer", "KappaIngest", "KappaHTTP",
                "KappaHistory", "RebuGenerator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: fast
        ),
        .executableTarget(name: "kappa", dependencies: ["KappaCLI"]),
        .target(name: "KappaTesting", dependencies: ["KappaCore", "KappaIO", "KappaFormat", "KappaLog"]),

        .target(name: "RebuGenerator", path: "tools/RebuGenerator"),
        .executableTarget(name: "rebu-gen", dependencies: ["RebuGenerator"], path: "tools/rebu-gen"),

        .testTarget(
            name: "KappaTests",
            dependencies: [
                "KappaCore", "KappaIO", "KappaFormat", "KappaJSON", "KappaLog", "KappaGroups", "KappaStreams", "KappaServer",
                "KappaIngest", "KappaForecast", "KappaHTTP", "KappaHistory", "KappaTesting", "RebuGenerator", "kappa",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Fixtures"]  // read by path (#filePath), not as bundled resources
        ),
    ],
    swiftLanguageModes: [.v6]
)
