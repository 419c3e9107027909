import Foundation
import Testing
import KappaCore
import KappaFormat
import KappaLog
import KappaTesting

extension CLITests {
    /// `kappa produce` then `kappa consume`, through the real binary: what goes in comes
    /// out, routed by Kafka's murmur2, with dense offsets, exact timestamps and working
    /// filters.
    @Suite struct CLIProduceConsumeTests {
        static let partitions: Int32 = 4
        static let lineCount = 3000

        @Test(arguments: ["lz4", "none"])
        func roundTrip(compression: String) throws {
            let ws = try CLIWorkspace()
            let lines = rebuLines(seed: 11, count: Self.lineCount)
            try #require(lines.count == Self.lineCount)
            let expected = routeByUserId(lines, partitions: Self.partitions)
            try ws.createTopic("events", partitions: Int(Self.partitions), extra: ["--compression", compression])
            let input = try ws.writeFile("in.jsonl", lines: lines)

            let produced = try ws.ok(["produce", "events", input])
            #expect(produced.stdout.isEmpty, "produce prints nothing on stdout")
            #expect(produced.stderrText.contains("\(Self.lineCount)"), "the summary names the count: \(produced.stderrText)")

            // Plain consume: the stored values, as they came, each once.
            let plain = try ws.ok(["consume", "events", "--from-beginning"])
            expectSameMultiset(plain.stdoutLines, lines, "consume --from-beginning")

            // --with-meta: topic, partition by murmur2, dense offsets, exact time, key.
            let meta = try ws.consumeAll("events")
            #expect(Set(meta.keys).isSubset(of: Set(0..<Self.partitions)))
            for p in 0..<Self.partitions {
                let records = meta[p] ?? []
                expectSameLines(records.map(\.value), expected[p]!, "partition \(p) values in input order")
                #expect(records.map(\.offset) == Array(0..<Int64(records.count)), "partition \(p): offsets dense from 0")
                for r in records {
                    let time = try #require(stringField("time_utc", in: r.value))
                    let user = try #require(stringField("user_id", in: r.value))
                    guard r.topic == "events", canonicalDecimal(r.timestamp) == canonicalDecimal(time), r.timestamp == canonicalDecimal(r.timestamp),
                          r.key == user, expectedPartition(key: user, partitions: Self.partitions) == p
                    else {
                        Issue.record("wrong metadata: \(r) (time_utc \(time), user_id \(user))")
                        break
                    }
                }
            }

            // Every batch on disk carries the topic's codec.
            let codec = try #require(CompressionCodec(name: compression))
            for p in 0..<Self.partitions {
                for log in try ws.logFiles("events", p) {
                    for b in try diskBatches(log) { #expect(b.header.compression == codec, "\(log) batch at \(b.position)") }
                }
            }

            // topics describe: end offsets per partition and in sum.
            let described = try ws.describe("events")
            #expect(described.count == Int(Self.partitions))
            #expect(described.reduce(0) { $0 + intField($1, "end_offset") } == Int64(Self.lineCount))
            for d in described {
                let p = Int32(intField(d, "partition"))
                #expect(intField(d, "start_offset") == 0)
                #expect(intField(d, "end_offset") == Int64(expected[p]!.count), "partition \(p): \(d)")
                #expect(intField(d, "records") == Int64(expected[p]!.count))
                #expect(d["compression"] as? String == compression)
            }
        }

        @Test func filtersMaxPartitionOffset() throws {
            let ws = try CLIWorkspace()
            let lines = rebuLines(seed: 12, count: Self.lineCount)
            let expected = routeByUserId(lines, partitions: Self.partitions)
            try ws.createTopic("events", partitions: Int(Self.partitions))
            try ws.ok(["produce", "events", try ws.writeFile("in.jsonl", lines: lines)])
            let inputSet = Set(lines)

            // Default start is the end (Kafka's latest): nothing to print, exit 0.
            let latest = try ws.ok(["consume", "events"])
            #expect(latest.stdout.isEmpty)

            // --max N stops after N records.
            let ten = try ws.ok(["consume", "events", "--from-beginning", "--max", "10"])
            #expect(ten.stdoutLines.count == 10)
            #expect(ten.stdoutLines.allSatisfy { inputSet.contains($0) })
            let zero = try ws.ok(["consume", "events", "--from-beginning", "--max", "0"])
            #expect(zero.stdout.isEmpty)

            // --partition P: exactly that partition, in order.
            for p in 0..<Self.partitions {
                let one = try ws.ok(["consume", "events", "--from-beginning", "--partition", String(p)])
                expectSameLines(one.stdoutLines, expected[p]!, "consume --partition \(p)")
            }

            // --partition P --offset N: from N on.
            let p2 = expected[2]!
            try #require(p2.count > 100)
            let wholeP2 = try ws.consumeAll("events", extra: ["--partition", "2"]).values.flatMap { $0 }
            #expect(wholeP2.count == p2.count)
            let tail = try ws.ok(["consume", "events", "--partition", "2", "--offset", "100", "--with-meta"]).stdoutLines.map(MetaRecord.init)
            #expect(tail.map(\.offset) == Array(100..<Int64(p2.count)))
            expectSameLines(tail.map(\.value), Array(p2[100...]), "partition 2 from offset 100")

            // --offset N --max M on one partition: offsets N..<N+M.
            let window = try ws.ok(["consume", "events", "--partition", "1", "--offset", "5", "--max", "3", "--with-meta"]).stdoutLines.map(MetaRecord.init)
            #expect(window.map(\.offset) == [5, 6, 7])
            expectSameLines(window.map(\.value), Array(expected[1]![5..<8]), "partition 1 offsets 5...7")

            // --offset N on every partition.
            let all100 = try ws.ok(["consume", "events", "--offset", "100", "--with-meta"]).stdoutLines.map(MetaRecord.init)
            let grouped = try groupByPartition(all100)
            for p in 0..<Self.partitions {
                let want = expected[p]!.count > 100 ? Array(expected[p]![100...]) : []
                expectSameLines(grouped[p]?.map(\.value) ?? [], want, "partition \(p) from offset 100")
                #expect(grouped[p]?.first.map(\.offset) ?? 100 == 100)
            }

            // An offset past the end prints nothing and succeeds.
            let past = try ws.ok(["consume", "events", "--partition", "0", "--offset", "1000000"])
            #expect(past.stdout.isEmpty)

            // topics list shows the topic.
            let listed = try ws.ok(["topics", "list"]).stdoutLines.map(parseJSONObject)
            #expect(listed.contains { $0["topic"] as? String == "events" && intField($0, "partitions") == Int64(Self.partitions) })
        }

        /// Event times in every accepted form come out exact, in decimal seconds; keys
        /// may be numbers, nested fields, or absent (round-robin).
        @Test func timeFormatsKeysAndFieldPaths() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("times", partitions: 4)
            let cases: [(line: String, timestamp: String, key: String)] = [
                (#"{"time_utc":"1457741907.959400112","user_id":"a"}"#, "1457741907.959400112", "a"),
                (#"{"time_utc":1457741907.959400112,"user_id":"b"}"#, "1457741907.959400112", "b"),
                (#"{"time_utc":"1457741907.900000000","user_id":"c"}"#, "1457741907.9", "c"),
                (#"{"time_utc":1457741907,"user_id":"d"}"#, "1457741907", "d"),
                (#"{"time_utc":"1457741907.000000001","user_id":"e"}"#, "1457741907.000000001", "e"),
                (#"{"time_utc":"2016-03-12T00:18:27.959400112Z","user_id":"f"}"#, "1457741907.959400112", "f"),
                (#"{"time_utc":"2016-03-12T01:18:27.5+01:00","user_id":"g"}"#, "1457741907.5", "g"),
                (#"{"time_utc":"1457741907.959400112","user_id":12345}"#, "1457741907.959400112", "12345"),
                (#"{"time_utc":"1457741907.959400112","user_id":"hé"}"#, "1457741907.959400112", "h\u{e9}"),
            ]
            try ws.ok(["produce", "times", "-"], stdin: joinLines(cases.map { bytes($0.line) }))
            let meta = try ws.consumeAll("times").values.flatMap { $0 }
            try #require(meta.count == cases.count)
            for c in cases {
                let r = try #require(meta.first { $0.value == bytes(c.line) }, "stored as given: \(c.line)")
                #expect(r.timestamp == c.timestamp, "\(c.line)")
                #expect(r.key == c.key, "\(c.line)")
                #expect(r.partition == expectedPartition(key: c.key, partitions: 4), "\(c.line): murmur2 of the key's UTF-8")
            }

            // --key-field and --time-field take dotted paths into nested objects.
            try ws.createTopic("nested", partitions: 3)
            let nested = [#"{"ts":"1457741907.1","who":{"id":"x1"}}"#, #"{"ts":"1457741908.25","who":{"id":"x2"}}"#]
            try ws.ok(["produce", "nested", "-", "--key-field", "who.id", "--time-field", "ts"], stdin: joinLines(nested.map(bytes)))
            let n = try ws.consumeAll("nested").values.flatMap { $0 }.sorted { $0.timestamp < $1.timestamp }
            #expect(n.map(\.key) == ["x1", "x2"])
            #expect(n.map(\.timestamp) == ["1457741907.1", "1457741908.25"])
            #expect(n.map(\.partition) == [expectedPartition(key: "x1", partitions: 3), expectedPartition(key: "x2", partitions: 3)])

            // No key field: null keys, spread round-robin.
            try ws.createTopic("spread", partitions: 4)
            let plain = rebuLines(seed: 13, count: 8)
            try ws.ok(["produce", "spread", "-", "--key-field", ""], stdin: joinLines(plain))
            let spread = try ws.consumeAll("spread")
            #expect(spread.values.flatMap { $0 }.allSatisfy { $0.key == nil })
            #expect((0..<4).map { spread[Int32($0)]?.count ?? 0 } == [2, 2, 2, 2], "round-robin over 4 partitions")
        }

        /// Retention deletes whole old segments only: what remains is a suffix of the
        /// input starting at the first remaining segment, and reading below it says so.
        @Test func retentionKeepsASuffixOfWholeSegments() throws {
            let ws = try CLIWorkspace()
            let lines = rebuLines(seed: 14, count: 5000)
            try ws.createTopic("small", partitions: 1, extra: ["--segment-bytes", "4096", "--retention-bytes", "150000"])
            for run in 0..<5 {
                try ws.ok(["produce", "small", try ws.writeFile("run\(run).jsonl", lines: Array(lines[(run * 1000)..<((run + 1) * 1000)]))])
            }
            let d = try #require(try ws.describe("small").first)
            let start = intField(d, "start_offset")
            #expect(start > 0, "retention deleted something: \(d)")
            #expect(intField(d, "end_offset") == 5000)
            let firstLog = try #require(try ws.logFiles("small", 0).first)
            #expect(firstLog.hasSuffix(SegmentFiles.name(Offset(start)) + ".log"), "the log starts at a segment boundary")
            let meta = try ws.consumeAll("small")
            #expect(meta[0]?.first?.offset == start)
            expectSameLines(meta[0]?.map(\.value) ?? [], Array(lines[Int(start)...]), "the remaining suffix")
            let below = try ws.ok(["consume", "small", "--offset", "0", "--max", "1", "--with-meta"])
            #expect(below.stderrText.contains("retention"), "reading below the start says why: \(below.stderrText)")
            #expect(try MetaRecord(try #require(below.stdoutLines.first)).offset == start)

            // By age: events from 2016 are older than 1 day, so only the active segment stays.
            try ws.createTopic("old", partitions: 1, extra: ["--segment-bytes", "4096", "--retention", "1d"])
            for run in 0..<3 {
                try ws.ok(["produce", "old", try ws.writeFile("old\(run).jsonl", lines: Array(lines[(run * 1000)..<((run + 1) * 1000)]))])
            }
            let o = try #require(try ws.describe("old").first)
            #expect(intField(o, "segments") == 1 && intField(o, "start_offset") == 2000 && intField(o, "end_offset") == 3000, "\(o)")
            expectSameLines(try ws.consumeAll("old")[0]?.map(\.value) ?? [], Array(lines[2000..<3000]), "the active segment")
        }
    }
}
