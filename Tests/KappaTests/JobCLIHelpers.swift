import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import KappaTesting
import RebuGenerator

// Helpers for the process-level job tests (JobCLI*): they run the real `kappa` binary
// (process, replay, jobs, query, consume) through `CLIWorkspace` from CLIHelpers.swift.
//
// Contract:
// - Input data is the deterministic Rebu data set `JobFx.dataset` (seed 1), produced into
//   `rides`, `tickets` and `app_events` with `JobFx.partitions` partitions each.
// - Job files are the shipped ones (`jobs/*.yaml` of the package), copied into the
//   workspace; a test may change them textually before writing.
// - Every wait is a poll with a generous deadline; a daemon that dies while awaited
//   fails the wait at once with its stderr.
// - Results are compared as sorted lines: the order of records within an output topic
//   may differ between runs (tasks close windows in different rounds), their multiset
//   may not.

/// The three shipped jobs.
enum ShippedJob: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case ridesPerCity = "rides-per-city"
    case appSessions = "app-sessions"
    case ticketRideMatch = "ticket-ride-match"

    var name: String { rawValue }
    var output: String {
        switch self {
        case .ridesPerCity: return "rides-per-city"
        case .appSessions: return "app-sessions"
        case .ticketRideMatch: return "ticket-ride-matches"
        }
    }
    var inputs: [RebuTopic] {
        switch self {
        case .ridesPerCity: return [.rides]
        case .appSessions: return [.appEvents]
        case .ticketRideMatch: return [.tickets, .rides]
        }
    }

    /// The job file as shipped in the package's `jobs/` directory.
    var yaml: String {
        get throws {
            let path = JobFx.packageRoot + "/jobs/\(rawValue).yaml"
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CLIFailure(description: "cannot read the shipped job file \(path)")
            }
            return String(decoding: data, as: UTF8.self)
        }
    }

    var testDescription: String { rawValue }
}

/// How the test topics are keyed: by user, as the SPEC's topics are (co-partitioned:
/// every job reads directly), or as real feeds often are — app events by device, rides by
/// ride, tickets by ticket — so that sessions and matches must re-key every input.
enum InputKeying: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case byUser = "by-user"
    case byOwnId = "by-own-id"

    func keyField(_ topic: RebuTopic) -> String {
        switch (self, topic) {
        case (.byUser, _): return "user_id"
        case (.byOwnId, .appEvents): return "device_id"
        case (.byOwnId, .rides): return "ride_id"
        case (.byOwnId, .tickets): return "ticket_id"
        }
    }

    var testDescription: String { rawValue }
}

enum JobFx {
    static let partitions = 4

    /// The package root: this file is `Tests/KappaTests/JobCLIHelpers.swift`.
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The input data of every JobCLI test (generated once per test process).
    static let dataset: [RebuTopic: [[UInt8]]] = {
        // 200k app events, 20k rides, 6k tickets: enough that a daemon is often busy when
        // it is killed (a debug build processes some 50k records per second).
        let d = RebuDataset(RebuConfig(seed: 1, appEvents: 200_000, ridesPerThousandAppEvents: 100, ticketsPerThousandAppEvents: 30))
        var out: [RebuTopic: [[UInt8]]] = [:]
        for t in RebuTopic.allCases { out[t] = splitLines(d.jsonLines(t)) }
        return out
    }()

    static func lines(_ topic: RebuTopic) -> [[UInt8]] { dataset[topic]! }

    /// `lines` cut into `count` consecutive chunks of near-equal size.
    static func chunks(_ lines: [[UInt8]], count: Int) -> [[[UInt8]]] {
        (0..<count).map { i in Array(lines[(lines.count * i / count)..<(lines.count * (i + 1) / count)]) }
    }
}

/// What a job version leaves for readers: its output topic, late-events and dead-letter
/// topics (values, sorted) and `kappa query` rows (sorted).
struct JobResults {
    var output: [[UInt8]]
    var query: [[UInt8]]
    var late: [[UInt8]]
    var deadLetter: [[UInt8]]
    /// How long the replay that computed them took (reference runs only).
    var replaySeconds: Double = 0
}

func sortedLines(_ lines: [[UInt8]]) -> [[UInt8]] { lines.sorted { $0.lexicographicallyPrecedes($1) } }

/// Lines that occur more than once.
func duplicates(_ lines: [[UInt8]]) -> [[UInt8]] {
    var counts: [[UInt8]: Int] = [:]
    for l in lines { counts[l, default: 0] += 1 }
    return counts.filter { $0.value > 1 }.map(\.key)
}

extension CLIWorkspace {
    /// Creates `rides`, `tickets` and `app_events` with `JobFx.partitions` partitions,
    /// keyed as `keying` says.
    func createRebuTopics(_ keying: InputKeying = .byUser) throws {
        for t in RebuTopic.allCases {
            try createTopic(t.rawValue, partitions: JobFx.partitions, extra: ["--key-field", keying.keyField(t)])
        }
    }

    /// Writes `lines` to a file and produces it into `topic` (exit 0 required).
    func produce(_ topic: String, _ lines: [[UInt8]], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let file = try writeFile("produce-\(topic)-\(UUID().uuidString).jsonl", lines: lines)
        try ok(["produce", topic, file], sourceLocation: sourceLocation)
    }

    /// Writes a job file into the workspace; returns its path.
    func writeJobFile(_ name: String, _ yaml: String) throws -> String {
        let path = tmp.path + "/" + name
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The shipped job file of `job`, copied into the workspace.
    func jobFile(_ job: ShippedJob) throws -> String {
        try writeJobFile("\(job.rawValue).yaml", try job.yaml)
    }

    /// `consume TOPIC --from-beginning` (plain values), sorted.
    func values(_ topic: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[UInt8]] {
        sortedLines(try ok(["consume", topic, "--from-beginning"], sourceLocation: sourceLocation).stdoutLines)
    }

    /// `query JOB ARGS…`, sorted.
    func query(_ job: String, _ args: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) throws -> [[UInt8]] {
        sortedLines(try ok(["query", job] + args, sourceLocation: sourceLocation).stdoutLines)
    }

    /// What version `version` of `job` shows readers now: `OUTPUT.vN`, `JOB.vN.late`,
    /// `JOB.vN.dead-letter` and `query JOB --version N`.
    func results(_ job: String, output: String, version: Int) throws -> JobResults {
        JobResults(output: try values("\(output).v\(version)"),
                   query: try query(job, ["--version", String(version)]),
                   late: try values("\(job).v\(version).late"),
                   deadLetter: try values("\(job).v\(version).dead-letter"))
    }

    /// `jobs describe JOB`: one object per version.
    func describeJob(_ job: String) throws -> [[String: Any]] {
        try ok(["jobs", "describe", job]).stdoutLines.map(parseJSONObject)
    }

    /// The tasks of `version` as `jobs describe` shows them, by task number.
    func jobTasks(_ job: String, version: Int) throws -> [[String: Any]] {
        let v = try #require(try describeJob(job).first { intField($0, "version") == Int64(version) }, "\(job) has no version \(version)")
        let tasks = try #require(v["tasks"] as? [[String: Any]], "no tasks in jobs describe \(job)")
        return tasks.sorted { intField($0, "task") < intField($1, "task") }
    }

    /// Waits until every task of `job` v`version` has a checkpoint with lag 0 on every
    /// input, and `jobs describe` has stayed the same for `stableSeconds` (so the
    /// repartition topic is drained and the last results are checkpointed). Throws as
    /// soon as one of `daemons` has exited; on a timeout, with a `stallReport`.
    /// JOBCLI_CATCHUP_SECONDS=N shortens the default deadline (hunting a stall by seed).
    func waitCaughtUp(_ job: String, version: Int, daemons: [CLIProcess], partitions: Int = JobFx.partitions,
                      timeoutSeconds: Double = Double(ProcessInfo.processInfo.environment["JOBCLI_CATCHUP_SECONDS"] ?? "") ?? 300,
                      stableSeconds: Double = 2.5) throws {
        var last = ""
        var stableSince: Date?
        var state = "nothing yet"
        do {
            try waitUntil("\(job) v\(version) to catch up (last seen: \(state))", timeoutSeconds: timeoutSeconds, pollSeconds: 0.25) {
                for d in daemons where !d.isRunning {
                    throw CLIFailure(description: "daemon \(d) exited while waiting for \(job) v\(version) to catch up: \(d.result)")
                }
                let r = try kappa(["jobs", "describe", job])
                guard r.status == 0 else {
                    state = r.description
                    return false
                }
                let versions = try r.stdoutLines.map(parseJSONObject)
                guard let v = versions.first(where: { intField($0, "version") == Int64(version) }),
                      let tasks = v["tasks"] as? [[String: Any]] else {
                    state = r.stdoutText
                    return false
                }
                // The tasks only: the rest (e.g. the definition's key order) may vary per call.
                let text = String(decoding: try JSONSerialization.data(withJSONObject: tasks, options: [.sortedKeys]), as: UTF8.self)
                let caughtUp = tasks.count == partitions && tasks.allSatisfy { t in
                    guard t["checkpoint"] == nil || !(t["checkpoint"] is NSNull), t["processed"] != nil,
                          let lag = t["lag"] as? [String: Any] else { return false }
                    return lag.values.allSatisfy { ($0 as? NSNumber)?.int64Value == 0 }
                }
                state = String(text.prefix(1500))
                guard caughtUp, text == last else {
                    last = text
                    stableSince = nil
                    return false
                }
                if stableSince == nil { stableSince = Date() }
                return Date().timeIntervalSince(stableSince!) >= stableSeconds
            }
        } catch let failure as CLIFailure where failure.description.hasPrefix("timed out") {
            // A stall must leave evidence: who owns what, what the daemons said and where
            // their threads are.
            throw CLIFailure(description: failure.description + "\n" + stallReport(job, version: version, daemons: daemons))
        }
    }

    /// Evidence for a job that does not catch up: `jobs describe` and `groups describe`
    /// in full, the group's member and owner files, every partition's segments and end,
    /// the tasks' checkpoint and status files, and per daemon the flocks it holds
    /// (/proc/locks), its open files (/proc/PID/fd), the tail of its stderr (its status
    /// lines give the lag it sees and the tasks it owns) and, where gdb is installed,
    /// every thread's stack. JOBCLI_KEEP_STALLED=DIR copies the workspace there.
    func stallReport(_ job: String, version: Int, daemons: [CLIProcess]) -> String {
        var out: [String] = ["--- stall report for \(job) v\(version)"]
        for args in [["jobs", "describe", job], ["groups", "describe", "\(job).v\(version)"]] {
            let r = try? kappa(args, timeoutSeconds: 30)
            out.append("$ kappa \(args.joined(separator: " ")): \(r.map { "exit \($0.status)\n\($0.stdoutText)\($0.stderrText)" } ?? "did not run")")
        }
        let group = dataDirectory.groupsPath + "/\(job).v\(version)"
        let files = FileManager.default.enumerator(atPath: group)?.compactMap { $0 as? String }.sorted() ?? []
        for f in files where !f.hasPrefix("offsets") {
            let text = (try? String(contentsOfFile: group + "/" + f, encoding: .utf8)) ?? "(a directory or unreadable)"
            let inode = (try? FileManager.default.attributesOfItem(atPath: group + "/" + f))?[.systemFileNumber].map { "\($0)" } ?? "?"
            out.append("group file \(f) (inode \(inode)): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        // Segments and ends of every partition, and the tasks' checkpoints beside their
        // status files (sizes and times: a status older than its checkpoint shows here).
        for (root, wanted) in [(dataDirectory.topicsPath, [".log", "/end"]), (data + "/jobs/\(job)/v\(version)/tasks", [""])] {
            for f in (FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String }.sorted() ?? []) where wanted.contains(where: f.hasSuffix) {
                guard let attributes = try? FileManager.default.attributesOfItem(atPath: root + "/" + f),
                      attributes[.type] as? FileAttributeType == .typeRegular else { continue }
                let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
                let modified = (attributes[.modificationDate] as? Date).map { String(format: "%.6f", $0.timeIntervalSince1970) } ?? "?"
                out.append("\(root)/\(f): \(size) bytes, inode \(attributes[.systemFileNumber].map { "\($0)" } ?? "?"), modified \(modified)")
            }
        }
        if let keep = ProcessInfo.processInfo.environment["JOBCLI_KEEP_STALLED"] {
            // The data directory as the stall left it, for a closer look.
            let copy = keep + "/" + (tmp.path as NSString).lastPathComponent
            try? FileManager.default.copyItem(atPath: tmp.path, toPath: copy)
            out.append("workspace copied to \(copy)")
        }
        let locks = (try? String(contentsOfFile: "/proc/locks", encoding: .utf8)) ?? ""
        for d in daemons {
            out.append("daemon \(d) running: \(d.isRunning)")
            let held = locks.split(separator: "\n").filter { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).first == Substring("\(d.pid)") }
            out.append("its locks (/proc/locks; inode is the 3rd field of maj:min:inode):\n" + held.joined(separator: "\n"))
            let fdDir = "/proc/\(d.pid)/fd"
            let fds = ((try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? []).compactMap { fd -> String? in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: fdDir + "/" + fd), target.hasPrefix("/") else { return nil }
                return "fd \(fd) → \(target)"
            }.sorted()
            out.append("its open files (/proc/PID/fd):\n" + fds.joined(separator: "\n"))
            out.append("its stderr (tail):\n" + d.stderrText.split(separator: "\n").suffix(60).joined(separator: "\n"))
            if d.isRunning, FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb") {
                let gdb = try? startExternal("/usr/bin/gdb", ["-p", "\(d.pid)", "-batch", "-ex", "thread apply all bt 30"])
                _ = try? gdb?.waitForExit(timeoutSeconds: 120)
                out.append("its threads (gdb):\n" + (gdb.map { String(decoding: $0.stdout, as: UTF8.self) } ?? "gdb did not start"))
            }
        }
        return out.joined(separator: "\n")
    }

    /// The job's reference results: everything produced up front, then
    /// `replay JOB.yaml --switch` (v1), in this (fresh) workspace.
    func referenceRun(_ job: ShippedJob, keying: InputKeying = .byUser) throws -> JobResults {
        try createRebuTopics(keying)
        for t in job.inputs { try produce(t.rawValue, JobFx.lines(t)) }
        let file = try jobFile(job)
        let started = Date()
        let r = try ok(["replay", file, "--switch"])
        let replaySeconds = Date().timeIntervalSince(started)
        let summary = try parseJSONObject(try #require(r.stdoutLines.last, "replay printed nothing: \(r)"))
        #expect(intField(summary, "version") == 1, "\(r.stdoutText)")
        let total = job.inputs.reduce(0) { $0 + JobFx.lines($1).count }
        #expect(intField(summary, "records") == Int64(total), "replay summary \(r.stdoutText): expected \(total) records")
        var results = try results(job.name, output: job.output, version: 1)
        // Read through the current-version alias too: it must be the same topic.
        let alias = try values(job.output)
        expectSameLines(alias, results.output, "reference: consume \(job.output) vs \(job.output).v1")
        results.output = alias
        results.replaySeconds = replaySeconds
        return results
    }
}

/// Stops a daemon with SIGTERM (or `signal`) and requires a clean exit (status 0).
func stopCleanly(_ p: CLIProcess, signal: Int32 = SIGTERM, sourceLocation: SourceLocation = #_sourceLocation) throws {
    try #require(p.isRunning, "\(p) is not running before signal \(signal): \(p.result)", sourceLocation: sourceLocation)
    p.send(signal)
    let status = try p.waitForExit(timeoutSeconds: 120)
    #expect(status == 0, "\(p) exited \(status) after signal \(signal); stderr: \(p.stderrText.suffix(3000))", sourceLocation: sourceLocation)
}

/// Kills a process with SIGKILL and reaps it; records an issue if it had already ended
/// (a daemon must not exit on its own).
func killNine(_ p: CLIProcess, sourceLocation: SourceLocation = #_sourceLocation) throws {
    if !p.isRunning {
        Issue.record("\(p) had exited on its own before kill -9: \(p.result)", sourceLocation: sourceLocation)
        return
    }
    p.send(SIGKILL)
    let status = try p.waitForExit(timeoutSeconds: 60)
    if status != 128 + SIGKILL {
        Issue.record("\(p) exited \(status) instead of dying by SIGKILL: \(p.result)", sourceLocation: sourceLocation)
    }
}

/// Lines of `stderr` that report an error (`kappa: …`), except reports of a torn tail
/// repaired on open (`kappa: recovered …`), which a kill -9 may legitimately cause.
func errorLines(_ stderr: String) -> [String] {
    stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("kappa:") && !$0.hasPrefix("kappa: recovered") }
}

/// Compares a run's results with the reference, naming `what`.
func expectSameResults(_ actual: JobResults, _ reference: JobResults, _ what: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
    expectSameMultiset(actual.output, reference.output, "\(what): output topic", sourceLocation: sourceLocation)
    expectSameMultiset(actual.query, reference.query, "\(what): query rows", sourceLocation: sourceLocation)
    expectSameMultiset(actual.late, reference.late, "\(what): late-events topic", sourceLocation: sourceLocation)
    expectSameMultiset(actual.deadLetter, reference.deadLetter, "\(what): dead-letter topic", sourceLocation: sourceLocation)
    let dups = duplicates(actual.output)
    let duplicateCount = dups.count
    #expect(duplicateCount == 0, "\(what): \(duplicateCount) output records visible more than once, e.g. \(dups.first.map { text($0) } ?? "")",
            sourceLocation: sourceLocation)
}

/// Sleeps `millis` milliseconds.
func sleepMillis(_ millis: Int) {
    if millis > 0 { usleep(UInt32(millis) * 1000) }
}

/// The integer seconds of a decimal-seconds string ("1457741907.959400112" → 1457741907).
func wholeSeconds(_ s: String) -> Int64? {
    Int64(s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
}

/// A string field of a parsed JSON object, or a number's text.
func stringValue(_ object: [String: Any], _ name: String) -> String? {
    if let s = object[name] as? String { return s }
    if let n = object[name] as? NSNumber { return n.stringValue }
    return nil
}

/// A JSON array of integers, parsed.
func intArray(_ value: Any?) -> [Int64]? {
    guard let a = value as? [Any] else { return nil }
    let out = a.compactMap { ($0 as? NSNumber)?.int64Value }
    return out.count == a.count ? out : nil
}

/// Decimal seconds ("1457741907.959400112", "1457748100.25", "1457740800") as integer
/// nanoseconds, exactly; Int64.min when it does not parse.
func nanos(_ s: String) -> Int64 {
    let parts = s.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    guard let whole = Int64(parts[0]) else { return .min }
    var fraction = parts.count > 1 ? String(parts[1]) : ""
    guard fraction.count <= 9, fraction.allSatisfy(\.isNumber) else { return .min }
    fraction += String(repeating: "0", count: 9 - fraction.count)
    return whole * 1_000_000_000 + (Int64(fraction) ?? 0)
}
