// swift-tools-version: 6.1
// Kappa's libFuzzer targets. A separate package (like Benchmarks/) so that the main
// package's `swift test` never builds sanitizer-instrumented code. Build and run one
// target with `tools/fuzz.sh TARGET SECONDS`; `tools/fuzz.sh regress` runs every target
// briefly on its corpus (what CI does).
//
// The targets reach internal APIs (`SegmentScanner`, `TaskState`, `RepartitionRecord`…)
// with `@testable import`, so they are built in debug configuration (SwiftPM compiles
// every module with -enable-testing there), which also keeps `assert` and the
// `#if DEBUG` invariant checks of the code under test. `tools/fuzz.sh` adds
// `--sanitize fuzzer --sanitize address` to every module, the main package's included.
//
// Each `fuzz-*` target has no `main`: libFuzzer's runtime supplies it and calls the
// `LLVMFuzzerTestOneInput` the target defines (so they are compiled -parse-as-library).
// `fuzz-seeds` is an ordinary program, built without sanitizers, that writes the seed
// corpora from data Kappa itself wrote (see `tools/fuzz.sh seeds`).
import Foundation
import PackageDescription

// A path dependency's identity is its directory's name, which is whatever the clone is called.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let kappa: [Target.Dependency] = [
    .product(name: "KappaStreams", package: root),
    .product(name: "KappaTesting", package: root),
]

func fuzzer(_ name: String) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + kappa, swiftSettings: [.unsafeFlags(["-parse-as-library", "-O"])])
}

let package = Package(
    name: "KappaFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: kappa),
        fuzzer("fuzz-batch"),
        fuzzer("fuzz-segment"),
        fuzzer("fuzz-jobfile"),
        fuzzer("fuzz-json"),
        fuzzer("fuzz-checkpoint"),
        fuzzer("fuzz-repartition"),
        .executableTarget(name: "fuzz-seeds", dependencies: ["FuzzSupport"] + kappa),
    ],
    swiftLanguageModes: [.v6]
)
