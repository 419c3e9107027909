import Foundation
import Synchronization
import Testing
import KappaCore
import KappaFormat
import KappaHistory
import KappaLog
import KappaTesting

/// The user-history index against a brute-force scan of the log (`HistoryWorld`): messy
/// records over several topics, partial catch-ups, paging while records arrive, rebuilds
/// after deletion, damage and a changed log.
@Suite struct HistoryIndexTests {
    static func options(commitEntries: Int = 50, warnings: WarningLog? = nil) -> UserHistory.Options {
        var o = UserHistory.Options()
        o.commitEntries = commitEntries
        if let warnings { o.onWarning = { warnings.add($0) } }
        return o
    }

    /// Every user's full walk and some time ranges equal the oracle's, for the records
    /// below the index's `asOf`; so do the counts.
    static func check(_ history: UserHistory, _ world: HistoryWorld, random: inout SeededRandom) throws {
        let asOf = try history.asOf()
        let (oracle, counts) = try world.oracle(asOf: asOf)
        #expect(try history.status().counts == counts, "\(random)")
        for user in HistoryWorld.users + ["nobody"] {
            let expected = oracle[user] ?? []
            let walk = try walkHistory(history, user: user, random: &random)
            try #require(walk.map(\.position) == expected.map(\.position), "user \(user), \(random)")
            #expect(walk.map(\.value) == expected.map(\.value), "user \(user), \(random)")
            // A time range: [from, to).
            let from = TimestampNanos(HistoryWorld.baseTime + Int64(random.int(0...43_200_000)) * 1_000_000)
            let to = from + Int64(random.int(1...43_200_000)) * 1_000_000
            let ranged = try walkHistory(history, user: user, from: from, to: to, random: &random)
            #expect(ranged.map(\.position) == expected.filter { $0.position.time >= from && $0.position.time < to }.map(\.position),
                    "user \(user) in [\(from), \(to)), \(random)")
        }
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func indexEqualsABruteForceScanOfTheLog(seed: UInt64) throws {
        let world = try HistoryWorld(seed: seed)
        var random = SeededRandom(seed: seed &* 7919)
        let history = try UserHistory(directory: world.directory, options: Self.options(commitEntries: random.int(5...200)))
        for _ in 0..<6 {
            try world.writeRandom(random.int(50...400))
            // Catch up part of the way, sometimes all of it.
            for _ in 0..<random.int(0...3) { try history.catchUp(budget: random.int(1...300)) }
            try Self.check(history, world, random: &random)
        }
        while try history.catchUp(budget: 1000) > 0 {}
        try Self.check(history, world, random: &random)
        #expect(try history.catchUp() == 0)
        // Internal topics were seen and left out; every source partition has an offset.
        let asOf = try history.asOf()
        #expect(Set(asOf.keys.map(\.topic)).isSubset(of: Set(HistoryWorld.sources.map(\.name))))
    }

    @Test func pagesNeitherSkipNorRepeatWhileRecordsArrive() throws {
        let world = try HistoryWorld(seed: 11)
        try world.directory.createTopic("solo", config: TopicConfig(partitions: 1))
        let history = try UserHistory(directory: world.directory, options: Self.options(commitEntries: 20))
        let writerDone = Atomic<Bool>(false)
        let indexerDone = Atomic<Bool>(false)
        let failure = Mutex<String?>(nil)
        let dataDirectory = world.directory
        // The writer: "w" only in `solo`, at growing times (a walk must miss nothing);
        // "u1".."u3" everywhere at random times (each page must be exact for its asOf).
        let writer = Thread {
            do {
                let w = try TopicWriter(directory: dataDirectory, topic: "solo", fsync: .never)
                for i in 0..<600 {
                    let t = TimestampNanos(HistoryWorld.baseTime + Int64(i) * 1_000_000_000)
                    let value = Array("{\"user_id\":\"w\",\"time_utc\":\"\(t.decimalSeconds)\",\"seq\":\(i)}".utf8)
                    try value.withUnsafeBytes { v in try w.append(key: nil, value: v, timestamp: t) }
                    if i % 7 == 0 { try w.flush() }
                }
                try w.close()
            } catch {
                failure.withLock { $0 = "writer: \(error)" }
            }
            writerDone.store(true, ordering: .releasing)
        }
        try world.writeRandom(100)
        let indexer = Thread {
            do {
                while !writerDone.load(ordering: .acquiring) { try history.catchUp(budget: 50) }
                while try history.catchUp(budget: 50) > 0 {}
            } catch {
                failure.withLock { $0 = "indexer: \(error)" }
            }
            indexerDone.store(true, ordering: .releasing)
        }
        writer.start()
        indexer.start()
        var random = SeededRandom(seed: 5)
        var walks: [String: (cursor: String?, pages: [(limit: Int, page: HistoryPage)])] = [:]
        // Page while records arrive; once the indexer is done, on to the end of each walk.
        var finished = Set<String>()
        while finished.count < 2 {
            let settled = indexerDone.load(ordering: .acquiring)
            for user in ["w", "u1"] where !finished.contains(user) {
                var walk = walks[user] ?? (nil, [])
                let limit = random.int(1...9)
                let page = try history.page(user: user, limit: limit, cursor: walk.cursor)
                walk.pages.append((limit, page))
                walk.cursor = page.cursor ?? walk.cursor
                walks[user] = walk
                if settled && !page.hasMore { finished.insert(user) }
            }
        }
        try #require(failure.withLock { $0 } == nil, "\(failure.withLock { $0 } ?? "")")
        // Every page: exactly the first entries after its cursor among the records below
        // its asOf (the oracle of the finished log, cut at that asOf).
        let soloOracle = try Self.soloOracle(world.directory)
        for (user, walk) in walks {
            var after: EntryPosition?
            var all: [EntryPosition] = []
            for (limit, page) in walk.pages {
                let cut = user == "w" ? soloOracle.filter { $0.offset < page.asOf[TopicPartition("solo", 0), default: .zero] }
                                      : (try world.oracle(asOf: page.asOf).entries[user] ?? []).map(\.position)
                let expected = Array(cut.filter { after == nil || $0 > after! }.prefix(limit))
                #expect(page.entries.map(\.position) == expected, "user \(user) after \(after.map(\.description) ?? "start")")
                #expect(page.hasMore == (page.entries.count == limit))
                all += page.entries.map(\.position)
                after = page.entries.last?.position ?? after
            }
            #expect(Set(all).count == all.count, "user \(user): an entry came twice")
            if user == "w" { #expect(all == soloOracle, "the walk of w missed or repeated entries") }
        }
    }

    /// All of "w"'s records in `solo`, in order.
    static func soloOracle(_ directory: DataDirectory) throws -> [EntryPosition] {
        let reader = try PartitionReader(directory: directory, topicPartition: TopicPartition("solo", 0))
        var out: [EntryPosition] = []
        let codec = LZ4Codec(), scratch = ByteWriter()
        while var records = try reader.nextRecords(from: .zero, codec: codec, scratch: scratch) {
            while let r = try records.next() {
                out.append(EntryPosition(time: r.timestamp, topic: "solo", partition: 0, offset: r.offset))
            }
        }
        return out
    }

    @Test func deletedIndexDirectoryIsRebuiltFromTheLog() throws {
        let world = try HistoryWorld(seed: 21)
        try world.writeRandom(500)
        var random = SeededRandom(seed: 21)
        var before: [String: [HistoryPage.Entry]] = [:]
        do {
            let history = try UserHistory(directory: world.directory, options: Self.options())
            while try history.catchUp() > 0 {}
            for user in HistoryWorld.users { before[user] = try walkHistory(history, user: user, random: &random) }
        }
        try world.directory.fileSystem.removeTree(UserHistory.path(world.directory))
        let history = try UserHistory(directory: world.directory, options: Self.options())
        #expect(try history.asOf().isEmpty)
        while try history.catchUp() > 0 {}
        for user in HistoryWorld.users { #expect(try walkHistory(history, user: user, random: &random) == before[user]) }
        try Self.check(history, world, random: &random)
    }

    @Test func damagedOrForeignIndexIsRebuiltWithAWarningNeverServed() throws {
        let world = try HistoryWorld(seed: 31)
        try world.writeRandom(400)
        var random = SeededRandom(seed: 31)
        let index = UserHistory.path(world.directory) + "/index"
        let fm = FileManager.default
        func build() throws {
            try? fm.removeItem(atPath: index)
            let history = try UserHistory(directory: world.directory, options: Self.options())
            while try history.catchUp() > 0 {}
        }
        // Garbage instead of the database's files, a foreign file where it should be,
        // bytes flipped in its table, an index built for another user field.
        for damage in ["garbage", "foreign", "flipped", "other-fields"] {
            try build()
            let warnings = WarningLog()
            var options = Self.options(warnings: warnings)
            switch damage {
            case "garbage":
                for name in try fm.contentsOfDirectory(atPath: index) {
                    try Data(repeating: 0x5A, count: 300).write(to: URL(fileURLWithPath: index + "/" + name))
                }
            case "foreign":
                try fm.removeItem(atPath: index)
                try Data("not an index".utf8).write(to: URL(fileURLWithPath: index))
            case "flipped":
                let table = try #require(try fm.contentsOfDirectory(atPath: index).first { $0.hasSuffix(".sst") }, "closing flushed a table")
                var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: index + "/" + table)))
                for i in stride(from: 100, to: bytes.count / 2, by: 61) { bytes[i] ^= 0xFF }
                try Data(bytes).write(to: URL(fileURLWithPath: index + "/" + table))
            default:
                options.userField = "device_id"
            }
            let history = try UserHistory(directory: world.directory, options: options)
            // Damage the open did not see is found when a page reads it (block checksums,
            // row CRCs, the record check): the page is an error, never other or fewer
            // rows, and the next catch-up rebuilds.
            if warnings.all.isEmpty {
                let (oracle, _) = try world.oracle(asOf: try history.asOf())
                var refused = 0
                for user in HistoryWorld.users {
                    do {
                        let walk = try walkHistory(history, user: user, random: &random)
                        #expect(walk.map(\.position) == (oracle[user] ?? []).map(\.position), "\(damage): a damaged index served \(user)'s history wrong")
                    } catch let e as KappaError where e.code == .corruptData {
                        refused += 1
                    }
                }
                #expect(refused > 0, "\(damage) went unnoticed")
            }
            while try history.catchUp() > 0 {}
            if damage == "other-fields" {
                #expect(warnings.all.contains { $0.contains("user field 'user_id'") }, "\(warnings.all)")
                continue
            }
            #expect(!warnings.all.isEmpty, "\(damage): no warning")
            try Self.check(history, world, random: &random)
        }
    }

    @Test func entryThatDisagreesWithItsRecordIsRefusedAndRebuilt() throws {
        let world = try HistoryWorld(seed: 41)
        for i in 0..<20 { try world.write(topic: "rides", world.makeRecord(user: i % 2 == 0 ? "u1" : "u2")) }
        try world.flush()
        let warnings = WarningLog()
        let history = try UserHistory(directory: world.directory, options: Self.options(warnings: warnings))
        while try history.catchUp() > 0 {}
        // A row with a valid CRC that claims u1 has u2's record: only the log can tell.
        let u2 = try history.page(user: "u2", limit: 1).entries[0]
        try HistoryTestHooks.insertEntry(history, user: "u1", position: u2.position)
        #expect(throws: KappaError.self) { try history.page(user: "u1", limit: 100) }
        // The next catch-up rebuilds; then the page is right again.
        while try history.catchUp() > 0 {}
        #expect(warnings.all.contains { $0.contains("does not match the record") }, "\(warnings.all)")
        var random = SeededRandom(seed: 41)
        try Self.check(history, world, random: &random)
    }

    @Test func topicRecreatedUnderTheIndexIsNoticedOnOpen() throws {
        let world = try HistoryWorld(seed: 51)
        for _ in 0..<30 { try world.write(topic: "tickets", world.makeRecord(user: "u3")) }
        try world.flush()
        do {
            let history = try UserHistory(directory: world.directory, options: Self.options())
            while try history.catchUp() > 0 {}
            #expect(try history.page(user: "u3", limit: 100).entries.count == 30)
        }
        // Same name, other records, more of them: offsets alone cannot tell.
        try world.directory.deleteTopic("tickets")
        try world.directory.createTopic("tickets", config: TopicConfig(partitions: 1))
        let fresh = HistoryWorld.Made(value: Array("{\"user_id\":\"u9\",\"seq\":0}".utf8), timestamp: TimestampNanos(HistoryWorld.baseTime), expectation: .withoutUser, key: [])
        let w = try TopicWriter(directory: world.directory, topic: "tickets", fsync: .never)
        for _ in 0..<40 { try fresh.value.withUnsafeBytes { v in try w.append(key: nil, value: v, timestamp: fresh.timestamp) } }
        try w.close()
        let warnings = WarningLog()
        let history = try UserHistory(directory: world.directory, options: Self.options(warnings: warnings))
        #expect(warnings.all.count == 1, "\(warnings.all)")
        while try history.catchUp() > 0 {}
        #expect(try history.page(user: "u3", limit: 100).entries.isEmpty)
        #expect(try history.page(user: "u9", limit: 100).entries.count == 40)
    }

    @Test func badArgumentsAreRefused() throws {
        let world = try HistoryWorld(seed: 61)
        let history = try UserHistory(directory: world.directory, options: Self.options())
        let t = TimestampNanos(HistoryWorld.baseTime)
        for (user, limit, from, to, cursor) in [("", 10, nil, nil, nil), ("u1", 0, nil, nil, nil), ("u1", 1001, nil, nil, nil),
                                                ("u1", 10, t, t, nil), ("u1", 10, nil, nil, "not-a-cursor"), ("u1", 10, nil, nil, "AAAA")]
            as [(String, Int, TimestampNanos?, TimestampNanos?, String?)] {
            #expect(throws: KappaError.self) { try history.page(user: user, from: from, to: to, limit: limit, cursor: cursor) }
        }
        // A second process (here: a second open) cannot have the index at once.
        #expect(throws: KappaError.self) { try UserHistory(directory: world.directory) }
    }
}

/// Collects warnings from any thread.
final class WarningLog: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ s: String) { lines.withLock { $0.append(s) } }
    var all: [String] { lines.withLock { $0 } }
}
