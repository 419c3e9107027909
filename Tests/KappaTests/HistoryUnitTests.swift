import Foundation
import Testing
import KappaCore
import KappaFormat
@testable import KappaHistory
import KappaLog
import KappaTesting

/// The pieces of the history index: key layout and order, rows that check themselves,
/// the cursor, which topics are sources, and the log's random access by offset.
@Suite struct HistoryUnitTests {
    static func randomPosition(_ r: inout SeededRandom) -> EntryPosition {
        let times: [Int64] = [.min, -1, 0, 1, .max, Int64(r.int(-1000...1000)), Int64(bitPattern: r.next())]
        let topics = ["a", "a.b", "a-b", "ab", "b", "rides", "rides.v1", String(repeating: "z", count: 249)]
        return EntryPosition(time: TimestampNanos(times[r.int(0...(times.count - 1))]), topic: topics[r.int(0...(topics.count - 1))],
                             partition: Int32(r.int(0...1023)), offset: Offset(Int64(r.int(0...Int(Int32.max))) * Int64(r.int(1...3))))
    }

    static func key(_ user: String, _ p: EntryPosition) -> [UInt8] {
        let out = ByteWriter()
        _ = Array(user.utf8).withUnsafeBytes { HistoryKeys.appendEntry(user: $0, position: p, location: BatchLocation(segmentBase: .zero, position: .zero), into: out) }
        return Array(out.bytes.prefix(out.count - HistoryKeys.entryValueBytes))
    }

    @Test func keyByteOrderIsPositionOrderAndRowsRoundTrip() {
        var r = SeededRandom(seed: 3)
        for _ in 0..<5000 {
            let a = Self.randomPosition(&r), b = Self.randomPosition(&r)
            let ka = Self.key("user", a), kb = Self.key("user", b)
            #expect(ka.lexicographicallyPrecedes(kb) == (a < b), "\(a) vs \(b)")
            // Every key of a user lies in the user's range; another user's does not.
            let range = KeyRange(user: Array("user".utf8), from: nil, to: nil, after: nil)
            #expect(!ka.lexicographicallyPrecedes(range.lower) && ka.lexicographicallyPrecedes(range.upper))
            #expect(!Self.key("users", a).lexicographicallyPrecedes(range.upper) || Self.key("users", a).lexicographicallyPrecedes(range.lower))
        }
        let p = EntryPosition(time: TimestampNanos(-5), topic: "t", partition: 3, offset: Offset(77))
        let location = BatchLocation(segmentBase: Offset(64), position: FilePosition(4096))
        let locators: [RecordLocator?] = [nil, RecordLocator(blockStart: 7, blockSizeField: 0x8000_0100, inBlock: 65_000, length: 310, crc: 0xFEED_F00D)]
        for locator in locators {
            let out = ByteWriter()
            let keyCount = Array("ué".utf8).withUnsafeBytes { HistoryKeys.appendEntry(user: $0, position: p, location: location, locator: locator, into: out) }
            let row = Array(out.bytes)
            row.withUnsafeBytes { b in
                let decoded = HistoryKeys.decodeEntry(key: UnsafeRawBufferPointer(rebasing: b[..<keyCount]), value: UnsafeRawBufferPointer(rebasing: b[keyCount...]))
                #expect(decoded == EntryRow(position: p, location: location, locator: locator))
            }
            // Any single flipped bit in key or value is caught by the row's CRC.
            for bit in 0..<(row.count * 8) {
                var bad = row
                bad[bit / 8] ^= UInt8(1 << (bit % 8))
                bad.withUnsafeBytes { b in
                    #expect(HistoryKeys.decodeEntry(key: UnsafeRawBufferPointer(rebasing: b[..<keyCount]), value: UnsafeRawBufferPointer(rebasing: b[keyCount...])) == nil)
                }
            }
        }
        #expect(HistoryKeys.entryValueBytes == 20, "segment base 8 + position 8 + CRC 4")
        #expect(HistoryKeys.entryValueLocatedBytes == 40, "segment base 8 + position 8 + locator 20 + CRC 4")
        #expect(HistoryKeys.progressValueBytes == 24, "next offset 8 + batch base 8 + batch CRC 4 + CRC 4")
    }

    @Test func progressAndMetaRowsRoundTripAndRefuseDamage() {
        let tp = TopicPartition("app_events", 7)
        let p = PartitionProgress(nextOffset: Offset(1234), lastBatchBase: Offset(1200), lastBatchCRC: 0xDEAD_BEEF)
        let key = HistoryKeys.progressKey(tp)
        let value = HistoryKeys.progressValue(p, key: key)
        #expect(HistoryKeys.decodeProgress(key: key, value: value).map { [$0.0: $0.1] } == [tp: p])
        var bad = value
        bad[3] ^= 1
        #expect(HistoryKeys.decodeProgress(key: key, value: bad) == nil)
        var otherKey = key
        otherKey[otherKey.count - 1] ^= 1  // another partition's row cannot take this value
        #expect(HistoryKeys.decodeProgress(key: otherKey, value: value) == nil)

        var meta = HistoryMeta(userField: "user_id", timeField: "time_utc")
        meta.counts.indexed = 5
        meta.counts.notJSON = 6
        meta.counts.withoutUser = 7
        meta.counts.timeFromRecord = 8
        let bytes = meta.encoded()
        #expect((try? HistoryMeta.decode(bytes).get()) == meta)
        for i in bytes.indices {
            var b = bytes
            b[i] ^= 0x40
            if case .success = HistoryMeta.decode(b) { Issue.record("meta with byte \(i) changed decoded") }
        }
        #expect((try? HistoryMeta.decode(Array(bytes.dropLast())).get()) == nil)
    }

    @Test func cursorRoundTripsAndRefusesChangedText() throws {
        var r = SeededRandom(seed: 9)
        for _ in 0..<500 {
            let p = Self.randomPosition(&r)
            let text = HistoryCursor.encode(p)
            #expect(text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
            #expect(try HistoryCursor.decode(text) == p)
            var chars = Array(text)
            let i = r.int(0...(chars.count - 1))
            chars[i] = chars[i] == "A" ? "B" : "A"
            #expect(throws: KappaError.self) { try HistoryCursor.decode(String(chars)) }
        }
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base64URL.decode(bytes.withUnsafeBytes { Base64URL.encode($0) }) == bytes)
        }
    }

    @Test func sourcesAreTheTopicsPeopleWrite() {
        let plain = TopicConfig(partitions: 1)
        #expect(HistorySources.isSource(topic: "rides", config: plain))
        #expect(HistorySources.isSource(topic: "rides.v2", config: plain), "a user topic may end in .vN")
        #expect(HistorySources.isSource(topic: "x.repartition", config: plain))
        #expect(HistorySources.isSource(topic: "x.vv.repartition", config: plain))
        #expect(!HistorySources.isSource(topic: "rides-per-city.v1", config: TopicConfig(partitions: 1, transactional: true)))
        #expect(!HistorySources.isSource(topic: "job.v3.late", config: TopicConfig(partitions: 1, transactional: true)))
        #expect(!HistorySources.isSource(topic: "job.v12.repartition", config: plain))
        #expect(!HistorySources.isSource(topic: "rides.dead-letter", config: TopicConfig(partitions: 1, rawValues: true)))
        #expect(!HistorySources.isSource(topic: "other.dead-letter", config: plain))
    }

    /// Every record fetched by offset — with its hint, a wrong hint, or none — is the
    /// one a sequential scan reads there; offsets past the end are nil.
    @Test func fetcherReadsAnyRecordByOffset() throws {
        let tmp = try TemporaryDirectory(prefix: "kappa-fetch")
        let dir = tmp.dataDirectory
        try dir.createTopic("t", config: TopicConfig(partitions: 2, segmentBytes: 64 << 10))
        let w = try TopicWriter(directory: dir, topic: "t", fsync: .never)
        var r = SeededRandom(seed: 4)
        for i in 0..<5000 {
            let value = Array("{\"i\":\(i),\"pad\":\"\(String(repeating: "p", count: r.int(0...100)))\"}".utf8)
            try value.withUnsafeBytes { v in try w.append(partition: Int32(i % 2), key: nil, value: v, timestamp: TimestampNanos(Int64(i) * 1000 + 7)) }
            if i % 300 == 0 { try w.flush() }
        }
        try w.close()
        let fetcher = RecordFetcher(directory: dir, openFilesMax: 3, readersMax: 1)
        for p: Int32 in 0...1 {
            let tp = TopicPartition("t", p)
            let reader = try PartitionReader(directory: dir, topicPartition: tp)
            var all: [(FetchedRecord)] = []
            let codec = LZ4Codec(), scratch = ByteWriter()
            while var records = try reader.nextRecords(from: .zero, codec: codec, scratch: scratch) {
                let location = BatchLocation(segmentBase: try #require(reader.currentSegmentBase), position: records.position)
                while let rec = try records.next() {
                    all.append(FetchedRecord(offset: rec.offset, timestamp: rec.timestamp, key: nil, value: Array(rec.value), fromKafkaClient: false, location: location))
                }
            }
            try #require(all.count == 2500)
            for _ in 0..<600 {
                let want = all[r.int(0...(all.count - 1))]
                #expect(try fetcher.record(tp, at: want.offset, hint: want.location) == want)
                #expect(try fetcher.record(tp, at: want.offset, hint: nil) == want)
                let wrong = all[r.int(0...(all.count - 1))].location
                #expect(try fetcher.record(tp, at: want.offset, hint: wrong) == want)
                let nonsense = BatchLocation(segmentBase: Offset(Int64(r.int(0...5000))), position: FilePosition(Int64(r.int(0...70_000))))
                #expect(try fetcher.record(tp, at: want.offset, hint: nonsense) == want)
            }
            #expect(try fetcher.record(tp, at: Offset(2500), hint: nil) == nil)
            #expect(try fetcher.record(tp, at: Offset(2500), hint: all.last!.location) == nil)
        }
    }

    /// With a `RecordLocator` (what the index stores), the fetcher reads one record's
    /// block, not its batch: every located fetch returns the record a scan reads there, in
    /// LZ4 and uncompressed topics; a wrong or damaged locator falls back to the batch and
    /// still returns it; a flipped byte in the log under a locator is reported, never
    /// returned.
    @Test func locatedFetchesReadOneBlockAndCheckIt() throws {
        for compression in [CompressionCodec.lz4, .none] {
            let tmp = try TemporaryDirectory(prefix: "kappa-locate")
            let dir = tmp.dataDirectory
            try dir.createTopic("t", config: TopicConfig(partitions: 1, compression: compression, segmentBytes: 4 << 20))
            let w = try TopicWriter(directory: dir, topic: "t", fsync: .never)
            var r = SeededRandom(seed: 5)
            for i in 0..<20_000 {
                let value = Array("{\"i\":\(i),\"pad\":\"\(String(repeating: "p", count: r.int(0...300)))\",\"r\":\(r.int(0...1_000_000))}".utf8)
                try value.withUnsafeBytes { v in try w.append(partition: 0, key: nil, value: v, timestamp: TimestampNanos(Int64(i) * 1000 + 7)) }
            }
            try w.close()
            let tp = TopicPartition("t", 0)
            let reader = try PartitionReader(directory: dir, topicPartition: tp)
            var all: [(FetchedRecord, RecordLocator?)] = []
            let codec = LZ4Codec(), scratch = ByteWriter()
            while var records = try reader.nextRecords(from: .zero, codec: codec, scratch: scratch) {
                let location = BatchLocation(segmentBase: try #require(reader.currentSegmentBase), position: records.position)
                var locating = try #require(RecordLocating(records, codec: codec), "\(compression): batch not locatable")
                while let (rec, start, bytes) = try records.nextWithBytes() {
                    let fetched = FetchedRecord(offset: rec.offset, timestamp: rec.timestamp, key: nil, value: Array(rec.value), fromKafkaClient: false, location: location)
                    all.append((fetched, locating.locator(start: start, bytes: bytes)))
                }
            }
            try #require(all.count == 20_000)
            let located = all.filter { $0.1 != nil }.count
            #expect(located > 19_000, "\(compression): \(located) of 20000 records located (only those crossing a block boundary may not be)")
            // Good locators only: every located record is read through its block.
            let fetcher = RecordFetcher(directory: dir, openFilesMax: 3, readersMax: 1, batchesMax: 1)
            var expectLocated = 0
            for _ in 0..<2000 {
                let (want, locator) = all[r.int(0...(all.count - 1))]
                guard locator != nil else { continue }  // (a whole batch read would serve the next fetches from its cache)
                #expect(try fetcher.record(tp, at: want.offset, hint: want.location, locator: locator) == want)
                expectLocated += 1
            }
            #expect(fetcher.locatedReads == expectLocated, "\(compression): \(fetcher.locatedReads) located reads, \(expectLocated) expected")
            for _ in 0..<2000 {
                let (want, locator) = all[r.int(0...(all.count - 1))]
                // Another record's locator, or one with a changed field: the batch is read instead.
                let other = all[r.int(0...(all.count - 1))].1
                #expect(try fetcher.record(tp, at: want.offset, hint: want.location, locator: other) == want)
                if var bad = locator {
                    switch r.int(0...4) {
                    case 0: bad.blockStart ^= UInt32(1 << r.int(0...20))
                    case 1: bad.blockSizeField ^= UInt32(1 << r.int(0...31))
                    case 2: bad.inBlock ^= UInt32(1 << r.int(0...17))
                    case 3: bad.length ^= UInt32(1 << r.int(0...12))
                    default: bad.crc ^= UInt32(1 << r.int(0...31))
                    }
                    #expect(try fetcher.record(tp, at: want.offset, hint: want.location, locator: bad) == want)
                }
            }
            // A flipped byte under a located record (its first bytes, or the first bytes of
            // the LZ4 block every prefix inflates from): an error, never data.
            let (want, locator) = try #require(all.last { $0.1 != nil && $0.0.location.segmentBase == .zero })
            let l = try #require(locator)
            let path = SegmentFiles.logPath(dir.partitionPath(tp), .zero)
            var log = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
            let at = Int(want.location.position.rawValue) + RecordBatchLayout.headerBytes + Int(l.blockStart) 
                + (compression == .none ? 3 : l.blockSizeField & LZ4Block.uncompressedFlag != 0 ? 4 + Int(l.inBlock) + 3 : 4 + 2)
            log[at] ^= 0x10
            try Data(log).write(to: URL(fileURLWithPath: path))
            let fresh = RecordFetcher(directory: dir)
            do {
                let got = try fresh.record(tp, at: want.offset, hint: want.location, locator: locator)
                Issue.record("\(compression): a damaged block returned \(String(describing: got))")
            } catch {
                #expect(error.code == .corruptData, "\(compression): \(error)")
            }
        }
    }
}
