import Testing
@testable import KappaCore
@testable import KappaFormat
@testable import KappaLog
import KappaTesting

/// Write failures that do not stop the machine — a full disk, an I/O error, a short
/// write — injected at every step of writing a topic, and damage to synced bytes:
/// - a failed `TopicWriter` leaves exactly the records it acknowledged (a prefix of the
///   input across all partitions), no torn batch, and says where to resume; resuming
///   there completes the topic with nothing lost or doubled;
/// - a failed `PartitionWriter.append` leaves the files as they were;
/// - a flipped bit in synced data is reported by readers and never cut, also after a
///   power loss (the recovery point covers it); one in an index never is.
@Suite struct SimulatedFaultTests {
    static let config = TopicConfig(partitions: 3, compression: .lz4)
    static let input = (0..<80).map { SimulatedCrashTests.record($0, bytes: 220) }

    static func partition(_ r: ReferenceRecord) -> Int32 { r.key!.withUnsafeBytes { Partitioner.partition(forKey: $0, partitions: 3) } }

    static func machine(seed: UInt64) throws -> (SimulatedFileSystem, DataDirectory) {
        let fs = SimulatedFileSystem(seed: seed)
        let data = DataDirectory(root: "/disk/data", fileSystem: fs)
        try data.createTopic("t", config: config)
        return (fs, data)
    }

    /// Appends `records` (lines numbered from `firstLine`) and closes; the writer's
    /// first error is returned, not thrown.
    static func produce(_ data: DataDirectory, _ records: ArraySlice<ReferenceRecord>, firstLine: Int, fsync: FsyncPolicy,
                        background: Bool) throws -> (writer: TopicWriter?, error: KappaError?) {
        let w: TopicWriter
        do {
            w = try TopicWriter(directory: data, topic: "t", fsync: fsync, clock: ManualClock(), sealInBackground: background)
        } catch let error as KappaError {
            return (nil, error)  // opening (recovering) failed: nothing written
        }
        w.groupThresholdBytes = 2500
        do {
            for (i, r) in records.enumerated() {
                try r.value.withUnsafeBytes { v in
                    try r.key!.withUnsafeBytes { k in try w.append(key: k, value: v, timestamp: r.timestamp, line: firstLine + i) }
                }
            }
            try w.close()
        } catch let error as KappaError {
            return (w, error)
        }
        return (w, nil)
    }

    /// What each partition holds now, and whether every segment file ends where its
    /// published end says (no torn batch left behind).
    static func stored(_ data: DataDirectory) throws -> [Int32: [ReferenceRecord]] {
        var out: [Int32: [ReferenceRecord]] = [:]
        for p: Int32 in 0..<3 {
            let reader = try PartitionReader(directory: data, topicPartition: TopicPartition("t", p))
            out[p] = try reader.readAll(from: .zero).records.map(\.record)
            guard let end = try reader.visibleEnd() else { continue }  // no segment yet: opening failed early
            let log = SegmentFiles.logPath(data.partitionPath(TopicPartition("t", p)), end.segmentBase)
            #expect(try data.fileSystem.openFile(log, mode: .readOnly).size() == end.position.rawValue, "partition \(p): bytes past the published end")
        }
        return out
    }

    static func share(_ records: ArraySlice<ReferenceRecord>) -> [Int32: [ReferenceRecord]] {
        var out: [Int32: [ReferenceRecord]] = [0: [], 1: [], 2: []]
        for r in records { out[partition(r), default: []].append(r) }
        return out
    }

    @Test(arguments: [SimulatedFileSystem.Fault.diskFull, .ioError, .shortWrite], [false, true])
    func failedGroupsLeaveExactlyTheAcknowledgedLinesAndResumeCompletes(_ fault: SimulatedFileSystem.Fault, background: Bool) throws {
        let (probeFS, probeData) = try Self.machine(seed: 0)
        let before = probeFS.steps
        #expect(try Self.produce(probeData, Self.input[...], firstLine: 1, fsync: .always, background: background).error == nil)
        let total = probeFS.steps - before
        var failures = 0
        for k in 1...total {
            let (fs, data) = try Self.machine(seed: UInt64(k))
            fs.inject(fault, atStep: fs.steps + k)
            let (w, error) = try Self.produce(data, Self.input[...], firstLine: 1, fsync: .always, background: background)
            let context = "\(fault) at step \(k) of \(total) (background \(background))"
            guard let error else {
                // A short write of a small pwrite may not fail it (the rest goes in the next).
                #expect(fault == .shortWrite || fs.stepLog.first { $0.number == before + k }?.operation == nil, "\(context): no error")
                continue
            }
            failures += 1
            let acknowledged = w?.acknowledgedRecords ?? 0
            let line = w == nil ? 1 : w!.firstUnacknowledgedLine
            #expect(error.code == .io, "\(context): \(error)")
            if fault == .diskFull || fault == .shortWrite { #expect(error.isDiskFull, "\(context): \(error)") }
            // Exactly the acknowledged records, a prefix of the input across partitions.
            let stored = try Self.stored(data)
            let want = Self.share(Self.input.prefix(acknowledged))
            for p: Int32 in 0..<3 { #expect(stored[p]! == want[p]!, "\(context): partition \(p) holds exactly the first \(acknowledged) records' share") }
            if let line {
                #expect(line == acknowledged + 1, "\(context): resume at line \(line) after \(acknowledged) records")
            } else {
                #expect(acknowledged == Self.input.count, "\(context): no line to resume from, yet \(acknowledged) of \(Self.input.count) written")
            }
            // Room returns: producing from the reported line completes the topic once.
            fs.clearFaults()
            let resumeAt = (line ?? Self.input.count + 1) - 1
            let (_, again) = try Self.produce(data, Self.input[resumeAt...], firstLine: resumeAt + 1, fsync: .always, background: background)
            #expect(again == nil, "\(context): resuming failed: \(String(describing: again))")
            let all = try Self.stored(data)
            let everything = Self.share(Self.input[...])
            for p: Int32 in 0..<3 { #expect(all[p]! == everything[p]!, "\(context): partition \(p) after resuming: every record once") }
        }
        #expect(failures > total / 3, "most steps are writes that can fail: \(failures) of \(total)")
    }

    /// A single partition writer: an append that fails at any step leaves every file as
    /// it was (same bytes, same published end) and the next append works.
    @Test func aFailedAppendIsUndone() throws {
        for fault in [SimulatedFileSystem.Fault.diskFull, .ioError, .shortWrite] {
            var k = 1
            while true {
                let fs = SimulatedFileSystem(seed: UInt64(k))
                let data = DataDirectory(root: "/disk/data", fileSystem: fs)
                let config = TopicConfig(partitions: 1, compression: .none, segmentBytes: 4096)
                try data.createTopic("t", config: config)
                let w = try PartitionWriter(directory: data, topicPartition: SimulatedCrashTests.tp, config: config, fsync: .always, clock: ManualClock())
                let coding = BatchCoding()
                let first = SealedBatches()
                first.seal((0..<10).map { SimulatedCrashTests.record($0) }, compression: .none, codec: coding.codec)
                try w.append(first)
                let dir = data.partitionPath(SimulatedCrashTests.tp)
                let snapshot = try fs.list(dir).sorted().map { ($0, fs.contents(dir + "/" + $0)) }
                let second = SealedBatches()
                for b in 0..<3 { second.seal((0..<6).map { SimulatedCrashTests.record(10 + b * 6 + $0) }, compression: .none, codec: coding.codec) }
                fs.inject(fault, atStep: fs.steps + k)
                let before = fs.steps
                var failed = false
                do { try w.append(second) } catch { failed = true }
                let context = "\(fault) at step \(k)"
                if !failed && fs.steps - before < k { break }  // past the append's last step
                if failed {
                    let now = try fs.list(dir).sorted().map { ($0, fs.contents(dir + "/" + $0)) }
                    #expect(now.map(\.0) == snapshot.map(\.0), "\(context): files \(now.map(\.0)) after the undo, \(snapshot.map(\.0)) before")
                    for ((name, a), (_, b)) in zip(now, snapshot) where name != "lock" && name != RecoveryPoint.fileName {
                        #expect(a == b, "\(context): \(name) differs after the undo")
                    }
                    #expect(second.records == 18, "\(context): the failed batches stay with the caller")
                    fs.clearFaults()
                    try w.append(second)
                }
                let got = try PartitionReader(directory: data, topicPartition: SimulatedCrashTests.tp).readAll(from: .zero).records
                #expect(got.map(\.record) == (0..<28).map { SimulatedCrashTests.record($0) }, "\(context): every record once")
                k += 1
            }
        }
    }

    /// A flipped bit anywhere in synced log bytes (but the leader epoch, which the CRC
    /// does not cover): a reader reports it and returns nothing of that batch; a writer —
    /// in the same boot and after a power loss — cuts nothing; one in the index is never
    /// reported as damage to the log.
    @Test func damageToSyncedBytesIsReportedNeverCut() throws {
        var rng = SeededRandom(seed: 0xDA4A_6E00)
        let config = TopicConfig(partitions: 1, compression: .lz4)
        for trial in 0..<60 {
            let fs = SimulatedFileSystem(seed: UInt64(trial))
            let data = DataDirectory(root: "/disk/data", fileSystem: fs)
            try data.createTopic("t", config: config)
            let coding = BatchCoding()
            let w = try PartitionWriter(directory: data, topicPartition: SimulatedCrashTests.tp, config: config, fsync: .always, clock: ManualClock())
            var records: [ReferenceRecord] = []
            for b in 0..<4 {
                let batch = (0..<25).map { SimulatedCrashTests.record(b * 25 + $0) }
                records += batch
                let sealed = SealedBatches()
                sealed.seal(batch, compression: .lz4, codec: coding.codec)
                try w.append(sealed)
            }
            let dir = data.partitionPath(SimulatedCrashTests.tp)
            let log = SegmentFiles.logPath(dir, .zero)
            let bytes = try #require(fs.contents(log))
            let batches = try SegmentScanner.walkHeaders(try fs.openFile(log, mode: .readOnly), from: .zero, expected: .zero, to: Int64(bytes.count)).batches
            var position: Int
            repeat {
                position = rng.int(0...(bytes.count - 1))
            } while batches.contains { (Int($0.position.rawValue) + RecordBatchLayout.partitionLeaderEpochOffset..<Int($0.position.rawValue) + RecordBatchLayout.magicOffset).contains(position) }
            let victim = try #require(batches.last { Int($0.position.rawValue) <= position })
            fs.flip(log, at: position, mask: UInt8(1 << rng.int(0...7)))
            let damaged = try #require(fs.contents(log))
            for restart in [nil, SimulatedFileSystem.Restart.powerLoss] {
                if let restart { fs.restart(restart) }
                let context = "trial \(trial): bit at \(position) (batch at \(victim.position)), \(restart.map { "\($0)" } ?? "same boot")"
                let reopened = try PartitionWriter(directory: data, topicPartition: SimulatedCrashTests.tp, config: config, fsync: .always, clock: ManualClock())
                #expect(reopened.recoveries.isEmpty, "\(context): \(reopened.recoveries)")
                #expect(fs.contents(log) == damaged, "\(context): the writer changed the log")
                let reader = try PartitionReader(directory: data, topicPartition: SimulatedCrashTests.tp)
                var seen: [ReferenceRecord] = []
                var reported: KappaError?
                do throws(KappaError) {
                    while let batch = try reader.nextRecords(from: .zero, codec: coding.codec, scratch: coding.scratch) {
                        var rs = batch
                        var inBatch: [ReferenceRecord] = []
                        while let r = try rs.next() {
                            inBatch.append(ReferenceRecord(key: r.key.map { Array($0) }, value: Array(r.value), timestamp: r.timestamp))
                        }
                        seen += inBatch
                    }
                } catch {
                    reported = error
                }
                let e = try #require(reported, "\(context): the damage was not reported")
                #expect(e.code == .corruptData && e.offset == victim.baseOffset && e.path == log && e.position == victim.position, "\(context): \(e)")
                #expect(seen.count == Int(victim.baseOffset.rawValue), "\(context): returned \(seen.count) records, the batch starts at \(victim.baseOffset)")
                #expect(seen.allSatisfy { r in records.contains { $0.value == r.value } }, "\(context): nothing invented")
            }
        }
    }
}
