import Testing
@testable import KappaCore
@testable import KappaLog
import KappaTesting

/// The sparse offset and time indexes: look-ups against linear-scan models, and loading
/// that keeps only entries that can be trusted.
@Suite struct UnitIndexTests {
    static func randomOffsetEntries(_ rng: inout SeededRandom, base: Offset) -> [OffsetIndex.Entry] {
        var entries: [OffsetIndex.Entry] = []
        var offset = base + Int64(rng.int(0...3))
        var position: Int64 = Int64(rng.int(0...100))
        for _ in 0..<rng.int(0...60) {
            entries.append(.init(offset: offset, position: FilePosition(position)))
            offset = offset + Int64(rng.int(1...500))
            position += Int64(rng.int(1...9000))
        }
        return entries
    }

    static func floorModel(_ entries: [OffsetIndex.Entry], _ target: Offset) -> OffsetIndex.Entry? {
        entries.last { $0.offset <= target }
    }

    @Test func floorMatchesLinearScan() {
        var rng = SeededRandom(seed: 0x1DE_0001)
        for round in 0..<500 {
            let base = Offset(Int64(rng.int(0...1_000_000)))
            let entries = Self.randomOffsetEntries(&rng, base: base)
            let hi = (entries.last?.offset ?? base) + 10
            for _ in 0..<30 {
                let target = Offset(Int64(rng.int(Int(base.rawValue - 5)...Int(hi.rawValue))))
                #expect(OffsetIndex.floor(entries, target) == Self.floorModel(entries, target),
                        "round \(round) target \(target) entries \(entries.count), \(rng)")
            }
            // Every entry's own offset finds itself.
            for e in entries { #expect(OffsetIndex.floor(entries, e.offset) == e) }
        }
    }

    @Test func floorEdges() {
        let e = [OffsetIndex.Entry(offset: Offset(10), position: FilePosition(0)),
                 OffsetIndex.Entry(offset: Offset(20), position: FilePosition(100))]
        #expect(OffsetIndex.floor([], Offset(5)) == nil)
        #expect(OffsetIndex.floor(e, Offset(9)) == nil)
        #expect(OffsetIndex.floor(e, Offset(10)) == e[0])
        #expect(OffsetIndex.floor(e, Offset(19)) == e[0])
        #expect(OffsetIndex.floor(e, Offset(20)) == e[1])
        #expect(OffsetIndex.floor(e, Offset(Int64.max)) == e[1])
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        let f = try File(path: path, mode: .readWriteCreate)
        try f.truncate(to: 0)
        try f.write(bytes, at: 0)
    }

    static func encode(_ entries: [OffsetIndex.Entry], base: Offset) -> [UInt8] {
        let w = ByteWriter(capacity: 64)
        for e in entries { OffsetIndex.encode(e, base: base, into: w) }
        return Array(w.bytes)
    }

    static func encode(_ entries: [TimeIndex.Entry], base: Offset) -> [UInt8] {
        let w = ByteWriter(capacity: 64)
        for e in entries { TimeIndex.encode(e, base: base, into: w) }
        return Array(w.bytes)
    }

    @Test func offsetIndexFileLayout() {
        let bytes = Self.encode([.init(offset: Offset(1003), position: FilePosition(0x0102_0304))], base: Offset(1000))
        #expect(bytes == [0, 0, 0, 3, 1, 2, 3, 4])
        #expect(OffsetIndex.entryBytes == 8)
    }

    @Test func timeIndexFileLayout() {
        let bytes = Self.encode([TimeIndex.Entry(timestampMillis: 0x0102_0304_0506_0708, offset: Offset(1005))], base: Offset(1000))
        #expect(bytes == [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 5])
        #expect(TimeIndex.entryBytes == 12)
    }

    @Test func offsetIndexLoadRoundTripsAndDropsATornEntry() throws {
        try TemporaryDirectory.with { dir in
            var rng = SeededRandom(seed: 0x1DE_0002)
            for round in 0..<100 {
                let base = Offset(Int64(rng.int(0...1_000_000)))
                let entries = Self.randomOffsetEntries(&rng, base: base)
                let path = dir.path + "/\(round).index"
                let logBytes = (entries.last?.position.rawValue ?? 0) + 1
                let torn = rng.int(0...7)
                try Self.write(Self.encode(entries, base: base) + rng.bytes(torn), to: path)
                #expect(try OffsetIndex.load(path: path, base: base, logBytes: logBytes) == entries, "round \(round), torn \(torn) bytes, \(rng)")
            }
        }
    }

    @Test func offsetIndexLoadDropsEntriesPastTheLog() throws {
        try TemporaryDirectory.with { dir in
            let base = Offset(500)
            let entries = (0..<10).map { OffsetIndex.Entry(offset: base + Int64($0 * 10), position: FilePosition(Int64($0 * 4096))) }
            let path = dir.path + "/x.index"
            try Self.write(Self.encode(entries, base: base), to: path)
            // A log of 20480 bytes holds batches at 0, 4096, ..., 16384; 20480 is its end.
            #expect(try OffsetIndex.load(path: path, base: base, logBytes: 20480) == Array(entries.prefix(5)))
            #expect(try OffsetIndex.load(path: path, base: base, logBytes: 20481) == Array(entries.prefix(6)))
            #expect(try OffsetIndex.load(path: path, base: base, logBytes: 0) == [])
            #expect(try OffsetIndex.load(path: path, base: base, logBytes: 1 << 30) == entries)
        }
    }

    @Test func offsetIndexLoadStopsAtAnOutOfOrderEntry() throws {
        try TemporaryDirectory.with { dir in
            let base = Offset(0)
            let good = [OffsetIndex.Entry(offset: Offset(0), position: FilePosition(0)),
                        OffsetIndex.Entry(offset: Offset(10), position: FilePosition(5000))]
            let cases: [[OffsetIndex.Entry]] = [
                good + [.init(offset: Offset(10), position: FilePosition(9000))],  // offset repeats
                good + [.init(offset: Offset(20), position: FilePosition(5000))],  // position repeats
                good + [.init(offset: Offset(5), position: FilePosition(9000))],  // offset goes back
            ]
            for (i, entries) in cases.enumerated() {
                let tail = [OffsetIndex.Entry(offset: Offset(100), position: FilePosition(20000))]
                let path = dir.path + "/\(i).index"
                try Self.write(Self.encode(entries + tail, base: base), to: path)
                #expect(try OffsetIndex.load(path: path, base: base, logBytes: 1 << 20) == good, "case \(i)")
            }
        }
    }

    @Test func missingIndexLoadsEmpty() throws {
        #expect(try OffsetIndex.load(path: "/nonexistent/kappa/0.index", base: .zero, logBytes: 100) == [])
        #expect(try TimeIndex.load(path: "/nonexistent/kappa/0.timeindex", base: .zero) == [])
    }

    static func randomTimeEntries(_ rng: inout SeededRandom, base: Offset) -> [TimeIndex.Entry] {
        var entries: [TimeIndex.Entry] = []
        var ts = Int64(rng.int(-1000...1_000_000))
        var offset = base + Int64(rng.int(0...3))
        for _ in 0..<rng.int(0...40) {
            entries.append(.init(timestampMillis: ts, offset: offset))
            ts += Int64(rng.int(1...1000))
            offset = offset + Int64(rng.int(1...100))
        }
        return entries
    }

    static func scanStartModel(_ entries: [TimeIndex.Entry], atOrAfter millis: Int64, base: Offset) -> Offset {
        entries.last { $0.timestampMillis < millis }?.offset ?? base
    }

    @Test func scanStartMatchesModel() {
        var rng = SeededRandom(seed: 0x1DE_0003)
        for round in 0..<500 {
            let base = Offset(Int64(rng.int(0...1_000_000)))
            let entries = Self.randomTimeEntries(&rng, base: base)
            let lo = (entries.first?.timestampMillis ?? 0) - 10
            let hi = (entries.last?.timestampMillis ?? 0) + 10
            for _ in 0..<30 {
                let millis = Int64.random(in: lo...hi, using: &rng)
                #expect(TimeIndex.scanStart(entries, atOrAfter: millis, base: base) == Self.scanStartModel(entries, atOrAfter: millis, base: base),
                        "round \(round) millis \(millis), \(rng)")
            }
        }
    }

    @Test func scanStartNeverSkipsARecordAtOrAfterTheTarget() {
        // Entry k: the largest timestamp of batches up to and including the one at its
        // offset. Scanning from scanStart must find every record with ts >= target.
        let entries = [TimeIndex.Entry(timestampMillis: 100, offset: Offset(10)),
                       TimeIndex.Entry(timestampMillis: 200, offset: Offset(20)),
                       TimeIndex.Entry(timestampMillis: 300, offset: Offset(30))]
        #expect(TimeIndex.scanStart(entries, atOrAfter: 50, base: Offset(10)) == Offset(10))
        #expect(TimeIndex.scanStart(entries, atOrAfter: 100, base: Offset(10)) == Offset(10))
        #expect(TimeIndex.scanStart(entries, atOrAfter: 101, base: Offset(10)) == Offset(10))
        #expect(TimeIndex.scanStart(entries, atOrAfter: 200, base: Offset(10)) == Offset(10))
        #expect(TimeIndex.scanStart(entries, atOrAfter: 201, base: Offset(10)) == Offset(20))
        #expect(TimeIndex.scanStart(entries, atOrAfter: 301, base: Offset(10)) == Offset(30))
    }

    @Test func timeIndexLoadKeepsTheTrustedPrefix() throws {
        try TemporaryDirectory.with { dir in
            var rng = SeededRandom(seed: 0x1DE_0004)
            for round in 0..<100 {
                let base = Offset(Int64(rng.int(0...1_000_000)))
                let entries = Self.randomTimeEntries(&rng, base: base)
                let path = dir.path + "/\(round).timeindex"
                let torn = rng.int(0...11)
                try Self.write(Self.encode(entries, base: base) + rng.bytes(torn), to: path)
                #expect(try TimeIndex.load(path: path, base: base) == entries, "round \(round), \(rng)")
                // nextOffset keeps only entries below it.
                let cut = entries.isEmpty ? base : entries[rng.int(0...(entries.count - 1))].offset
                #expect(try TimeIndex.load(path: path, base: base, nextOffset: cut) == entries.filter { $0.offset < cut }, "round \(round), \(rng)")
            }
            // A timestamp that goes back ends the trusted prefix.
            let bad = [TimeIndex.Entry(timestampMillis: 10, offset: Offset(1)), TimeIndex.Entry(timestampMillis: 9, offset: Offset(2)),
                       TimeIndex.Entry(timestampMillis: 20, offset: Offset(3))]
            try Self.write(Self.encode(bad, base: .zero), to: dir.path + "/bad.timeindex")
            #expect(try TimeIndex.load(path: dir.path + "/bad.timeindex", base: .zero) == [bad[0]])
        }
    }
}
