#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Testing
@testable import KappaCore
@testable import KappaFormat
@testable import KappaLog
import KappaTesting

/// The real partition log driven by a seeded stream of random operations and checked
/// after every step against `ReferenceLog`: appends through `TopicWriter` and through
/// `PartitionWriter` (two writers on one partition), reads from random offsets, a
/// follower tailing the log, wall-clock steps that age segments out, writer restarts
/// (recovery of a clean log must change nothing), lost index files, and kill -9 of every
/// process between operations (and a power loss, when every append is fsynced): nothing
/// acknowledged may be lost and nothing needs repair. It runs on `SimulatedFileSystem`
/// (in memory, so it is fast, and it can crash the machine).
///
/// A failure names its seed and the last operations; `ModelLogTests.run(seed:operations:)`
/// replays it. Environment knobs for longer hunts (not needed for a normal run):
/// `KAPPA_MODEL_SWEEP=N` runs the first N seeds instead of 20, `KAPPA_MODEL_STATS=1`
/// prints what each seed exercised.
@Suite struct ModelLogTests {
    static let seeds: [UInt64] = {
        if let v = getenv("KAPPA_MODEL_SWEEP"), let n = Int(String(cString: v)) { return (0..<n).map { 0x5EED_0000 + UInt64($0) * 7919 } }
        return (0..<20).map { 0x5EED_0000 + UInt64($0) * 7919 }
    }()

    @Test(arguments: seeds)
    func randomOperationsMatchTheModel(_ seed: UInt64) throws {
        try Self.run(seed: seed, operations: 300)
    }

    static func run(seed: UInt64, operations: Int) throws {
        let fs = SimulatedFileSystem(seed: seed)
        fs.recordsSteps = false
        let harness = try LogHarness(seed: seed, fileSystem: fs)
        for i in 0..<operations {
            try harness.step(i)
            if harness.failures > 0 { break }
        }
        if Environment.statsWanted { print("model \(harness.setup): \(harness.stats)") }
    }
}

enum Environment {
    /// KAPPA_CRASH_STEPS=1 prints the I/O steps each crash scenario crashes at.
    static let crashStepsWanted: Bool = {
        guard let v = getenv("KAPPA_CRASH_STEPS") else { return false }
        return String(cString: v) == "1"
    }()

    /// KAPPA_MODEL_STATS=1 prints what each seed exercised (to check coverage).
    static let statsWanted: Bool = {
        guard let v = getenv("KAPPA_MODEL_STATS") else { return false }
        return String(cString: v) == "1"
    }()
}

/// Counts of what a run exercised.
struct HarnessStats: CustomStringConvertible {
    var operations: [String: Int] = [:]
    var recordsDeleted = 0
    var maxSegments = 0
    var followerRestarts = 0
    var readRecords = 0
    var description: String {
        "ops \(operations.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")), deleted \(recordsDeleted), "
            + "max segments \(maxSegments), follower restarts \(followerRestarts), records read \(readRecords)"
    }
}

/// The state of one model run: the real log under `root`, the model beside it.
final class LogHarness {
    enum RetentionMode: CaseIterable { case none, bytes, age, both }

    let seed: UInt64
    var rng: SeededRandom
    let data: DataDirectory
    let clock = ManualClock()
    let topic = "events"
    let config: TopicConfig
    let mode: RetentionMode
    let fsync: FsyncPolicy
    let sealInBackground: Bool
    let writeThresholdBytes: Int
    let bulkAllowed: Bool
    let partitions: Int

    var model: ReferenceLog
    /// Every record ever appended, by partition and offset (the model drops deleted ones;
    /// a follower may still read them from a segment it holds open).
    var history: [[ReferenceRecord]]
    /// Offsets at which a batch begins, per partition. Segment bases and the start offset
    /// must be among them: retention deletes whole segments of whole batches.
    var batchStarts: [Set<Offset>]
    /// Builders fed the same records as the TopicWriter's, to know where its batches break.
    var shadow: [RecordBatchBuilder]
    var roundRobin = 0

    var topicWriter: TopicWriter?
    var partitionWriters: [Int: PartitionWriter] = [:]
    var readers: [Int: PartitionReader] = [:]
    var followers: [Int: PartitionReader] = [:]
    var followerNext: [Offset]
    var indexesDeletedSinceReopen = false
    var closedSegmentsChecked: [Set<Offset>]

    let codec = LZ4Codec()
    let scratch = ByteWriter(capacity: 1 << 16)
    var step = 0
    var operation = "open"
    var recent: [String] = []
    private(set) var failures = 0
    var stats = HarnessStats()

    let fs: SimulatedFileSystem

    init(seed: UInt64, fileSystem: SimulatedFileSystem) throws {
        self.seed = seed
        rng = SeededRandom(seed: seed)
        fs = fileSystem
        data = DataDirectory(root: "/model/data", fileSystem: fileSystem)
        partitions = rng.int(1...3)
        mode = RetentionMode.allCases[Int(seed % 4)]
        let retentionBytes: Int64? = (mode == .bytes || mode == .both) ? Int64(rng.int(6000...60000)) : nil
        let retentionMillis: Int64? = (mode == .age || mode == .both) ? Int64(rng.int(30...1440)) * 60_000 : nil
        let segmentBytes = Int64([4096, 8192, 16384, 65536][rng.int(0...3)])
        let segmentMillis = [Int64(3_600_000), 86_400_000, TopicConfig.segmentMillisDefault][rng.int(0...2)]
        config = TopicConfig(partitions: Int32(partitions), compression: rng.chance(50) ? .lz4 : .none,
                             retentionMillis: retentionMillis, retentionBytes: retentionBytes,
                             segmentBytes: segmentBytes, segmentMillis: segmentMillis)
        fsync = [FsyncPolicy.never, .never, .interval(millis: 1000), .always][rng.int(0...3)]
        sealInBackground = rng.chance(50)
        writeThresholdBytes = [8 << 10, 64 << 10, 1 << 20][rng.int(0...2)]
        bulkAllowed = rng.chance(30)
        model = ReferenceLog(partitions: partitions)
        history = Array(repeating: [], count: partitions)
        batchStarts = Array(repeating: [.zero], count: partitions)
        shadow = []
        followerNext = Array(repeating: .zero, count: partitions)
        closedSegmentsChecked = Array(repeating: [], count: partitions)
        shadow = (0..<partitions).map { _ in RecordBatchBuilder(compression: config.codec) }
        try data.createTopic(topic, config: config)
        try openTopicWriter()
    }

    var setup: String {
        "seed \(seed) (partitions \(partitions), \(config.compression), segment \(config.segmentBytes) B / \(config.segmentMillis) ms, "
            + "retention \(mode) bytes \(config.retentionBytes.map(String.init) ?? "-") ms \(config.retentionMillis.map(String.init) ?? "-"), "
            + "fsync \(fsync), background \(sealInBackground), threshold \(writeThresholdBytes))"
    }

    /// Records a failure with the seed, the step and the last few operations.
    func check(_ condition: Bool, _ message: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard !condition else { return }
        failures += 1
        Issue.record("\(message())\n  at step \(step) (\(operation)), \(setup)\n  recent: \(recent.suffix(8).joined(separator: "; "))",
                     sourceLocation: sourceLocation)
    }

    func tp(_ p: Int) -> TopicPartition { TopicPartition(topic, Int32(p)) }

    // MARK: - Operations

    func step(_ i: Int) throws {
        step = i
        let roll = rng.int(0...99)
        switch roll {
        case 0..<28: try appendViaTopicWriter()
        case 28..<42: try appendViaPartitionWriter()
        case 42..<62: try readFromRandomOffset()
        case 62..<72: try followTail()
        case 72..<82: advanceClock()
        case 82..<87: try reopen()
        case 87..<89: try crashBetweenOperations()
        case 89..<94: try deleteIndexes()
        case 94..<97 where bulkAllowed: try bulkAppend()
        default: try appendViaTopicWriter()
        }
        recent.append(operation)
        stats.operations[String(operation.prefix { $0 != " " }), default: 0] += 1
        try checkInvariants()
    }

    func openTopicWriter() throws {
        let w = try TopicWriter(directory: data, topic: topic, fsync: fsync, clock: clock, sealInBackground: sealInBackground)
        w.groupThresholdBytes = writeThresholdBytes
        topicWriter = w
        roundRobin = 0
        check(w.recoveries.isEmpty, "a clean log needed recovery: \(w.recoveries)")
    }

    func randomKey() -> [UInt8]? {
        rng.chance(15) ? nil : Array("u\(100_000 + rng.int(1...60))".utf8)
    }

    func randomRecord(key: [UInt8]?? = nil) -> ReferenceRecord {
        let k = key ?? randomKey()
        let value: [UInt8]
        switch rng.int(0...9) {
        case 0: value = []
        case 1...5: value = Array(#"{"event_type":"ride_completed","user_id":"u\#(rng.int(1...60))","fare":\#(rng.int(3...90)).\#(rng.int(10...99))}"#.utf8)
        case 6...8: value = rng.bytes(rng.int(1...200))
        default: value = rng.bytes(rng.int(200...1500))
        }
        // Event times near the wall clock, out of order, with nanoseconds; a few backfilled.
        var t = clock.nowNanos() - Int64(rng.int(0...900_000)) * 1_000_000 + Int64(rng.int(0...999_999))
        if rng.chance(5) { t -= Int64(rng.int(1...72)) * 3_600_000_000_000 }
        // A device with its clock ahead: the segment's largest time is then not its last.
        if rng.chance(3) { t += Int64(rng.int(1...360)) * 60_000_000_000 }
        let headers = rng.chance(10) ? [RecordHeader(key: "lineage", value: rng.bytes(rng.int(0...12)))] : []
        return ReferenceRecord(key: k, value: value, timestamp: TimestampNanos(t), headers: headers)
    }

    /// Appends through the TopicWriter (routing by key), mirroring its batching.
    func appendRecords(_ records: [ReferenceRecord]) throws {
        let w = topicWriter!
        var touched = Set<Int>()
        for r in records {
            let cutsBefore = w.groupsCut
            let p: Int32 = try r.value.withUnsafeBytes { value in
                if let key = r.key {
                    return try key.withUnsafeBytes { try w.append(key: $0, value: value, timestamp: r.timestamp, headers: r.headers) }
                }
                return try w.append(key: nil, value: value, timestamp: r.timestamp, headers: r.headers)
            }
            let expected: Int32
            if let key = r.key {
                expected = key.withUnsafeBytes { Partitioner.partition(forKey: $0, partitions: Int32(partitions)) }
            } else {
                expected = Int32(roundRobin % partitions)
                roundRobin += 1
            }
            check(p == expected, "record routed to partition \(p), expected \(expected)")
            let pi = Int(p)
            touched.insert(pi)
            if shadow[pi].isEmpty { batchStarts[pi].insert(model.endOffset(pi)) }
            BatchCoding.append(r, to: shadow[pi])
            if shadow[pi].isFull { shadow[pi] = RecordBatchBuilder(compression: config.codec) }
            // A group cut seals every partition's open batch.
            if w.groupsCut != cutsBefore { shadow = (0..<partitions).map { _ in RecordBatchBuilder(compression: config.codec) } }
            model.append([r], partition: pi)
            history[pi].append(r)
        }
        try w.flush()
        shadow = (0..<partitions).map { _ in RecordBatchBuilder(compression: config.codec) }
        for p in touched {
            check(w.nextOffsets[p] == model.endOffset(p), "partition \(p): writer's next offset \(w.nextOffsets[p]), model end \(model.endOffset(p))")
        }
    }

    func appendViaTopicWriter() throws {
        let n = rng.int(1...40)
        operation = "topic append \(n)"
        clock.advance(byMillis: Int64(rng.int(0...5000)))
        try appendRecords((0..<n).map { _ in randomRecord() })
    }

    /// Enough records under one key to fill whole batches (Limits.batchTargetBytes), so
    /// that full batches are sealed (in the background when so configured).
    func bulkAppend() throws {
        let key = randomKey()
        let n = rng.int(400...1200)
        operation = "bulk append \(n)"
        var records: [ReferenceRecord] = []
        for _ in 0..<n {
            var r = randomRecord(key: .some(key))
            r.value = rng.bytes(rng.int(900...1300))
            records.append(r)
        }
        try appendRecords(records)
    }

    func partitionWriter(_ p: Int) throws -> PartitionWriter {
        if let w = partitionWriters[p] { return w }
        let w = try PartitionWriter(directory: data, topicPartition: tp(p), config: config, fsync: fsync, clock: clock)
        check(w.recoveries.isEmpty, "a clean log needed recovery: \(w.recoveries)")
        partitionWriters[p] = w
        return w
    }

    /// Several sealed batches in one append, through a second writer of the partition.
    func appendViaPartitionWriter() throws {
        let p = rng.int(0...(partitions - 1))
        let batches = rng.int(1...4)
        operation = "partition \(p) append \(batches) batches"
        clock.advance(byMillis: Int64(rng.int(0...5000)))
        let w = try partitionWriter(p)
        let sealed = SealedBatches()
        var all: [ReferenceRecord] = []
        var starts: [Offset] = []
        let first = model.endOffset(p)
        for _ in 0..<batches {
            let records = (0..<rng.int(1...25)).map { _ in randomRecord() }
            starts.append(first + Int64(all.count))
            all += records
            sealed.seal(records, compression: config.codec, codec: codec)
        }
        let range = try w.append(sealed)
        check(range == first...(first + Int64(all.count - 1)), "append gave offsets \(String(describing: range)), model expects \(first)...\(first + Int64(all.count - 1))")
        check(sealed.isEmpty, "append did not empty its SealedBatches")
        for s in starts { batchStarts[p].insert(s) }
        model.append(all, partition: p)
        history[p] += all
    }

    func advanceClock() {
        let millis = [Int64(rng.int(1...60_000)), Int64(rng.int(1...120)) * 60_000, Int64(rng.int(1...48)) * 3_600_000][rng.int(0...2)]
        operation = "clock +\(millis) ms"
        clock.advance(byMillis: millis)
    }

    /// Decodes the batches `reader` returns until it has caught up, checking that each
    /// is a batch that was written. Records below `from` are dropped.
    func drain(_ reader: PartitionReader, partition p: Int, from: Offset) throws -> [ReadRecord] {
        var out: [ReadRecord] = []
        while let batch = try reader.nextBatch() {
            check(batchStarts[p].contains(batch.header.baseOffset), "partition \(p): a batch starts at \(batch.header.baseOffset), where no batch was written")
            var it = try RecordBatchDecoder.records(of: batch.bytes, header: batch.header, codec: codec, scratch: scratch)
            for r in try it.collect() where r.offset >= from { out.append(r) }
        }
        return out
    }

    func compare(_ got: [ReadRecord], _ expected: [(offset: Offset, record: ReferenceRecord)], _ what: String) {
        check(got.count == expected.count, "\(what): read \(got.count) records, model has \(expected.count)"
              + " (read \(got.first?.offset.description ?? "-")...\(got.last?.offset.description ?? "-"),"
              + " model \(expected.first?.offset.description ?? "-")...\(expected.last?.offset.description ?? "-"))")
        for (g, e) in zip(got, expected) where g.offset != e.offset || g.record != e.record {
            check(false, "\(what): at offset \(e.offset) read \(g.offset): \(g.record), model \(e.record)")
            return
        }
    }

    func readFromRandomOffset() throws {
        let p = rng.int(0...(partitions - 1))
        let start = model.startOffset(p), end = model.endOffset(p)
        var target: Offset
        switch rng.int(0...9) {
        case 0: target = Offset(Int64(rng.int(0...Int(start.rawValue))))
        case 1: target = start
        case 2: target = end
        case 3: target = end + 1
        default: target = start + Int64(rng.int(0...Int(end - start)))
        }
        operation = "read partition \(p) from \(target)"
        if readers[p] == nil || rng.chance(20) { readers[p] = try PartitionReader(directory: data, topicPartition: tp(p)) }
        let reader = readers[p]!
        let seek = try reader.seek(to: target)
        if target < start {
            check(seek == .belowStart(logStart: start), "seek to \(target) below start \(start) gave \(seek)")
        } else {
            check(seek == .positioned, "seek to \(target) gave \(seek)")
        }
        let got = try drain(reader, partition: p, from: target)
        stats.readRecords += got.count
        compare(got, model.read(p, from: target), "partition \(p) read from \(target)")
    }

    /// A reader that never seeks again: it must see every record once, in order, even as
    /// segments roll and retention deletes behind it.
    func followTail() throws {
        operation = "follow"
        for p in 0..<partitions {
            if followers[p] == nil {
                let f = try PartitionReader(directory: data, topicPartition: tp(p))
                try f.seek(to: model.startOffset(p))
                followers[p] = f
                followerNext[p] = model.startOffset(p)
            }
            let f = followers[p]!
            let from = followerNext[p]
            let got: [ReadRecord]
            do {
                got = try drain(f, partition: p, from: from)
            } catch {
                // Only acceptable when records it had not read yet were deleted.
                check(from < model.startOffset(p), "partition \(p): follower at \(from) failed though nothing unread was deleted: \(error)")
                followers[p] = nil
                stats.followerRestarts += 1
                continue
            }
            for (i, r) in got.enumerated() {
                let expectedOffset = from + Int64(i)
                guard r.offset == expectedOffset else {
                    check(false, "partition \(p): follower skipped from \(expectedOffset) to \(r.offset)")
                    break
                }
                check(r.record == history[p][Int(r.offset.rawValue)], "partition \(p): follower read \(r.record) at \(r.offset), written \(history[p][Int(r.offset.rawValue)])")
            }
            followerNext[p] = from + Int64(got.count)
            check(followerNext[p] == model.endOffset(p), "partition \(p): follower stopped at \(followerNext[p]), end is \(model.endOffset(p))")
        }
    }

    /// Bytes of each segment's .log and .index (nil when missing), by partition and base.
    func snapshot() throws -> [[Offset: (log: [UInt8], index: [UInt8]?)]] {
        var out: [[Offset: (log: [UInt8], index: [UInt8]?)]] = []
        for p in 0..<partitions {
            let dir = data.partitionPath(tp(p))
            var files: [Offset: (log: [UInt8], index: [UInt8]?)] = [:]
            for base in try SegmentFiles.bases(in: dir, fileSystem: fs) {
                let log = try #require(fs.contents(SegmentFiles.logPath(dir, base)))
                let index = fs.contents(SegmentFiles.indexPath(dir, base))
                files[base] = (log, index)
            }
            out.append(files)
        }
        return out
    }

    /// Closes every writer and reopens: recovery of a clean log changes no byte of any
    /// log (nor, unless index files were lost meanwhile, of any offset index), and
    /// retention at open leaves exactly what its rules keep.
    func reopen() throws {
        operation = "reopen"
        let before = try snapshot()
        topicWriter = nil
        partitionWriters = [:]
        try openTopicWriter()
        let after = try snapshot()
        for p in 0..<partitions {
            check(Set(after[p].keys).isSubset(of: Set(before[p].keys)), "partition \(p): reopening created segments \(Set(after[p].keys).subtracting(before[p].keys))")
            for (base, a) in after[p] {
                guard let b = before[p][base] else { continue }
                check(a.log == b.log, "partition \(p) segment \(base): reopening changed the log (\(b.log.count) -> \(a.log.count) bytes)")
                if !indexesDeletedSinceReopen, let ai = a.index, let bi = b.index {
                    check(ai == bi, "partition \(p) segment \(base): reopening changed the offset index (\(bi.count) -> \(ai.count) bytes)")
                }
            }
            try checkRetentionAfterOpen(p)
        }
        indexesDeletedSinceReopen = false
    }

    /// What `enforceRetention` at open guarantees: the oldest segment, unless it is the
    /// only one, is not expired by either rule.
    func checkRetentionAfterOpen(_ p: Int) throws {
        let dir = data.partitionPath(tp(p))
        let bases = try SegmentFiles.bases(in: dir, fileSystem: fs)
        guard bases.count > 1 else { return }
        try model.advanceStart(p, to: bases[0])
        var total: Int64 = 0
        var first: Int64 = 0
        for (i, base) in bases.enumerated() {
            let size = Int64(try #require(fs.size(SegmentFiles.logPath(dir, base))))
            total += size
            if i == 0 { first = size }
        }
        if let limit = config.retentionBytes {
            check(total - first < limit, "partition \(p): after open the log is \(total) bytes and would be \(total - first) >= \(limit) without its oldest segment")
        }
        if let age = config.retentionMillis {
            let maxMillis = (bases[0].rawValue..<bases[1].rawValue).map { history[p][Int($0)].timestamp.millis }.max() ?? .min
            check(clock.nowMillis - maxMillis <= age, "partition \(p): after open the oldest segment (max time \(maxMillis) ms) is \(clock.nowMillis - maxMillis) ms old, retention \(age)")
        }
    }

    /// kill -9 of every process between operations (and, when every append is fsynced,
    /// a power loss): every acknowledged record stays, and reopening needs no repair.
    func crashBetweenOperations() throws {
        let powerLoss = fsync == .always && !sealInBackground && rng.chance(50)
        operation = powerLoss ? "power loss" : "kill -9"
        fs.restart(powerLoss ? .powerLoss : .processKill)
        // The dead processes' objects go after the restart: their handles are dead, so
        // their deinit cannot sync anything (as after a real kill -9).
        topicWriter = nil
        partitionWriters = [:]
        readers = [:]
        followers = [:]
        try openTopicWriter()
        for p in 0..<partitions { followerNext[p] = model.startOffset(p) }
    }

    func deleteIndexes() throws {
        let p = rng.int(0...(partitions - 1))
        operation = "delete indexes of partition \(p)"
        let dir = data.partitionPath(tp(p))
        for base in try SegmentFiles.bases(in: dir, fileSystem: fs) {
            if rng.chance(60) { try fs.remove(SegmentFiles.indexPath(dir, base)) }
            if rng.chance(60) { try fs.remove(SegmentFiles.timeIndexPath(dir, base)) }
        }
        indexesDeletedSinceReopen = true
    }

    // MARK: - Invariants

    func checkInvariants() throws {
        for p in 0..<partitions {
            let dir = data.partitionPath(tp(p))
            let bases = try SegmentFiles.bases(in: dir, fileSystem: fs)
            let start = bases.first ?? .zero
            var dropped: [(offset: Offset, record: ReferenceRecord)] = []
            do {
                dropped = try model.advanceStart(p, to: start)
            } catch {
                check(false, "\(error)")
            }
            stats.recordsDeleted += dropped.count
            stats.maxSegments = max(stats.maxSegments, bases.count)
            for base in bases {
                check(batchStarts[p].contains(base), "partition \(p): segment base \(base) is not where a batch starts")
            }
            var logBytes: Int64 = 0
            var allBytes: Int64 = 0
            for base in bases {
                logBytes += Int64(fs.size(SegmentFiles.logPath(dir, base)) ?? 0)
                for path in [SegmentFiles.logPath(dir, base), SegmentFiles.indexPath(dir, base), SegmentFiles.timeIndexPath(dir, base)] {
                    allBytes += Int64(fs.size(path) ?? 0)
                }
            }
            switch mode {
            case .none:
                check(start == .zero, "partition \(p): start offset \(start) without retention")
            case .bytes:
                if start > .zero {
                    check(logBytes >= config.retentionBytes!, "partition \(p): segments were deleted but only \(logBytes) bytes remain, retention \(config.retentionBytes!)")
                }
            case .age:
                for d in dropped {
                    let age = clock.nowMillis - d.record.timestamp.millis
                    check(age > config.retentionMillis!, "partition \(p): record \(d.offset) deleted at age \(age) ms, retention \(config.retentionMillis!) ms")
                }
            case .both:
                break
            }
            // "The last entry of a closed segment holds its largest timestamp, which
            // retention by age reads" (TimeIndex). Checked once per closed segment, where
            // the file exists (closed segments' indexes are never rewritten).
            for (i, base) in bases.dropLast().enumerated() where !closedSegmentsChecked[p].contains(base) {
                closedSegmentsChecked[p].insert(base)
                let path = SegmentFiles.timeIndexPath(dir, base)
                guard fs.exists(path) else { continue }
                let last = try TimeIndex.load(path: path, base: base, nextOffset: bases[i + 1], fileSystem: fs).last?.timestampMillis
                let maxMillis = (base.rawValue..<bases[i + 1].rawValue).map { history[p][Int($0)].timestamp.millis }.max()
                check(last == maxMillis, "partition \(p): closed segment \(base)'s time index ends at \(last.map(String.init) ?? "nil") ms, its records' largest time is \(maxMillis.map(String.init) ?? "nil") ms")
            }
            let status = try PartitionStatus.read(data, tp(p))
            check(status.startOffset == start && status.endOffset == model.endOffset(p),
                  "partition \(p): status says \(status.startOffset)..<\(status.endOffset), model \(start)..<\(model.endOffset(p))")
            check(status.segments == bases.count, "partition \(p): status counts \(status.segments) segments, directory has \(bases.count)")
            check(status.bytes == allBytes, "partition \(p): status counts \(status.bytes) bytes, files hold \(allBytes)")
        }
    }
}
