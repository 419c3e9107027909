import Testing
@testable import KappaCore
@testable import KappaFormat
@testable import KappaLog
@testable import KappaGroups
import KappaTesting

/// The log on `SimulatedFileSystem`, crashed after every I/O step of an operation —
/// append, sync, roll, retention, index rebuild, truncation, a multi-partition group, a
/// consumer-group commit — then brought back by a kill -9 of every process or by a power
/// loss (unsynced pages kept or lost in any mix, unsynced directory changes replayed up to
/// a seeded point), reopened and checked:
/// - reopening and reading never report corruption (only torn tails happened);
/// - every partition holds a prefix of what was appended to it, from its start offset:
///   nothing returned twice, nothing invented, offsets dense;
/// - everything acknowledged is there after a kill -9, everything acknowledged and synced
///   after a power loss;
/// - a writer continues at the end, and a group of partitions is all or nothing.
/// Every case is deterministic (the step number and the seed are in each message).
@Suite struct SimulatedCrashTests {
    static let tp = TopicPartition("t", 0)

    /// A simulated machine with a data directory, and what the test knows was written.
    final class Run {
        let fs: SimulatedFileSystem
        let data: DataDirectory
        let clock = ManualClock()
        let config: TopicConfig
        let fsync: FsyncPolicy
        let coding = BatchCoding()
        var writer: PartitionWriter?
        /// Every record handed to an append, in order (partition 0 of "t").
        var attempted: [ReferenceRecord] = []
        /// Records whose append returned.
        var acknowledged = 0
        /// Records acknowledged and covered by a completed fsync.
        var durable = 0
        /// The offset a truncation cut the log back to (a check accepts any end from it).
        var truncatedTo: Int?

        init(seed: UInt64, config: TopicConfig, fsync: FsyncPolicy) throws {
            fs = SimulatedFileSystem(seed: seed)
            data = DataDirectory(root: "/disk/data", fileSystem: fs)
            self.config = config
            self.fsync = fsync
            try data.createTopic("t", config: config)
        }

        func open() throws {
            writer = try PartitionWriter(directory: data, topicPartition: SimulatedCrashTests.tp, config: config, fsync: fsync, clock: clock)
        }

        /// Appends `count` batches of `records` records each, in one append.
        func append(batches count: Int, of records: Int, bytes: Int = 300) throws {
            let sealed = SealedBatches()
            var added: [ReferenceRecord] = []
            for _ in 0..<count {
                let batch = (0..<records).map { _ in SimulatedCrashTests.record(attempted.count + added.count, bytes: bytes) }
                added += batch
                sealed.seal(batch, compression: config.codec, codec: coding.codec)
            }
            attempted += added
            clock.advance(byMillis: 400)
            try writer!.append(sealed)
            acknowledged = attempted.count
            if fsync == .always { durable = acknowledged }
        }

        func sync() throws {
            try writer!.syncNow()
            durable = acknowledged
        }

        /// Everything a killed process held goes away (its deinit may try to sync: the
        /// crashed disk refuses).
        func killProcesses() { writer = nil }
    }

    /// Record `i`: a distinct value (so a duplicate is visible), a few keys.
    static func record(_ i: Int, bytes: Int = 300) -> ReferenceRecord {
        var value = Array("record-\(i)-".utf8)
        var x = UInt64(i) &* 0x9E37_79B9_7F4A_7C15
        while value.count < bytes {
            x ^= x >> 29
            x = x &* 0xBF58_476D_1CE4_E5B9
            value.append(0x61 + UInt8(x % 26))
        }
        return ReferenceRecord(key: Array("u\(i % 7)".utf8), value: value, timestamp: TimestampNanos(millis: 1_457_741_907_000 + Int64(i) * 1000))
    }

    struct Scenario {
        var name: String
        var config: TopicConfig
        var fsync: FsyncPolicy
        var setup: (Run) throws -> Void
        var operation: (Run) throws -> Void
    }

    /// Runs the scenario with a crash at each step of its operation, restarting both ways.
    /// Returns the steps of the operation (their kinds), for the coverage check.
    @discardableResult
    static func crashAtEveryStep(_ s: Scenario, check: (Run, SimulatedFileSystem.Restart, String) throws -> Void = checkPartition) throws -> [String] {
        let probe = try Run(seed: 0, config: s.config, fsync: s.fsync)
        try s.setup(probe)
        let before = probe.fs.steps
        try s.operation(probe)
        let steps = probe.fs.stepLog.filter { $0.number > before }
        try #require(!steps.isEmpty, "\(s.name): the operation does I/O")
        if Environment.crashStepsWanted {
            print("crash points of \(s.name): " + steps.map { "\($0.operation) \(Self.fileKind($0.path))" }.joined(separator: ", "))
        }
        for kind in [SimulatedFileSystem.Restart.processKill, .powerLoss] {
            for (k, step) in steps.enumerated() {
                let run = try Run(seed: UInt64(k) &* 7919 &+ (kind == .powerLoss ? 1 : 0), config: s.config, fsync: s.fsync)
                try s.setup(run)
                run.fs.inject(.crash, atStep: run.fs.steps + k + 1)
                do {
                    try s.operation(run)
                } catch {
                    #expect(run.fs.isCrashed, "\(s.name): the operation failed without a crash: \(error)")
                }
                let context = "\(s.name), crash at step \(k + 1) of \(steps.count) (\(step.operation) \(step.path)), \(kind)"
                #expect(run.fs.isCrashed, "\(context): no crash happened")
                run.killProcesses()
                run.fs.restart(kind)
                try check(run, kind, context)
            }
        }
        return steps.map { $0.operation + " " + Self.fileKind($0.path) }
    }

    /// "log", "index", "end", "recovery-point", ... for a step's path.
    static func fileKind(_ path: String) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        if name.contains(".log.torn-") { return "torn evidence" }
        if name.contains(".tmp.") { return "temporary file" }
        for suffix in [".log", ".index", ".timeindex"] where name.hasSuffix(suffix) { return String(suffix.dropFirst()) }
        if name.allSatisfy(\.isNumber) { return path.contains("/offsets/") ? "committed offset" : "partition directory" }
        return name
    }

    /// After a restart: a writer opens without an error, a reader reads a prefix of what
    /// was appended with nothing lost that must survive, and appending continues.
    static func checkPartition(_ run: Run, _ kind: SimulatedFileSystem.Restart, _ context: String) throws {
        // Before any writer repairs anything, a reader already sees exactly the log the
        // writer will keep (after a power loss: the recovery point and the batches after
        // it that check out), and reading changes no file.
        let files = try run.fs.list(run.data.partitionPath(tp)).sorted().map { run.fs.contents(run.data.partitionPath(tp) + "/" + $0) }
        var early: [ReadRecord]?
        do {
            let reader = try PartitionReader(directory: run.data, topicPartition: tp)
            early = try reader.readAll(from: try reader.startOffset()).records
        } catch {
            Issue.record("\(context): reading before any writer opened failed: \(error)")
        }
        let after = try run.fs.list(run.data.partitionPath(tp)).sorted().map { run.fs.contents(run.data.partitionPath(tp) + "/" + $0) }
        #expect(files == after, "\(context): a reader changed the partition's files")
        let w: PartitionWriter
        do {
            w = try PartitionWriter(directory: run.data, topicPartition: tp, config: run.config, fsync: .always, clock: run.clock)
        } catch {
            Issue.record("\(context): reopening failed: \(error)")
            return
        }
        let reader = try PartitionReader(directory: run.data, topicPartition: tp)
        let start = try reader.startOffset()
        let got: [ReadRecord]
        do {
            got = try reader.readAll(from: start).records
        } catch {
            Issue.record("\(context): reading failed: \(error)")
            return
        }
        let first = Int(start.rawValue)
        #expect(got.map(\.offset) == (0..<got.count).map { start + Int64($0) }, "\(context): offsets dense from \(start)")
        #expect(first + got.count <= run.attempted.count, "\(context): more records than were appended")
        let expected = Array(run.attempted[min(first, run.attempted.count)..<min(first + got.count, run.attempted.count)])
        #expect(got.map(\.record) == expected, "\(context): not a prefix of what was appended")
        let must = kind == .processKill ? run.acknowledged : run.durable
        #expect(first + got.count >= min(must, run.truncatedTo ?? .max), "\(context): \(first + got.count) records, \(must) must have survived")
        #expect(w.nextOffset == start + Int64(got.count), "\(context): the writer continues at \(w.nextOffset)")
        if let early {
            // (Retention at open may have moved the start since.)
            let seen = early.filter { $0.offset >= start }
            #expect(seen.map(\.record) == got.map(\.record), "\(context): the reader saw \(seen.count) records before the writer's recovery, \(got.count) after")
        }
        // Appending continues at the end, and reads back.
        let sealed = SealedBatches()
        let next = record(99_999)
        sealed.seal([next], compression: run.config.codec, codec: run.coding.codec)
        let range = try w.append(sealed)
        #expect(range?.lowerBound == start + Int64(got.count), "\(context): appended at \(String(describing: range))")
        let again = try PartitionReader(directory: run.data, topicPartition: tp).readAll(from: start + Int64(got.count)).records
        #expect(again.map(\.record) == [next], "\(context): the record appended after recovery")
    }

    // MARK: - Scenarios

    @Test func crashDuringAppendsWithFsyncAlways() throws {
        let ops = try Self.crashAtEveryStep(Scenario(
            name: "append (fsync always)", config: TopicConfig(partitions: 1, compression: .none), fsync: .always,
            setup: { run in
                try run.open()
                try run.append(batches: 2, of: 8)
                try run.append(batches: 1, of: 20)
            },
            operation: { run in
                for _ in 0..<3 { try run.append(batches: 2, of: 24) }
            }))
        for kind in ["pwrite log", "pwrite index", "pwrite timeindex", "fsync log", "pwrite end", "pwrite recovery-point", "fsync recovery-point"] {
            #expect(ops.contains(kind), "an append's steps include \(kind): \(Set(ops))")
        }
    }

    @Test func crashDuringAppendsAndSyncsWithFsyncNever() throws {
        try Self.crashAtEveryStep(Scenario(
            name: "append and sync (fsync never)", config: TopicConfig(partitions: 1, compression: .none), fsync: .never,
            setup: { run in
                try run.open()
                try run.append(batches: 2, of: 10)
                try run.sync()
            },
            operation: { run in
                try run.append(batches: 2, of: 10)
                try run.sync()
                try run.append(batches: 1, of: 5)
                try run.append(batches: 3, of: 4)
                try run.writer!.close()
            }))
    }

    @Test func crashDuringRollsWithFsyncInterval() throws {
        let ops = try Self.crashAtEveryStep(Scenario(
            name: "roll (fsync interval)", config: TopicConfig(partitions: 1, compression: .none, segmentBytes: 4096),
            fsync: .interval(millis: 1000),
            setup: { run in
                try run.open()
                try run.append(batches: 1, of: 6)
            },
            operation: { run in
                for _ in 0..<3 { try run.append(batches: 2, of: 4) }
            }))
        #expect(ops.contains("create log") && ops.contains("fsync-dir partition directory"), "a roll creates a segment and syncs its name: \(Set(ops))")
    }

    @Test func crashDuringRetention() throws {
        let ops = try Self.crashAtEveryStep(Scenario(
            name: "retention", config: TopicConfig(partitions: 1, compression: .none, retentionBytes: 8192, segmentBytes: 4096),
            fsync: .never,
            setup: { run in
                try run.open()
                for _ in 0..<3 { try run.append(batches: 1, of: 10) }
            },
            operation: { run in
                for _ in 0..<3 { try run.append(batches: 1, of: 10) }
                run.writer = nil
                try run.open()  // retention at open too
            }))
        #expect(ops.contains("remove log") && ops.contains("remove index"), "retention deletes segments: \(Set(ops))")
    }

    @Test func crashDuringIndexRebuild() throws {
        let ops = try Self.crashAtEveryStep(Scenario(
            name: "index rebuild", config: TopicConfig(partitions: 1, compression: .none), fsync: .always,
            setup: { run in
                try run.open()
                for _ in 0..<6 { try run.append(batches: 2, of: 10) }
                run.writer = nil
                let dir = run.data.partitionPath(SimulatedCrashTests.tp)
                run.fs.flip(SegmentFiles.indexPath(dir, .zero), at: 8 + 3)  // the second entry's offset
                try run.fs.remove(SegmentFiles.timeIndexPath(dir, .zero))
            },
            operation: { run in try run.open() }))
        #expect(ops.contains("pwrite index") && ops.contains("create timeindex"), "the rebuild writes the index, recreates the time index: \(Set(ops))")
    }

    @Test func crashDuringTruncation() throws {
        try Self.crashAtEveryStep(Scenario(
            name: "truncate", config: TopicConfig(partitions: 1, compression: .lz4, segmentBytes: 4096), fsync: .always,
            setup: { run in
                try run.open()
                for _ in 0..<5 { try run.append(batches: 1, of: 6) }
                run.truncatedTo = 12
            },
            operation: { run in
                try run.writer!.truncate(to: Offset(12))
                run.attempted.removeLast(run.attempted.count - 12)
                run.acknowledged = 12
                run.durable = 12
            }), check: { run, kind, context in
                // The cut records may come back after a crash before the cut was durable:
                // `attempted` still holds them when the operation did not finish.
                try Self.checkPartition(run, kind, context)
            })
    }

    /// A commit replaces the offset atomically and durably: after any crash the group
    /// holds the old offset or the new one, never none and never garbage.
    @Test func crashDuringGroupOffsetCommit() throws {
        var stepsSeen: [String] = []
        for kind in [SimulatedFileSystem.Restart.processKill, .powerLoss] {
            var k = 1
            while true {
                let fs = SimulatedFileSystem(seed: UInt64(k))
                let data = DataDirectory(root: "/disk/data", fileSystem: fs)
                let store = try GroupStore(directory: data, group: "g")
                try store.writeCommitted(TopicPartition("t", 0), Offset(5))
                fs.inject(.crash, atStep: fs.steps + k)
                let before = fs.steps
                do {
                    try store.writeCommitted(TopicPartition("t", 0), Offset(9))
                } catch {
                    #expect(fs.isCrashed, "commit failed without a crash: \(error)")
                }
                let finished = !fs.isCrashed
                if !finished { stepsSeen.append(fs.stepLog.last.map { $0.operation + " " + Self.fileKind($0.path) } ?? "?") }
                fs.restart(kind)
                let committed = try store.committed(TopicPartition("t", 0))
                #expect(committed == Offset(5) || committed == Offset(9), "crash at step \(k), \(kind): committed \(String(describing: committed))")
                if finished {
                    #expect(committed == Offset(9), "\(kind): a finished commit is durable")
                    #expect(fs.steps - before >= 4, "the commit writes, syncs, renames and syncs the directory")
                    break
                }
                k += 1
            }
        }
        #expect(Set(stepsSeen).isSuperset(of: ["create temporary file", "pwrite temporary file", "fsync temporary file", "rename committed offset", "fsync-dir t"]), "\(Set(stepsSeen))")
    }

    // MARK: - Groups of partitions

    /// A `TopicWriter` over three partitions writing groups, crashed at every step: every
    /// partition holds a prefix of its input with every acknowledged record (fsync
    /// always, so also after a power loss). A group is all or nothing against write
    /// failures (`SimulatedFaultTests`), which are undone under the partitions' locks; a
    /// crash between the publishes of one group's partitions can leave it in some of
    /// them, so across partitions only the acknowledged groups are promised here.
    @Test func crashDuringGroupsOfPartitions() throws {
        let config = TopicConfig(partitions: 3, compression: .lz4)
        let input = (0..<60).map { Self.record($0, bytes: 200) }
        let prepare: (UInt64) throws -> (SimulatedFileSystem, DataDirectory, TopicWriter) = { seed in
            let fs = SimulatedFileSystem(seed: seed)
            let data = DataDirectory(root: "/disk/data", fileSystem: fs)
            try data.createTopic("t", config: config)
            let w = try TopicWriter(directory: data, topic: "t", fsync: .always, clock: ManualClock())
            w.groupThresholdBytes = 2000
            return (fs, data, w)
        }
        let operation: (TopicWriter, inout [Int]) throws -> Void = { w, cuts in
            for (i, r) in input.enumerated() {
                try r.value.withUnsafeBytes { v in
                    try r.key!.withUnsafeBytes { k in try w.append(key: k, value: v, timestamp: r.timestamp, line: i + 1) }
                }
                cuts.append(w.groupsCut)
            }
            try w.close()
        }
        let (probeFS, _, probe) = try prepare(0)
        let before = probeFS.steps
        var probeCuts: [Int] = []
        try operation(probe, &probeCuts)
        let total = probeFS.steps - before
        #expect(probeCuts.last ?? 0 >= 5, "the input makes several groups")
        let routed: [Int32: [ReferenceRecord]] = Dictionary(grouping: input) { r in r.key!.withUnsafeBytes { Partitioner.partition(forKey: $0, partitions: 3) } }
        for kind in [SimulatedFileSystem.Restart.processKill, .powerLoss] {
            for k in 1...total {
                let (fs, data, w) = try prepare(UInt64(k) * 31 + (kind == .powerLoss ? 1 : 0))
                fs.inject(.crash, atStep: fs.steps + k)
                var cuts: [Int] = []
                do { try operation(w, &cuts) } catch { #expect(fs.isCrashed, "failed without a crash: \(error)") }
                let acknowledged = w.acknowledgedRecords
                let context = "group crash at step \(k) of \(total), \(kind), \(acknowledged) acknowledged"
                fs.restart(kind)
                _ = try TopicWriter(directory: data, topic: "t", fsync: .always, clock: ManualClock())
                var stored: [Int32: [ReferenceRecord]] = [:]
                for p: Int32 in 0..<3 {
                    stored[p] = try PartitionReader(directory: data, topicPartition: TopicPartition("t", p)).readAll(from: .zero).records.map(\.record)
                    let want = routed[p] ?? []
                    #expect(Array(want.prefix(stored[p]!.count)) == stored[p]!, "\(context): partition \(p) is a prefix of its input")
                }
                let count = stored.values.reduce(0) { $0 + $1.count }
                #expect(count >= acknowledged, "\(context): \(count) stored")
                let acknowledgedShare = Dictionary(grouping: input.prefix(acknowledged)) { r in r.key!.withUnsafeBytes { Partitioner.partition(forKey: $0, partitions: 3) } }
                for p: Int32 in 0..<3 {
                    #expect(stored[p]!.count >= (acknowledgedShare[p]?.count ?? 0), "\(context): partition \(p) lost acknowledged records")
                }
            }
        }
    }
}

/// Creating a topic, crashed after each of its I/O steps and brought back by a kill -9 or
/// a power loss: the topic either does not exist, or exists with every partition there
/// and writable — its config (the name that makes it exist) is durable only after all
/// of its partitions are, since one fsync of the topic directory names them all.
@Suite struct SimulatedTopicCreationCrashTests {
    @Test func aTopicExistsWholeOrNotAtAll() throws {
        let config = TopicConfig(partitions: 5)
        let probe = SimulatedFileSystem(seed: 0)
        try DataDirectory(root: "/disk/data", fileSystem: probe).createTopic("t", config: config)
        let steps = probe.steps
        #expect(steps > 0)
        var existed = 0
        for kind in [SimulatedFileSystem.Restart.processKill, .powerLoss] {
            for k in 1...steps {
                let fs = SimulatedFileSystem(seed: UInt64(k) &* 7919 &+ (kind == .powerLoss ? 1 : 0))
                let data = DataDirectory(root: "/disk/data", fileSystem: fs)
                fs.inject(.crash, atStep: k)
                do { try data.createTopic("t", config: config) } catch {}
                fs.restart(kind)
                let context = "crash at step \(k) of \(steps), \(kind)"
                guard data.topicExists("t") else {
                    // Not created: creating it again works.
                    try data.createTopic("t", config: config)
                    #expect(data.topicExists("t"), "\(context)")
                    continue
                }
                existed += 1
                for p in 0..<config.partitions {
                    let writer = try PartitionWriter(directory: data, topicPartition: TopicPartition("t", p), config: config, fsync: .always, clock: ManualClock())
                    #expect(writer.nextOffset == Offset(0), "\(context): partition \(p)")
                }
            }
        }
        #expect(existed > 0, "some crash points come after the topic exists")
    }
}
