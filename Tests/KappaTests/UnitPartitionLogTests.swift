import Testing
@testable import KappaCore
@testable import KappaFormat
@testable import KappaLog
import KappaTesting

/// Single scenarios of one partition on disk: recovery of torn and corrupt tails,
/// rebuildable indexes, retention at its edges, PartitionStatus, and readers that report
/// damage with evidence. (ModelLogTests drives the same code with random operations.)
@Suite struct UnitPartitionLogTests {
    static let tp = TopicPartition("t", 0)
    static let minute: Int64 = 60_000
    static let t0Millis: Int64 = 1_457_741_907_000

    /// A topic "t" with one partition under a new temporary directory.
    final class Fixture {
        let dir: TemporaryDirectory
        let data: DataDirectory
        let config: TopicConfig
        let clock: ManualClock
        let coding = BatchCoding()
        var partitionPath: String { data.partitionPath(UnitPartitionLogTests.tp) }

        init(_ config: TopicConfig, clockMillis: Int64 = UnitPartitionLogTests.t0Millis) throws {
            dir = try TemporaryDirectory(prefix: "kappa-unit-log")
            data = dir.dataDirectory
            self.config = config
            clock = ManualClock(startNanos: clockMillis * 1_000_000)
            try data.createTopic("t", config: config)
        }

        func writer() throws -> PartitionWriter {
            try PartitionWriter(directory: data, topicPartition: UnitPartitionLogTests.tp, config: config, fsync: .never, clock: clock)
        }

        /// Appends one batch per element of `batches`; returns the offsets given.
        @discardableResult
        func append(_ w: PartitionWriter, _ batches: [[ReferenceRecord]]) throws -> ClosedRange<Offset>? {
            let sealed = SealedBatches()
            for b in batches { sealed.seal(b, compression: config.codec, codec: coding.codec) }
            return try w.append(sealed)
        }

        func readAll(from offset: Offset = .zero) throws -> [ReadRecord] {
            try PartitionReader(directory: data, topicPartition: UnitPartitionLogTests.tp).readAll(from: offset).records
        }

        func bases() throws -> [Offset] { try SegmentFiles.bases(in: partitionPath) }
        func logPath(_ base: Offset) -> String { SegmentFiles.logPath(partitionPath, base) }
        func size(_ path: String) throws -> Int64 { try File(path: path, mode: .readOnly).size() }
    }

    static func record(_ millis: Int64, bytes: Int = 10, fill: UInt8 = 0x61) -> ReferenceRecord {
        ReferenceRecord(key: nil, value: [UInt8](repeating: fill, count: bytes), timestamp: TimestampNanos(millis: millis))
    }

    // MARK: - Retention by age and the time index

    /// The largest timestamp of a segment must survive a clean close and reopen: retention
    /// by age compares it with the wall clock. Here the segment's largest time sits in a
    /// batch between two offset-index entries (a device clock ahead), and later batches
    /// are older. After a reopen and a roll, the segment must be kept as long as that
    /// largest time is within retention.
    @Test func cleanReopenKeepsTheSegmentsLargestTimeForRetention() throws {
        let retention = 60 * Self.minute
        let f = try Fixture(TopicConfig(partitions: 1, compression: .none, retentionMillis: retention, segmentBytes: 16384))
        let base = Self.t0Millis
        do {
            let w = try f.writer()
            // Batch 0 at position 0 (index entry), batch 1 holds the largest time and
            // brings the bytes since the entry past Limits.indexIntervalBytes, so batch 2
            // gets the next index entry; batches 2 and 3 are older than batch 1.
            try f.append(w, [[Self.record(base, bytes: 3000)]])
            try f.append(w, [[Self.record(base + 10 * Self.minute, bytes: 3000)]])
            try f.append(w, [[Self.record(base + 1 * Self.minute, bytes: 100)]])
            try f.append(w, [[Self.record(base + 2 * Self.minute, bytes: 100)]])
        }
        let entries = try OffsetIndex.load(path: SegmentFiles.indexPath(f.partitionPath, .zero), base: .zero, logBytes: 1 << 20)
        #expect(entries.map(\.offset) == [Offset(0), Offset(2)], "the scenario needs index entries at batches 0 and 2")
        // Reopen (what every new `kappa produce` does), then roll with a big batch.
        let w = try f.writer()
        #expect(w.recoveries.isEmpty)
        // 69 minutes after the largest time's batch-2 neighbour, 59 after the largest time:
        // the old segment is within retention by its largest timestamp.
        f.clock.set(nanos: (base + 10 * Self.minute + retention - Self.minute) * 1_000_000)
        try f.append(w, [[Self.record(base + 11 * Self.minute, bytes: 17000)]])
        #expect(try f.bases() == [Offset(0), Offset(4)], "segment 0 (largest time \(base + 10 * Self.minute)) was deleted by age")
        let maxMillis = try TimeIndex.load(path: SegmentFiles.timeIndexPath(f.partitionPath, .zero), base: .zero).last?.timestampMillis
        #expect(maxMillis == base + 10 * Self.minute, "the closed segment's time index ends at \(String(describing: maxMillis))")
        // Later, by its largest time, it goes.
        f.clock.advance(byMillis: 2 * Self.minute)
        try f.append(w, [[Self.record(base + 12 * Self.minute, bytes: 17000)]])
        #expect(try f.bases().first == Offset(4))
    }

    /// Retention by age without a reopen: the same scenario keeps segment 0 (control for
    /// the test above).
    @Test func retentionByAgeUsesTheSegmentsLargestTime() throws {
        let retention = 60 * Self.minute
        let f = try Fixture(TopicConfig(partitions: 1, compression: .none, retentionMillis: retention, segmentBytes: 16384))
        let base = Self.t0Millis
        let w = try f.writer()
        try f.append(w, [[Self.record(base, bytes: 3000)]])
        try f.append(w, [[Self.record(base + 10 * Self.minute, bytes: 3000)]])
        try f.append(w, [[Self.record(base + 1 * Self.minute, bytes: 100)]])
        try f.append(w, [[Self.record(base + 2 * Self.minute, bytes: 100)]])
        f.clock.set(nanos: (base + 10 * Self.minute + retention) * 1_000_000)
        try f.append(w, [[Self.record(base + 11 * Self.minute, bytes: 17000)]])
        #expect(try f.bases() == [Offset(0), Offset(4)], "age exactly equal to retention is kept")
        f.clock.advance(byMillis: 1)
        try f.append(w, [[Self.record(base + 12 * Self.minute, bytes: 17000)]])
        #expect(try f.bases() == [Offset(4), Offset(5)], "one millisecond past retention is deleted")
        #expect(try f.readAll().map(\.offset) == [Offset(4), Offset(5)])
    }

    @Test func retentionByBytesDeletesOldestWholeSegments() throws {
        // 5 segments of ~4 KiB; keep at least 10000 bytes.
        let f = try Fixture(TopicConfig(partitions: 1, compression: .none, retentionBytes: 10000, segmentBytes: 4096))
        let w = try f.writer()
        for i in 0..<12 { try f.append(w, [[Self.record(Self.t0Millis + Int64(i), bytes: 1900)]]) }
        // Opening a writer enforces retention, after which its rule holds exactly.
        _ = try f.writer()
        let bases = try f.bases()
        let sizes = try bases.map { try f.size(f.logPath($0)) }
        let total = sizes.reduce(0, +)
        #expect(total >= 10000, "retention deleted below its limit: \(sizes)")
        #expect(total - sizes[0] < 10000, "the oldest segment should have gone: \(sizes)")
        let start = bases[0]
        #expect(try f.readAll().map(\.offset) == (start.rawValue..<12).map { Offset($0) })
        let status = try PartitionStatus.read(f.data, Self.tp)
        #expect(status.startOffset == start)
        #expect(status.endOffset == Offset(12))
        #expect(status.segments == bases.count)
    }

    // MARK: - Recovery

    @Test func tornTailIsTruncatedReportedAndOverwritten() throws {
        let f = try Fixture(TopicConfig(partitions: 1, compression: .lz4))
        let records = (0..<3).map { Self.record(Self.t0Millis + $0, bytes: 50, fill: UInt8($0)) }
        do {
            let w = try f.writer()
            for r in records { try f.append(w, [[r]]) }
        }
        let path = f.logPath(.zero)
        let goodBytes = try f.size(path)
        // Half of a fourth batch, as a crash mid-write leaves it.
        let torn = f.coding.encode([Self.record(Self.t0Millis + 9, bytes: 500)], compression: .lz4, baseOffset: Offset(3))
        try File(path: path, mode: .readWrite).write(Array(torn.prefix(torn.count / 2)), at: goodBytes)
        // A reader before recovery sees only the whole batches.
        #expect(try f.readAll().map(\.record) == records)
        #expect(try PartitionStatus.read(f.data, Self.tp).endOffset == Offset(3))

        let w = try f.writer()
        #expect(w.recoveries.count == 1)
        if let r = w.recoveries.first {
            #expect(r.offset == Offset(3))
            #expect(r.position == FilePosition(goodBytes))
            #expect(r.bytesDropped == Int64(torn.count / 2))
            #expect(r.path == path)
        }
        #expect(try f.size(path) == goodBytes)
        #expect(w.nextOffset == Offset(3))
        let next = Self.record(Self.t0Millis + 10, bytes: 20)
        #expect(try f.append(w, [[next]]) == Offset(3)...Offset(3))
        #expect(try f.readAll().map(\.record) == records + [next])
    }

    /// A batch damaged after it was written and published (a flipped bit on the disk) is
    /// not a torn tail: a writer opening in the same boot trusts what was published, cuts
    /// nothing and appends after it; a reader reports the damage with its evidence
    /// (offset, file, position) and returns nothing from that batch.
    @Test func damagedFinalBatchIsReportedNeverTruncated() throws {
        let f = try Fixture(TopicConfig(partitions: 1, compression: .none))
        do {
            let w = try f.writer()
            for i in 0..<3 { try f.append(w, [[Self.record(Self.t0Millis + Int64(i), bytes: 40)]]) }
        }
        let path = f.logPath(.zero)
        let size = try f.size(path)
        let file = try File(path: path, mode: .readWrite)
        var last = try file.read(count: 1, at: size - 5)
        last[0] ^= 0xFF
        try file.write(last, at: size - 5)
        let w = try f.writer()
        #expect(w.recoveries.isEmpty)
        #expect(w.nextOffset == Offset(3))
        #expect(try f.size(path) == size, "nothing was cut")
        try f.append(w, [[Self.record(Self.t0Millis + 3, bytes: 40)]])
        let reader = try PartitionReader(directory: f.data, topicPartition: Self.tp)
        var seen: [Offset] = []
        #expect {
            while let b = try reader.nextBatch() { seen.append(b.header.baseOffset) }
        } throws: { error in
            guard let e = error as? KappaError else { return false }
            return e.code == .corruptData && e.offset == Offset(2) && e.path == path && e.position == FilePosition(size / 3 * 2)
        }
        #expect(seen == [Offset(0), Offset(1)])
    }

    @Test func damagedFirstBatchIsReportedNeverTruncated() throws {
        let f = try Fixture(TopicConfig(partitions: 1, compression: .none))
        do {
            let w = try f.writer()
            for i in 0..<3 { try f.append(w, [[Self.record(Self.t0Millis + Int64(i), bytes: 40)]]) }
        }
        let path = f.logPath(.zero)
        let size = try f.size(path)
        let file = try File(path: path, mode: .readWrite)
        // The first batch's last value byte.
        let batchBytes = size / 3
        var byte = try file.read(count: 1, at: batchBytes - 2)
        byte[0] ^= 0xFF
        try file.write(byte, at: batchBytes - 2)
        let w = try f.writer()
        #expect(w.recoveries.isEmpty)
        #expect(try f.size(path) == size, "nothing may be truncated")
        // A reader reports the damage with its evidence and returns no data from it.
        let reader = try PartitionReader(directory: f.data, topicPartition: Self.tp)
        #expect {
            _ = try reader.nextBatch()
        } throws: { error in
            guard let e = error as? KappaError else { return false }
            return e.code == .corruptData && e.topicPartition == Self.tp && e.offset == Offset(0) && e.path == path && e.position == .zero
        }
    }

    @Test func readerReportsCorruptionInAClosedSegment() throws {
        let f = try Fixture(TopicConfig(partitions: 1, compression: .lz4, segmentBytes: 4096))
        let w = try f.writer()
        var rng = SeededRandom(seed: 0xC022_0001)
        for i in 0..<6 {
            // Random values: LZ4 must not shrink them below a segment's worth.
            let a = ReferenceRecord(key: nil, value: rng.bytes(1500), timestamp: TimestampNanos(millis: Self.t0Millis + Int64(i)))
            let b = ReferenceRecord(key: nil, value: rng.bytes(1000), timestamp: TimestampNanos(millis: Self.t0Millis))
            try f.append(w, [[a], [b]])
        }
        let bases = try f.bases()
        try #require(bases.count >= 3)
        let victim = bases[1]
        let file = try File(path: f.logPath(victim), mode: .readWrite)
        var byte = try file.read(count: 1, at: 70)
        byte[0] ^= 0x01
        try file.write(byte, at: 70)
        let reader = try PartitionReader(directory: f.data, topicPartition: Self.tp)
        try reader.seek(to: .zero)
        var seen: [Offset] = []
        #expect {
            while let b = try reader.nextBatch() { seen.append(b.header.baseOffset) }
        } throws: { error in
            guard let e = error as? KappaError else { return false }
            return e.code == .corruptData && e.offset == victim && e.path == f.logPath(victim)
        }
        #expect(seen.allSatisfy { $0 < victim }, "no batch at or after the damage was returned: \(seen)")
    }

    // MARK: - Indexes are rebuildable

    @Test func lostIndexesAreRebuiltIdentically() throws {
        let f = try Fixture(TopicConfig(partitions: 1, compression: .none, segmentBytes: 65536))
        var rng = SeededRandom(seed: 0x1D7_0001)
        var written: [ReferenceRecord] = []
        do {
            let w = try f.writer()
            for i in 0..<80 {
                let batch = (0..<rng.int(1...5)).map { _ in Self.record(Self.t0Millis + Int64(i), bytes: rng.int(10...400), fill: UInt8(i)) }
                written += batch
                try f.append(w, [batch])
            }
        }
        let bases = try f.bases()
        let last = bases.last!
        let indexPath = SegmentFiles.indexPath(f.partitionPath, last)
        let original = try File(path: indexPath, mode: .readOnly).readAll()
        #expect(original.count >= 3 * OffsetIndex.entryBytes, "the scenario needs several index entries")
        for base in bases {
            try FS.remove(SegmentFiles.indexPath(f.partitionPath, base))
            try FS.remove(SegmentFiles.timeIndexPath(f.partitionPath, base))
        }
        // Reads work without any index.
        #expect(try f.readAll().map(\.record) == written)
        try #require(written.count > 100)
        #expect(try f.readAll(from: Offset(100)).map(\.record) == Array(written[100...]))
        #expect(try PartitionStatus.read(f.data, Self.tp).endOffset == Offset(Int64(written.count)))
        // A writer rebuilds the active segment's index as it was.
        let w = try f.writer()
        #expect(w.recoveries.isEmpty)
        #expect(try File(path: indexPath, mode: .readOnly).readAll() == original)
        let next = Self.record(Self.t0Millis + 99)
        #expect(try f.append(w, [[next]]) == Offset(Int64(written.count))...Offset(Int64(written.count)))
        #expect(try f.readAll(from: Offset(Int64(written.count - 1))).map(\.record) == [written.last!, next])
    }

    /// Every offset can be read from, whichever index entry the seek starts at.
    @Test func seekFindsEveryOffset() throws {
        let f = try Fixture(TopicConfig(partitions: 1, compression: .lz4, segmentBytes: 32768))
        var rng = SeededRandom(seed: 0x1D7_0002)
        var written: [ReferenceRecord] = []
        let w = try f.writer()
        for i in 0..<60 {
            let batch = (0..<rng.int(1...6)).map { _ in ReferenceRecord(key: nil, value: rng.bytes(rng.int(0...600)), timestamp: TimestampNanos(millis: Self.t0Millis + Int64(i))) }
            written += batch
            try f.append(w, [batch])
        }
        #expect(try f.bases().count > 1)
        let reader = try PartitionReader(directory: f.data, topicPartition: Self.tp)
        for target in stride(from: 0, through: written.count, by: 7) {
            let got = try reader.readAll(from: Offset(Int64(target)))
            #expect(got.seek == .positioned)
            #expect(got.records.map(\.record) == Array(written[target...]), "from \(target)")
            #expect(got.records.first?.offset ?? Offset(Int64(written.count)) == Offset(Int64(target)))
        }
    }

    // MARK: - Status

    @Test func statusOfAnEmptyAndAGrowingPartition() throws {
        let f = try Fixture(TopicConfig(partitions: 1, compression: .none, segmentBytes: 4096))
        let empty = try PartitionStatus.read(f.data, Self.tp)
        #expect(empty.startOffset == .zero && empty.endOffset == .zero && empty.segments == 0 && empty.bytes == 0)
        let w = try f.writer()
        let opened = try PartitionStatus.read(f.data, Self.tp)
        #expect(opened.startOffset == .zero && opened.endOffset == .zero && opened.segments == 1)
        var end: Int64 = 0
        for i in 0..<20 {
            let n = i % 4 + 1
            try f.append(w, [(0..<n).map { _ in Self.record(Self.t0Millis, bytes: 700) }])
            end += Int64(n)
            let s = try PartitionStatus.read(f.data, Self.tp)
            #expect(s.endOffset == Offset(end), "after append \(i)")
            #expect(s.segments == (try f.bases().count))
        }
        #expect(try PartitionStatus.read(f.data, Self.tp).segments > 1)
    }

    @Test func missingPartitionIsNotFound() throws {
        let f = try Fixture(TopicConfig(partitions: 1))
        #expect {
            _ = try PartitionStatus.read(f.data, TopicPartition("t", 1))
        } throws: { ($0 as? KappaError)?.code == .notFound }
    }

    // MARK: - A reader behind retention

    /// A follower whose next records were deleted by retention is told so, as something
    /// other than corruption (Kafka answers OFFSET_OUT_OF_RANGE): the log is fine, the
    /// reader is late. It must never skip silently.
    @Test func followerOverrunByRetentionIsNotToldTheLogIsCorrupt() throws {
        let f = try Fixture(TopicConfig(partitions: 1, compression: .none, retentionBytes: 4096, segmentBytes: 4096))
        let w = try f.writer()
        try f.append(w, [[Self.record(Self.t0Millis, bytes: 3000)]])
        let follower = try PartitionReader(directory: f.data, topicPartition: Self.tp)
        try follower.seek(to: .zero)
        #expect(try follower.nextBatch()?.header.baseOffset == Offset(0))
        #expect(try follower.nextBatch()?.header.baseOffset == nil)
        // Offsets 1...4 each get a segment of ~3 KiB; retention (after each append) keeps
        // at least 4 KiB, so only the segments of offsets 3 and 4 stay.
        for i in 1...4 { try f.append(w, [[Self.record(Self.t0Millis + Int64(i), bytes: 3000)]]) }
        #expect(try f.bases() == [Offset(3), Offset(4)])
        do throws(KappaError) {
            let next = try follower.nextBatch()
            Issue.record("the follower expected offset 1 and got \(String(describing: next?.header.baseOffset))")
        } catch {
            #expect(error.code != .corruptData, "reported as corruption: \(error)")
        }
    }
}
