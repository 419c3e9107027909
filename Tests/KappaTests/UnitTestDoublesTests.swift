import Testing
import KappaCore
@testable import KappaLog
import KappaTesting

/// The test doubles in KappaTesting keep their contracts (other tests rely on them).
@Suite struct UnitTestDoublesTests {
    @Test func splitMix64KnownOutputs() {
        // Reference outputs of SplitMix64 (Steele, Lea & Flood; also computed with a
        // three-line Python transcription of the algorithm).
        var zero = SeededRandom(seed: 0)
        #expect([zero.next(), zero.next(), zero.next()] == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        var other = SeededRandom(seed: 1_234_567)
        #expect([other.next(), other.next(), other.next()] == [0x599E_D017_FB08_FC85, 0x2C73_F084_5854_0FA5, 0x883E_BCE5_A3F2_7C77])
    }

    @Test func seededRandomReplaysAndForks() {
        var a = SeededRandom(seed: 99)
        var b = SeededRandom(seed: 99)
        #expect(a.bytes(37) == b.bytes(37))
        var fork = a
        #expect(fork.next() == a.next())
        #expect(a.seed == 99)
        #expect(SeededRandom(seed: 1).description.contains("1"))
        var c = SeededRandom(seed: 5)
        for _ in 0..<1000 { #expect((3...9).contains(c.int(3...9))) }
    }

    @Test func manualClockMovesOnlyWhenTold() {
        let clock = ManualClock(startNanos: 1_000)
        #expect(clock.nowNanos() == 1_000)
        #expect(clock.nowNanos() == 1_000)
        clock.advance(byNanos: 500)
        #expect(clock.nowNanos() == 1_500)
        clock.advance(byMillis: 2)
        #expect(clock.nowNanos() == 2_001_500)
        #expect(clock.nowMillis == 2)
        clock.set(nanos: 7)
        #expect(clock.nowNanos() == 7)
        let asWallClock: any WallClock = clock
        #expect(asWallClock.nowNanos() == 7)
    }

    @Test func manualClockIsSafeToShareAcrossTasks() async {
        let clock = ManualClock(startNanos: 0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { for _ in 0..<1000 { clock.advance(byNanos: 1) } } }
        }
        #expect(clock.nowNanos() == 8000)
    }

    @Test func referenceLogOffsetsAndReads() throws {
        var log = ReferenceLog(partitions: 2)
        let r = { (i: Int) in ReferenceRecord(key: nil, value: [UInt8(i)], timestamp: TimestampNanos(Int64(i))) }
        #expect(log.append([], partition: 0) == nil)
        #expect(log.append([r(0), r(1), r(2)], partition: 0) == Offset(0)...Offset(2))
        #expect(log.append([r(3)], partition: 0) == Offset(3)...Offset(3))
        #expect(log.append([r(9)], partition: 1) == Offset(0)...Offset(0))
        #expect(log.endOffset(0) == Offset(4))
        #expect(log.read(0, from: Offset(2)).map(\.record) == [r(2), r(3)])
        #expect(log.read(0, from: Offset(4)).isEmpty)
        #expect(log.record(0, at: Offset(1)) == r(1))
        let dropped = try log.advanceStart(0, to: Offset(2))
        #expect(dropped.map(\.offset) == [Offset(0), Offset(1)])
        #expect(log.startOffset(0) == Offset(2))
        #expect(log.record(0, at: Offset(1)) == nil)
        #expect(log.read(0, from: .zero).map(\.offset) == [Offset(2), Offset(3)], "reads below the start begin at the start")
        #expect(try log.advanceStart(0, to: Offset(2)).isEmpty)
        #expect(log.append([r(4)], partition: 0) == Offset(4)...Offset(4), "offsets continue after a deleted prefix")
    }

    @Test func referenceLogRefusesImpossibleStarts() throws {
        var log = ReferenceLog(partitions: 1)
        log.append([ReferenceRecord(key: nil, value: [], timestamp: TimestampNanos(0))], partition: 0)
        try log.advanceStart(0, to: Offset(1))
        #expect(throws: ReferenceLog.Violation.startMovedBackward(partition: 0, from: Offset(1), to: Offset(0))) {
            try log.advanceStart(0, to: .zero)
        }
        #expect(throws: ReferenceLog.Violation.startBeyondEnd(partition: 0, start: Offset(2), end: Offset(1))) {
            try log.advanceStart(0, to: Offset(2))
        }
        #expect(log.startOffset(0) == Offset(1), "a refused move leaves the model unchanged")
    }

    @Test func temporaryDirectoryIsUniqueAndRemoved() throws {
        var path = ""
        do {
            let a = try TemporaryDirectory()
            let b = try TemporaryDirectory()
            #expect(a.path != b.path)
            #expect(a.path.hasPrefix("/tmp/kappa-test-"))
            #expect(FS.isDirectory(a.path))
            try FS.makeDirectories(a.path + "/x/y")
            try File(path: a.path + "/x/y/f", mode: .readWriteCreate).write([1, 2, 3], at: 0)
            path = a.path
            withExtendedLifetime((a, b)) {}
        }
        #expect(!FS.exists(path), "\(path) outlived its TemporaryDirectory")
    }
}
