import Testing
@testable import KappaCore
@testable import KappaLog
@testable import KappaStreams
import KappaTesting

/// Job tasks on `SimulatedFileSystem`, crashed at every I/O step of their work — reading
/// and sending through the repartition topic, writing output, and each step of a
/// checkpoint (flush, sync, the checkpoint's temporary file, its rename, the directory
/// fsync, the status file, the committed markers) — then brought back by a kill -9 of the
/// process or by a power loss, reopened from disk and run to the end: the output topic as
/// readers see it equals an uninterrupted run's, with no record visible twice. (Real
/// kill -9 tests of daemons stay: `JobCLIExactlyOnceTests`; these reach crash points a
/// kill rarely hits.)
@Suite struct SimulatedTaskCrashTests {
    /// Sessions of users over app events keyed by device: every event crosses the
    /// repartition topic, and both sides checkpoint.
    static let job = """
        name: s
        inputs: [app_events]
        session: { key: user_id, time: time_utc, gap: 30m, grace: 5m }
        output: sessions
        """

    struct Outcome {
        var rows: [String]
        var outputRecords: Int
        var steps: [SimulatedFileSystem.Step]
        var crashed = false
        /// Per output partition: what a reader saw right after the restart, before any
        /// task reopened, and what it sees at the end. Visible output is never taken
        /// back: the first must be a prefix of the second.
        var visibleAtRestart: [[[UInt8]]] = []
        var visibleAtEnd: [[[UInt8]]] = []
    }

    /// The committed records of every partition of `topic`, as a reader sees them.
    static func visible(_ dir: DataDirectory, _ topic: String) throws -> [[[UInt8]]] {
        guard dir.topicExists(topic) else { return [] }  // the crash came before it was made
        return try (0..<(try dir.topicConfig(topic).partitions)).map { p in
            try PartitionReader(directory: dir, topicPartition: TopicPartition(topic, p)).readAll(from: .zero).records.map(\.record.value)
        }
    }

    /// One run on a fresh simulated machine: the input is produced and synced, then the
    /// tasks run (in a seeded order) to the end; with `crashAt`, the machine crashes at
    /// that step, restarts as `restart` says, and the tasks are reopened and run again.
    static func run(crashAt: Int?, restart: SimulatedFileSystem.Restart) throws -> Outcome {
        let fs = SimulatedFileSystem(seed: 5)
        let dir = DataDirectory(root: "/disk/data", fileSystem: fs)
        try dir.createTopic("app_events", config: TopicConfig(partitions: 2, keyField: "device_id"))
        var rng = SeededRandom(seed: 77)
        let events = StreamRekeyOracleTests.appEvents(users: 25, rng: &rng)
        try StreamRekeyOracleTests.produce(dir, "app_events", events.map { ($0.device, StreamRekeyOracleTests.json($0), $0.time) }, fsync: .always)
        try StreamRekeyOracleTests.closeEverything(dir, "app_events", fsync: .always) {
            #"{"time_utc":"\#(TimestampNanos(StreamFx.farFuture).decimalSeconds)","user_id":"\#($0)","device_id":"\#($0)","event_type":"end"}"#
        }
        let def = try JobFile.parse(Self.job, path: "s.yaml")
        let jobStart = fs.steps
        if let crashAt { fs.inject(.crash, atStep: jobStart + crashAt) }
        var outcome = Outcome(rows: [], outputRecords: 0, steps: [])
        var harness: TaskHarness?
        var order = SeededRandom(seed: 3)
        do {
            harness = try TaskHarness(dir: dir, def: def, fsync: .always)
            try harness!.run(&order, crashPercent: 0)
        } catch where fs.isCrashed {
            outcome.crashed = true
            harness?.abandon()
            harness = nil
            fs.restart(restart)
            fs.clearFaults()
            outcome.visibleAtRestart = try Self.visible(dir, JobRegistry.outputTopic(def, 1))
            harness = try TaskHarness(dir: dir, def: def, fsync: .always)
            try harness!.run(&order, crashPercent: 0)
        }
        outcome.steps = Array(fs.stepLog.dropFirst(jobStart))
        outcome.rows = try harness!.rows()
        outcome.outputRecords = try harness!.count(JobRegistry.outputTopic(def, 1))
        outcome.visibleAtEnd = try Self.visible(dir, JobRegistry.outputTopic(def, 1))
        return outcome
    }

    @Test func crashAtEveryStepOfATaskEqualsAnUninterruptedRun() throws {
        let reference = try Self.run(crashAt: nil, restart: .processKill)
        try #require(reference.rows.count > 20 && reference.rows.count == reference.outputRecords, "the reference run made \(reference.rows.count) sessions")
        // Every step of the job's run: appends, syncs and checkpoints of both tasks.
        let steps = reference.steps.count
        try #require(steps > 100 && reference.steps.contains { $0.path.hasSuffix(".ckpt") || $0.path.contains(".ckpt.tmp") })
        var covered = Set<String>()
        var failures: [String] = []
        for k in 1...steps {
            for restart in [SimulatedFileSystem.Restart.processKill, .powerLoss] {
                let o = try Self.run(crashAt: k, restart: restart)
                let step = reference.steps[k - 1]
                covered.insert(step.operation + " " + Self.kind(of: step.path))
                if !o.crashed { failures.append("step \(k) (\(step)): no crash happened") }
                if o.rows != reference.rows {
                    let differ = Set(o.rows).symmetricDifference(reference.rows).sorted().first ?? ""
                    failures.append("step \(k) (\(step)), \(restart): \(o.rows.count) results, expected \(reference.rows.count); e.g. \(differ)")
                }
                if o.outputRecords != o.rows.count { failures.append("step \(k) (\(step)), \(restart): \(o.outputRecords) output records for \(o.rows.count) results") }
                for (p, seen) in o.visibleAtRestart.enumerated() where !o.visibleAtEnd[p].starts(with: seen) {
                    failures.append("step \(k) (\(step)), \(restart): partition \(p) showed \(seen.count) records after the restart that the end does not start with")
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failures of \(2 * steps) crashes, first: \(failures.prefix(5))")
        // The crash points include every I/O step of a checkpoint.
        for needed in ["pwrite checkpoint", "fsync checkpoint", "rename checkpoint", "fsync-dir tasks", "pwrite repartition", "pwrite output",
                       "rename committed-marker", "fsync output"] {
            #expect(covered.contains { $0.hasPrefix(needed.split(separator: " ")[0]) && $0.hasSuffix(String(needed.split(separator: " ")[1])) },
                    "no crash at a '\(needed)' step; covered: \(covered.sorted())")
        }
    }

    /// A step's file, by kind, for the coverage list.
    static func kind(of path: String) -> String {
        if path.contains(".ckpt") { return "checkpoint" }
        if path.contains("/committed") { return "committed-marker" }
        if path.contains(".status.json") { return "status" }
        if path.hasSuffix("/tasks") { return "tasks" }
        if path.contains(".repartition/") { return "repartition" }
        if path.contains("/sessions.v1/") { return "output" }
        return path.split(separator: "/").last.map(String.init) ?? path
    }
}
