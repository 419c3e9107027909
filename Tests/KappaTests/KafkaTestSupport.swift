import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaCore
import KappaLog

// Helpers for the `kappa serve` tests: they run the real `kappa serve` and real Kafka
// clients against it — kcat (Debian's, librdkafka 2.0.2), and the Python clients
// confluent-kafka, kafka-python and aiokafka — never a hand-written idea of the protocol,
// except where no client will send what is tested (hostile input, a broken batch).
//
// Contract:
// - A test that needs a tool it cannot find is skipped with a message naming the tool
//   and how CI installs it (.ci/run: apt-get install kcat; pip install the clients).
// - `KafkaServe` starts `kappa serve --kafka 127.0.0.1:0` in a workspace and reads the
//   bound address from its "listening on" line; the workspace kills it at the end.
// - Clients run as child processes with output in files (CLIWorkspace.startExternal),
//   each with a deadline; a Python script prints JSON Lines the test parses.

/// The Kafka clients on this machine.
enum KafkaTools {
    static let kcat: String? = which("kcat")
    static let python3: String? = which("python3")

    static var hasKcat: Bool { kcat != nil }
    static let hasConfluentKafka = pythonHas("confluent_kafka")
    static let hasKafkaPython = pythonHas("kafka")
    static let hasAiokafka = pythonHas("aiokafka")
    static var hasPythonClients: Bool { hasConfluentKafka && hasKafkaPython && hasAiokafka }

    static let missingKcat: Comment = "kcat is not installed (CI installs it: apt-get install kcat)"
    static let missingPython: Comment = "the Python Kafka clients are not installed (CI: pip install confluent-kafka kafka-python aiokafka lz4 cramjam)"

    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    static func pythonHas(_ module: String) -> Bool {
        guard let python3 else { return false }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python3)
        p.arguments = ["-c", "import \(module)"]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        do {
            try p.run()
            p.waitUntilExit()
            return p.terminationStatus == 0
        } catch {
            return false
        }
    }
}

/// A running `kappa serve` on a free loopback port.
final class KafkaServe {
    let ws: CLIWorkspace
    let process: CLIProcess
    /// "127.0.0.1:PORT", what clients bootstrap from.
    let bootstrap: String
    var port: Int { Int(bootstrap.split(separator: ":").last!)! }

    init(_ ws: CLIWorkspace, extra: [String] = []) throws {
        self.ws = ws
        // --http off: the Kafka tests run servers side by side; the HTTP API has its own tests.
        let process = try ws.start(["serve", "--kafka", "127.0.0.1:0", "--http", "off", "--group-initial-rebalance-delay", "0ms"] + extra)
        self.process = process
        var address: String? = nil
        try waitUntil("kappa serve to listen", timeoutSeconds: 30) {
            guard process.isRunning else { throw CLIFailure(description: "kappa serve exited: \(process.stderrText)") }
            guard let line = process.stderrText.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }) else { return false }
            address = String(line.dropFirst("listening on ".count).split(separator: " ").first!)
            return true
        }
        bootstrap = address!
    }

    /// SIGTERM, and the exit status (0 for a clean stop).
    @discardableResult
    func stop() throws -> Int32 {
        process.send(SIGTERM)
        return try process.waitForExit(timeoutSeconds: 60)
    }

    var isRunning: Bool { process.isRunning }
}

extension CLIWorkspace {
    /// Runs a Python script (the text) with arguments; requires exit 0 and returns its
    /// stdout lines parsed as JSON objects.
    func python(_ script: String, _ args: [String], timeoutSeconds: Double = 120,
                sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        let r = try pythonResult(script, args, timeoutSeconds: timeoutSeconds)
        try #require(r.status == 0, "python script failed (exit \(r.status)): \(r.stderrText.suffix(3000))", sourceLocation: sourceLocation)
        return try r.stdoutLines.map(parseJSONObject)
    }

    func pythonResult(_ script: String, _ args: [String], timeoutSeconds: Double = 120) throws -> CLIResult {
        let python3 = try #require(KafkaTools.python3)
        let path = try writeFile("script-\(UUID().uuidString.prefix(8)).py", lines: [Array(script.utf8)])
        return try external(python3, [path] + args, timeoutSeconds: timeoutSeconds)
    }

    /// Runs a program to completion (killed after `timeoutSeconds`).
    func external(_ executable: String, _ args: [String], stdinPath: String? = nil, timeoutSeconds: Double = 120) throws -> CLIResult {
        let p = try startExternal(executable, args, stdinPath: stdinPath)
        do {
            try p.waitForExit(timeoutSeconds: timeoutSeconds)
        } catch {
            p.send(SIGKILL)
            _ = try? p.waitForExit(timeoutSeconds: 30)
            throw CLIFailure(description: "\(executable) \(args.joined(separator: " ")) did not finish within \(Int(timeoutSeconds)) s; stderr: \(p.stderrText.suffix(2000))")
        }
        return p.result
    }

    /// kcat with `args`; requires exit 0.
    @discardableResult
    func kcat(_ args: [String], stdin: [UInt8]? = nil, timeoutSeconds: Double = 60, sourceLocation: SourceLocation = #_sourceLocation) throws -> CLIResult {
        let kcat = try #require(KafkaTools.kcat)
        var stdinPath: String? = nil
        if let stdin { stdinPath = try writeFile("kcat-in-\(UUID().uuidString.prefix(8))", lines: []) ; try Data(stdin).write(to: URL(fileURLWithPath: stdinPath!)) }
        let r = try external(kcat, args, stdinPath: stdinPath, timeoutSeconds: timeoutSeconds)
        try #require(r.status == 0, "kcat \(args.joined(separator: " ")) failed (exit \(r.status)): \(r.stderrText.suffix(2000))", sourceLocation: sourceLocation)
        return r
    }

    /// The end offset of every partition of `topic`, from `kappa topics describe`.
    func endOffsets(_ topic: String) throws -> [Int64] {
        try describe(topic).map { intField($0, "end_offset") }
    }
}

/// A JSON number as Int64.
func int64(_ any: Any?) -> Int64? { (any as? NSNumber)?.int64Value }
