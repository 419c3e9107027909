import Testing
@testable import KappaCore
@testable import KappaFormat
@testable import KappaLog
import KappaTesting

/// The two small per-partition files: their layouts are pinned, every copy round-trips,
/// and anything torn or damaged decodes as nothing (never as a wrong point).
@Suite struct UnitPartitionFilesTests {
    static let point = LogPoint(segmentBase: Offset(1000), position: FilePosition(4096), offset: Offset(1234))

    @Test func recoveryPointLayout() {
        #expect(RecoveryPoint.Layout.crcAt == 40)
        #expect(RecoveryPoint.Layout.contentBytes == 44)
        #expect(RecoveryPoint.Layout.slotBytes == 64 && RecoveryPoint.Layout.slotStride == 512 && RecoveryPoint.Layout.fileBytes == 576)
        let slot = RecoveryPoint(point: Self.point, sequence: 7).encoded()
        #expect(slot.count == 64)
        #expect(Array(slot[0..<4]) == Array("KRPT".utf8))
        #expect(Array(slot[16..<24]) == [0, 0, 0, 0, 0, 0, 0x03, 0xE8], "segment base, big-endian")
        #expect(slot[44...].allSatisfy { $0 == 0 })
    }

    @Test func recoveryPointTakesTheNewestValidCopy() {
        var file = [UInt8](repeating: 0, count: RecoveryPoint.Layout.fileBytes)
        let older = RecoveryPoint(point: Self.point, sequence: 4)
        let newer = RecoveryPoint(point: LogPoint(segmentBase: Offset(1000), position: FilePosition(8192), offset: Offset(1300)), sequence: 5)
        file.replaceSubrange(0..<64, with: older.encoded())
        file.replaceSubrange(512..<576, with: newer.encoded())
        #expect(RecoveryPoint.decode(file: file) == newer)
        // The newer copy torn by a power loss (any byte of its content): the older one.
        for i in 0..<RecoveryPoint.Layout.contentBytes {
            var torn = file
            torn[512 + i] ^= 0x10
            #expect(RecoveryPoint.decode(file: torn) == older, "byte \(i) of the newer copy damaged")
        }
        #expect(RecoveryPoint.decode(file: [UInt8](repeating: 0, count: 576)) == nil, "a new file holds no point")
        #expect(RecoveryPoint.decode(file: []) == nil)
    }

    @Test func publishedEndLayoutAndRoundTrip() {
        #expect(PublishedEnd.Layout.crcAt == 104 && PublishedEnd.Layout.recordBytes == 108)
        let tail = SegmentTail(base: Offset(1000), size: 4096, nextOffset: Offset(1234), indexBytes: 16, timeIndexBytes: 24,
                               bytesSinceIndexEntry: 300, maxTimestampMillis: 1_457_741_907_000, firstBatchMaxTimestampMillis: 1_457_741_900_000,
                               lastTimeIndexMillis: 1_457_741_905_000, lastTimeIndexOffset: Offset(1200))
        let end = PublishedEnd(bootID: BootID(high: 0x0102_0304_0506_0708, low: 9), tail: tail)
        let w = ByteWriter(capacity: 128)
        end.encode(into: w)
        #expect(w.count == 108)
        #expect(Array(w.bytes[0..<4]) == Array("KEND".utf8))
        #expect(PublishedEnd.decode(w.bytes) == end)
        for i in 0..<108 {
            let copy = ByteWriter(capacity: 128)
            copy.append(w.bytes)
            copy.base.storeBytes(of: copy.bytes[i] ^ 0x04, toByteOffset: i, as: UInt8.self)
            #expect(PublishedEnd.decode(copy.bytes) == nil, "byte \(i) damaged")
        }
        var empty = SegmentTail.empty(base: Offset(5))
        empty.lastTimeIndexOffset = nil
        let e2 = PublishedEnd(bootID: .unknown, tail: empty)
        e2.encode(into: w)
        #expect(PublishedEnd.decode(w.bytes) == e2)
    }

    /// A partition made by `createTopic` has its recovery-point file from the start (so
    /// no writer pays its creation), and one without it (an older topic) gets it from the
    /// first writer.
    @Test func recoveryPointFileComesWithTheTopic() throws {
        let fs = SimulatedFileSystem(seed: 1)
        let data = DataDirectory(root: "/d", fileSystem: fs)
        try data.createTopic("t", config: TopicConfig(partitions: 2))
        for p: Int32 in 0..<2 {
            #expect(fs.size(RecoveryPoint.path(data.partitionPath(TopicPartition("t", p)))) == RecoveryPoint.Layout.fileBytes)
        }
        try fs.remove(RecoveryPoint.path(data.partitionPath(TopicPartition("t", 1))))
        let w = try PartitionWriter(directory: data, topicPartition: TopicPartition("t", 1), config: TopicConfig(partitions: 2), fsync: .always)
        #expect(fs.size(RecoveryPoint.path(data.partitionPath(TopicPartition("t", 1)))) == RecoveryPoint.Layout.fileBytes)
        let sealed = SealedBatches()
        sealed.seal([SimulatedCrashTests.record(0)], compression: .lz4, codec: LZ4Codec())
        try w.append(sealed)
        #expect(try RecoveryPoint.read(fs, partitionDirectory: data.partitionPath(TopicPartition("t", 1)))?.point.offset == Offset(1),
                "fsync always moves the recovery point with every append")
        #expect(try PartitionStatus.read(data, TopicPartition("t", 1)).recoveryPoint == Offset(1))
    }
}

/// `SimulatedFileSystem` keeps the contract of `FileSystem` that the crash tests rely on.
@Suite struct UnitSimulatedFileSystemTests {
    @Test func syncedBytesSurviveAPowerLossUnsyncedMayNot() throws {
        for seed: UInt64 in 0..<40 {
            let fs = SimulatedFileSystem(seed: seed)
            try fs.makeDirectories("/a")
            let f = try fs.openFile("/a/f", mode: .readWriteCreate)
            try fs.syncDirectory("/a")
            try f.write(Array(repeating: 1, count: 10_000), at: 0)
            try f.sync()
            try f.write(Array(repeating: 2, count: 10_000), at: 5_000)
            let g = try fs.openFile("/a/g", mode: .readWriteCreate)  // name never synced
            try g.write([7], at: 0)
            try g.sync()
            fs.restart(.powerLoss)
            let after = try #require(fs.contents("/a/f"), "seed \(seed): a synced name survives")
            #expect(after.count == 10_000 || after.count == 15_000, "seed \(seed): size old or new")
            #expect(after.prefix(5_000).allSatisfy { $0 == 1 }, "seed \(seed): bytes synced and not overwritten stay")
            #expect(after.dropFirst(5_000).allSatisfy { $0 == 1 || $0 == 2 || $0 == 0 }, "seed \(seed): pages old or new (or zero past the old size)")
            #expect(fs.contents("/a/g") == nil || fs.contents("/a/g") == [7], "seed \(seed)")
            #expect(throws: KappaError.self) { try f.size() }  // a handle of a dead process
        }
    }

    @Test func killKeepsEverythingWrittenAndDropsLocks() throws {
        let fs = SimulatedFileSystem(seed: 3)
        try fs.makeDirectories("/a")
        let f = try fs.openFile("/a/f", mode: .readWriteCreate)
        try f.write([1, 2, 3], at: 0)
        let lock = FileLock(file: f)
        #expect(try lock.tryLockExclusive())
        #expect(try !FileLock(path: "/a/f", fileSystem: fs).tryLockExclusive(), "flock conflicts between open files")
        let boot = fs.bootID
        fs.restart(.processKill)
        #expect(fs.contents("/a/f") == [1, 2, 3])
        #expect(fs.bootID == boot)
        #expect(try FileLock(path: "/a/f", fileSystem: fs).tryLockExclusive(), "the dead holder's lock is gone")
        fs.restart(.powerLoss)
        #expect(fs.bootID != boot)
    }

    /// Replacing a file (write, fsync, rename, fsync the directory) crashed at any step:
    /// after a power loss the name holds the old content or the new one, never a mix or
    /// nothing; once the call returned, the new one.
    @Test func replacingAFileIsAtomicAcrossAPowerLoss() throws {
        for k in 1...8 {
            let fs = SimulatedFileSystem(seed: UInt64(k))
            try fs.makeDirectories("/a")
            try fs.writeAtomically([1], to: "/a/x")
            fs.inject(.crash, atStep: fs.steps + k)
            var finished = true
            do { try fs.writeAtomically([2, 2], to: "/a/x") } catch { finished = false }
            fs.restart(.powerLoss)
            let x = fs.contents("/a/x")
            #expect(x == [1] || x == [2, 2], "crash at step \(k): old or new, got \(String(describing: x))")
            if finished { #expect(x == [2, 2], "a finished replacement is durable") }
        }
    }

    @Test func faultsFireAtTheirStep() throws {
        let fs = SimulatedFileSystem(seed: 5)
        try fs.makeDirectories("/a")
        let f = try fs.openFile("/a/f", mode: .readWriteCreate)
        fs.inject(.diskFull, atStep: fs.steps + 2)
        try f.write([1], at: 0)
        #expect(throws: KappaError.self) { try f.write([2], at: 1) }
        #expect(fs.contents("/a/f") == [1], "a failed write changes nothing")
        fs.inject(.shortWrite, atStep: fs.steps + 1)
        #expect { try f.write(Array(repeating: 9, count: 100), at: 1) } throws: { ($0 as? KappaError)?.isDiskFull == true }
        let n = try #require(fs.contents("/a/f")).count
        #expect(n > 1 && n < 101, "a prefix landed: \(n) bytes")
        fs.inject(.crash, atStep: fs.steps + 1)
        #expect(throws: KappaError.self) { try f.sync() }
        #expect(fs.isCrashed)
        #expect(throws: KappaError.self) { try fs.list("/a") }
        fs.capacityBytes = 200
        fs.restart(.processKill)
        let g = try fs.openFile("/a/g", mode: .readWriteCreate)
        #expect { try g.write(Array(repeating: 3, count: 500), at: 0) } throws: { ($0 as? KappaError)?.isDiskFull == true }
    }
}
