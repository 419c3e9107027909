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

    /// A kill -9 after a checkpoint's rename and before its status file's (with a synced
    /// checkpoint, a directory fsync apart) left the status of the checkpoint before. The
    /// restarted task, with nothing new to read, never checkpointed again, so `jobs
    /// describe` showed lag > 0 forever: the stall once seen in `JobCLIExactlyOnceTests`
    /// (a daemon idle and caught up, its task's status one chunk behind). Restoring a
    /// task makes the status describe the checkpoint it loaded.
    @Test func killBetweenACheckpointAndItsStatusLeavesNoStaleStatus() throws {
        let reference = try Self.checkpointTwice(crashAt: nil)
        let statusRenames = reference.steps.filter { $0.operation == "rename" && $0.path.hasSuffix(".status.json") }
        try #require(statusRenames.count == 2, "expected one status rename per checkpoint: \(statusRenames)")
        let lastStatus = try #require(reference.status)
        #expect(lastStatus.contains(#""tickets":2"#), "\(lastStatus)")

        let run = try Self.checkpointTwice(crashAt: statusRenames[1].number)
        try #require(run.crashed, "no crash at \(statusRenames[1])")
        // As the kill left it: the second checkpoint in place, the first one's status.
        #expect(run.status != lastStatus && run.status?.contains(#""tickets":1"#) == true, "\(run.status ?? "no status")")
        run.fs.restart(.processKill)
        run.fs.clearFaults()
        let task = try JobTask(directory: run.dir, definition: run.def, version: 1, task: 0, fsync: .never, clock: ManualClock())
        #expect(try task.step() == 0)
        #expect(!task.needsCheckpoint, "a caught-up task has no reason to checkpoint: the status must be right already")
        #expect(run.status == lastStatus, "the status does not describe the checkpoint the task restored")
        let entry = try #require(try Describe.tasks(run.def, version: 1, dir: run.dir, registry: JobRegistry(directory: run.dir)).tasks.first)
        #expect(entry.lag == ["tickets": 0, "rides": 0], "jobs describe: lag \(entry.lag)")
    }

    /// A status whose checkpoint is gone (a power loss may keep either of the two files
    /// without the other) describes nothing: restoring the task removes it.
    @Test func aStatusWithoutItsCheckpointIsRemovedOnRestore() throws {
        let run = try Self.checkpointTwice(crashAt: nil)
        try run.fs.remove(JobRegistry(directory: run.dir).checkpointPath("m", 1, task: 0))
        try #require(run.status != nil)
        _ = try JobTask(directory: run.dir, definition: run.def, version: 1, task: 0, fsync: .never, clock: ManualClock())
        #expect(run.status == nil, "a status survived without its checkpoint: \(run.status ?? "")")
    }

    /// A match job's task over two chunks of input, checkpointed after each on a fresh
    /// simulated machine; with `crashAt`, the machine crashes at that step (the run stops
    /// there and reports it).
    static func checkpointTwice(crashAt: Int?) throws -> CheckpointRun {
        let fs = SimulatedFileSystem(seed: 11)
        let dir = DataDirectory(root: "/disk/data", fileSystem: fs)
        for t in ["tickets", "rides"] { try dir.createTopic(t, config: TopicConfig(partitions: 1, keyField: "user_id")) }
        let def = try JobFile.parse("""
            name: m
            inputs: [tickets, rides]
            match: { key: user_id, time: time_utc, tickets: tickets, rides: rides, grace: 10m }
            output: matches
            """, path: "m.yaml")
        try JobVersions.prepare(def, version: 1, directory: dir)
        let statusPath = JobRegistry(directory: dir).statusPath("m", 1, task: 0)
        if let crashAt { fs.inject(.crash, atStep: crashAt) }
        var crashed = false
        do {
            let task = try JobTask(directory: dir, definition: def, version: 1, task: 0, fsync: .never, clock: ManualClock())
            for chunk in 0..<2 {
                let t = 1000 + chunk * 10_000
                try StreamTaskTests.produce(dir, "rides", [#"{"time_utc":"\#(t)","user_id":"u\#(chunk)","ride_id":"r\#(chunk)"}"#])
                try StreamTaskTests.produce(dir, "tickets", [#"{"time_utc":"\#(t + 100)","user_id":"u\#(chunk)","ticket_id":"t\#(chunk)"}"#])
                #expect(try task.step() == 2)
                try task.checkpoint()
            }
        } catch where fs.isCrashed {
            crashed = true
        }
        return CheckpointRun(fs: fs, dir: dir, def: def, statusPath: statusPath, steps: fs.stepLog, crashed: crashed)
    }

    struct CheckpointRun {
        var fs: SimulatedFileSystem
        var dir: DataDirectory
        var def: JobDefinition
        var statusPath: String
        var steps: [SimulatedFileSystem.Step]
        var crashed: Bool
        /// The task's status file as it is now (nil: none).
        var status: String? { fs.contents(statusPath).map { String(decoding: $0, as: UTF8.self) } }
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
