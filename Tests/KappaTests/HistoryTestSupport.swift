import Foundation
import Testing
import KappaCore
import KappaFormat
import KappaHistory
import KappaLog
import KappaTesting

// The model the history index is checked against. `HistoryWorld` writes messy records
// into a data directory and remembers, for every record it wrote, what the index must
// make of it (user, event time, or why it is skipped) — decided when the record was
// made, not by parsing it back. The log supplies only where each record landed
// (topic, partition, offset), found by a sequence number in every value. The oracle is
// then a brute-force scan: every record of the log, filtered and sorted.

/// What the index must make of one record.
enum HistoryExpectation: Equatable {
    case event(user: String, time: TimestampNanos, timeFromRecord: Bool)
    case notJSON
    case withoutUser
    /// In a topic the index must not read.
    case notASource
}

/// One record of the log as the oracle knows it.
struct OracleRecord {
    var position: EntryPosition
    var user: String
    var value: [UInt8]
}

/// A data directory with messy topics and the model of every record written to it.
final class HistoryWorld {
    let tmp: TemporaryDirectory
    let directory: DataDirectory
    var random: SeededRandom
    /// Expectation per sequence number.
    private(set) var expected: [Int: HistoryExpectation] = [:]
    private var seq = 0
    private var writers: [String: TopicWriter] = [:]
    private let coding = BatchCoding()

    static let users = ["u1", "u2", "u3", "ué", "42", "a\"quote", "long-" + String(repeating: "x", count: 200)]
    static let sources: [(name: String, partitions: Int32, keyField: String?)] = [
        ("app", 3, "device_id"), ("rides", 2, nil), ("tickets", 1, "ticket_id"), ("kafkaish", 2, nil),
    ]
    /// Topics Kappa writes for itself: never in a history.
    static let internals: [(name: String, config: TopicConfig)] = [
        ("jobout.v1", TopicConfig(partitions: 2, transactional: true)),
        ("job.v1.repartition", TopicConfig(partitions: 2)),
        ("app.dead-letter", TopicConfig(partitions: 1, rawValues: true)),
        ("weird.dead-letter", TopicConfig(partitions: 1)),
    ]
    static let baseTime: Int64 = 1_457_740_800 * 1_000_000_000

    init(seed: UInt64) throws {
        tmp = try TemporaryDirectory(prefix: "kappa-history")
        directory = tmp.dataDirectory
        random = SeededRandom(seed: seed)
        for s in Self.sources { try directory.createTopic(s.name, config: TopicConfig(partitions: s.partitions, keyField: s.keyField)) }
        for t in Self.internals { try directory.createTopic(t.name, config: t.config) }
    }

    func writer(_ topic: String) throws -> TopicWriter {
        if let w = writers[topic] { return w }
        let w = try TopicWriter(directory: directory, topic: topic, fsync: .never)
        writers[topic] = w
        return w
    }

    func flush() throws {
        for w in writers.values { try w.flush() }
    }

    /// Writes `count` random records (mostly events, many of them messy) over all
    /// topics, and flushes them (visible to readers).
    func writeRandom(_ count: Int) throws {
        for _ in 0..<count {
            let roll = random.int(0...99)
            if roll < 6 {
                try writeInternal()
            } else if roll < 16 {
                try writeKafkaBatch()
            } else {
                let s = Self.sources[random.int(0...2)]
                try write(topic: s.name, makeRecord())
            }
        }
        try flush()
    }

    /// One record's value, record timestamp and expectation.
    struct Made {
        var value: [UInt8]
        var timestamp: TimestampNanos
        var expectation: HistoryExpectation
        var key: [UInt8]
    }

    func makeRecord(user forcedUser: String? = nil, time forcedTime: TimestampNanos? = nil) -> Made {
        seq += 1
        let n = seq
        let recordTime = TimestampNanos(Self.baseTime + Int64(random.int(0...86_400_000)) * 1_000_000 + Int64(random.int(0...999_999)))
        let eventTime = forcedTime ?? TimestampNanos(Self.baseTime + Int64(random.int(0...86_400_000)) * 1_000_000 + Int64(random.int(0...999_999)))
        let user = forcedUser ?? Self.users[random.int(0...(Self.users.count - 1))]
        var fields = ["\"seq\":\(n)", "\"device_id\":\"dev\(random.int(0...9))\"", "\"ticket_id\":\"t\(n)\""]
        var expectation = HistoryExpectation.event(user: user, time: eventTime, timeFromRecord: false)
        var timeText: String? = "\"\(eventTime.decimalSeconds)\""
        var userText: String? = jsonString(user)
        let shape = forcedUser == nil ? random.int(0...99) : 99
        switch shape {
        case 0..<5: userText = "null"; expectation = .withoutUser
        case 5..<10: userText = nil; expectation = .withoutUser
        case 10..<13: userText = ["true", "{\"id\":\"u1\"}", "[\"u1\"]"][random.int(0...2)]; expectation = .withoutUser
        case 13..<15: userText = "\"\""; expectation = .withoutUser
        case 15..<17: userText = "\"" + String(repeating: "y", count: 1100) + "\""; expectation = .withoutUser
        case 17..<22: userText = "42"; expectation = .event(user: "42", time: eventTime, timeFromRecord: false)
        case 22..<25 where user == "ué": userText = "\"u\\u00e9\""  // escaped: the same user
        case 25..<30: timeText = nil; expectation = .event(user: user, time: recordTime, timeFromRecord: true)
        case 30..<33: timeText = "\"yesterday\""; expectation = .event(user: user, time: recordTime, timeFromRecord: true)
        case 33..<35:
            timeText = "\"2016-03-12T10:00:00.123456789Z\""
            expectation = .event(user: user, time: TimestampNanos(Self.baseTime + 36_000 * 1_000_000_000 + 123_456_789), timeFromRecord: false)
        case 35..<38: timeText = "\(Self.baseTime / 1_000_000_000 + Int64(random.int(0...86_400)))"
            if case .event(let u, _, _) = expectation {
                expectation = .event(user: u, time: TimestampNanos(Int64(timeText!)! * 1_000_000_000), timeFromRecord: false)
            }
        default: break
        }
        if shape >= 38 && shape < 42 {
            let garbage = ["not json #\(n)", "[\(n)]", "\"just a string #\(n)\"", "{\"seq\":\(n), broken"][random.int(0...3)]
            expected[n] = .notJSON
            return Made(value: Array(garbage.utf8), timestamp: recordTime, expectation: .notJSON, key: Array("k\(n)".utf8))
        }
        if let userText { fields.append("\"user_id\":" + userText) }
        if let timeText { fields.append("\"time_utc\":" + timeText) }
        fields.shuffle(using: &random)
        let value = Array(("{" + fields.joined(separator: ",") + "}").utf8)
        expected[n] = expectation
        return Made(value: value, timestamp: recordTime, expectation: expectation, key: Array("k\(n)".utf8))
    }

    func write(topic: String, _ made: Made) throws {
        let w = try writer(topic)
        try made.key.withUnsafeBytes { k in
            try made.value.withUnsafeBytes { v in try w.append(key: k, value: v, timestamp: made.timestamp) }
        }
    }

    private func writeInternal() throws {
        let t = Self.internals[random.int(0...(Self.internals.count - 1))]
        let made = makeRecord(user: "u1")
        expected[seq] = .notASource
        if t.config.isTransactional { return }  // readers never see it uncommitted; nothing to check
        try write(topic: t.name, made)
    }

    /// A batch as a Kafka client appends it (leader epoch 0): values not validated.
    private func writeKafkaBatch() throws {
        let partition = Int32(random.int(0...1))
        var records: [ReferenceRecord] = []
        for _ in 0..<random.int(1...4) {
            let made = makeRecord()
            records.append(ReferenceRecord(key: made.key, value: made.value, timestamp: made.timestamp))
        }
        let bytes = coding.encode(records, compression: random.chance(50) ? .lz4 : .none)
        let sealed = SealedBatches()
        bytes.withUnsafeBytes { sealed.appendRaw($0, leaderEpoch: TopicConfig.kafkaLeaderEpoch) }
        let tp = TopicPartition("kafkaish", partition)
        let writer = try PartitionWriter(directory: directory, topicPartition: tp, config: try directory.topicConfig("kafkaish"), fsync: .never)
        try writer.append(sealed)
        try writer.close()
    }

    // MARK: - The oracle

    /// Every source record the log holds, with what the index must make of it.
    func scanLog() throws -> [(TopicPartition, Offset, [UInt8], HistoryExpectation)] {
        var out: [(TopicPartition, Offset, [UInt8], HistoryExpectation)] = []
        let codec = LZ4Codec(), scratch = ByteWriter(capacity: 1 << 16)
        for s in Self.sources {
            for p in 0..<s.partitions {
                let tp = TopicPartition(s.name, p)
                let reader = try PartitionReader(directory: directory, topicPartition: tp)
                while var records = try reader.nextRecords(from: .zero, codec: codec, scratch: scratch) {
                    while let r = try records.next() {
                        let value = Array(r.value)
                        let n = try #require(Self.sequenceNumber(value), "record \(tp)@\(r.offset) carries no sequence number")
                        out.append((tp, r.offset, value, try #require(expected[n])))
                    }
                }
            }
        }
        return out
    }

    /// The history of every user, as the index must hold it when it has read exactly the
    /// records below `asOf`; and the counts it must report.
    func oracle(asOf: [TopicPartition: Offset]) throws -> (entries: [String: [OracleRecord]], counts: HistoryCounts) {
        var entries: [String: [OracleRecord]] = [:]
        var counts = HistoryCounts()
        for (tp, offset, value, expectation) in try scanLog() where offset < asOf[tp, default: .zero] {
            switch expectation {
            case .event(let user, let time, let fromRecord):
                counts.indexed += 1
                if fromRecord { counts.timeFromRecord += 1 }
                let position = EntryPosition(time: time, topic: tp.topic, partition: tp.partition, offset: offset)
                entries[user, default: []].append(OracleRecord(position: position, user: user, value: value))
            case .notJSON: counts.notJSON += 1
            case .withoutUser: counts.withoutUser += 1
            case .notASource: Issue.record("a record of a non-source topic in \(tp)")
            }
        }
        for u in entries.keys { entries[u]!.sort { $0.position < $1.position } }
        return (entries, counts)
    }

    /// The `seq` of a value: `"seq":N` in JSON, `#N` in garbage, `[N]`.
    static func sequenceNumber(_ value: [UInt8]) -> Int? {
        let text = String(decoding: value, as: UTF8.self)
        for marker in ["\"seq\":", "#", "["] {
            if let r = text.range(of: marker) {
                let digits = text[r.upperBound...].prefix { $0.isNumber }
                if let n = Int(digits) { return n }
            }
        }
        return nil
    }
}

func jsonString(_ s: String) -> String {
    "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

/// Walks every page of `user` in `[from, to)` with random page sizes; fails on a
/// repeated or out-of-order position.
func walkHistory(_ history: UserHistory, user: String, from: TimestampNanos? = nil, to: TimestampNanos? = nil,
                 random: inout SeededRandom) throws -> [HistoryPage.Entry] {
    var out: [HistoryPage.Entry] = []
    var cursor: String?
    while true {
        let page = try history.page(user: user, from: from, to: to, limit: random.int(1...7), cursor: cursor)
        out += page.entries
        cursor = page.cursor ?? cursor
        if !page.hasMore { break }
    }
    for (a, b) in zip(out, out.dropFirst()) {
        try #require(a.position < b.position, "a walk of \(user) went from \(a.position) to \(b.position) (\(random))")
    }
    return out
}
