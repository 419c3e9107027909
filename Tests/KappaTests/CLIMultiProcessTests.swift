import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif
import KappaCore
import KappaFormat
import KappaLog
import KappaTesting

extension CLITests {
    /// Several processes on one data directory: concurrent producers serialise per
    /// partition at batch boundaries and lose nothing; a follower sees later appends.
    @Suite struct CLIMultiProcessTests {
        /// The values of each batch of a partition, in log order, read in this process.
        static func batchValues(_ ws: CLIWorkspace, _ topic: String, _ p: Int32) throws -> [[[UInt8]]] {
            let reader = try PartitionReader(directory: ws.dataDirectory, topicPartition: TopicPartition(topic, p))
            let codec = LZ4Codec()
            let scratch = ByteWriter(capacity: 1 << 16)
            var out: [[[UInt8]]] = []
            while let batch = try reader.nextBatch() {
                var it = try RecordBatchDecoder.records(of: batch.bytes, header: batch.header, codec: codec, scratch: scratch)
                out.append(try it.collect().map(\.record.value))
            }
            return out
        }

        /// Checks partition `p` of `topic` holds exactly the records of the sources, each
        /// source's in its own order, every batch from one source only. Returns how often
        /// the source changes from one batch to the next.
        @discardableResult
        static func checkInterleaving(_ ws: CLIWorkspace, _ topic: String, _ p: Int32, sources: [[[UInt8]]]) throws -> Int {
            let owner = Dictionary(uniqueKeysWithValues: sources.enumerated().flatMap { i, lines in lines.map { ($0, i) } })
            let batches = try batchValues(ws, topic, p)
            var switches = 0
            var previous: Int? = nil
            for (b, values) in batches.enumerated() {
                let from = Set(values.map { owner[$0] ?? -1 })
                #expect(from.count == 1 && !from.contains(-1), "partition \(p) batch \(b): records from sources \(from.sorted()) (-1 = unknown)")
                if let s = from.first, from.count == 1 {
                    if let previous, previous != s { switches += 1 }
                    previous = s
                }
            }
            let all = batches.flatMap { $0 }
            #expect(all.count == sources.reduce(0) { $0 + $1.count }, "partition \(p): every record exactly once")
            for (i, lines) in sources.enumerated() {
                expectSameLines(all.filter { owner[$0] == i }, lines, "partition \(p): source \(i) in its order")
            }
            return switches
        }

        @Test func concurrentProducersFromFiles() throws {
            let ws = try CLIWorkspace()
            let partitions: Int32 = 2
            let a = rebuLines(seed: 41, count: 50_000)
            let b = rebuLines(seed: 42, count: 50_000)
            try #require(Set(a).count == a.count && Set(b).count == b.count && Set(a).isDisjoint(with: Set(b)), "sources distinguishable")
            try ws.createTopic("shared", partitions: Int(partitions))
            let fileA = try ws.writeFile("a.jsonl", lines: a)
            let fileB = try ws.writeFile("b.jsonl", lines: b)
            let pa = try ws.start(["produce", "shared", fileA])
            let pb = try ws.start(["produce", "shared", fileB])
            #expect(try pa.waitForExit(timeoutSeconds: 120) == 0, "\(pa.result)")
            #expect(try pb.waitForExit(timeoutSeconds: 120) == 0, "\(pb.result)")

            let ea = routeByUserId(a, partitions: partitions)
            let eb = routeByUserId(b, partitions: partitions)
            for p in 0..<partitions {
                try Self.checkInterleaving(ws, "shared", p, sources: [ea[p]!, eb[p]!])
            }
            let described = try ws.describe("shared")
            #expect(described.reduce(0) { $0 + intField($1, "end_offset") } == Int64(a.count + b.count))
            let meta = try ws.consumeAll("shared")
            #expect(meta.values.reduce(0) { $0 + $1.count } == a.count + b.count)
        }

        /// Two producers fed through stdin pipes, chunk by chunk in turn: each chunk is
        /// flushed as the pipe runs dry, so the partitions interleave the two producers
        /// at known batch boundaries.
        @Test func interleavedProducersThroughStdin() throws {
            let ws = try CLIWorkspace()
            let partitions: Int32 = 3
            let rounds = 4
            let chunk = 150
            let a = rebuLines(seed: 43, count: rounds * chunk)
            let b = rebuLines(seed: 44, count: rounds * chunk)
            try #require(Set(a).isDisjoint(with: Set(b)))
            try ws.createTopic("shared", partitions: Int(partitions))
            let pa = try ws.start(["produce", "shared", "-"], interactiveStdin: true)
            let pb = try ws.start(["produce", "shared", "-"], interactiveStdin: true)
            var written = 0
            for r in 0..<rounds {
                for (producer, lines) in [(pa, a), (pb, b)] {
                    try producer.write(joinLines(Array(lines[(r * chunk)..<((r + 1) * chunk)])))
                    written += chunk
                    let want = Int64(written)
                    try waitUntil("\(want) records in the topic (round \(r), \(producer.description))", timeoutSeconds: 60) {
                        try ws.describe("shared").reduce(0) { $0 + intField($1, "end_offset") } == want
                    }
                }
            }
            pa.closeStdin()
            pb.closeStdin()
            #expect(try pa.waitForExit() == 0, "\(pa.result)")
            #expect(try pb.waitForExit() == 0, "\(pb.result)")

            let ea = routeByUserId(a, partitions: partitions)
            let eb = routeByUserId(b, partitions: partitions)
            var switches = 0
            for p in 0..<partitions {
                switches += try Self.checkInterleaving(ws, "shared", p, sources: [ea[p]!, eb[p]!])
            }
            // Every chunk reached every partition, so each partition alternates.
            #expect(switches >= Int(partitions) * (2 * rounds - 1) / 2, "the producers interleaved (\(switches) source switches)")
        }

        /// Readers running while a producer appends see only whole batches: every read is
        /// a prefix of each partition's input, never a torn or garbled record.
        @Test func readersDuringAppendsSeeOnlyWholeBatches() throws {
            let ws = try CLIWorkspace()
            let partitions: Int32 = 3
            let chunks = 20
            let chunk = 500
            let lines = rebuLines(seed: 46, count: chunks * chunk)
            let expected = routeByUserId(lines, partitions: partitions)
            try ws.createTopic("busy", partitions: Int(partitions))
            let producer = try ws.start(["produce", "busy", "-"], interactiveStdin: true)
            var longest = 0
            for c in 0..<chunks {
                try producer.write(joinLines(Array(lines[(c * chunk)..<((c + 1) * chunk)])))
                let r = try ws.ok(["consume", "busy", "--from-beginning"])
                longest = max(longest, r.stdoutLines.count)
                // Route what was read by its key: each partition's part is a prefix of its input.
                let read = routeByUserId(r.stdoutLines, partitions: partitions)
                #expect(read.values.reduce(0) { $0 + $1.count } == r.stdoutLines.count, "chunk \(c): every line read has a key")
                for p in 0..<partitions {
                    let got = read[p] ?? []
                    if !expectSameLines(got, Array(expected[p]!.prefix(got.count)), "chunk \(c): partition \(p) read is a prefix") { break }
                }
            }
            producer.closeStdin()
            #expect(try producer.waitForExit() == 0, "\(producer.result)")
            let all = try ws.ok(["consume", "busy", "--from-beginning"])
            expectSameMultiset(all.stdoutLines, lines, "everything, once the producer is done")
            #expect(longest > 0, "some reads saw records while the producer ran")
        }

        static let followCases: [(Int?, Int32)] = [(nil, SIGTERM), (65_536, SIGINT)]

        /// A follower started on an empty topic prints every record of later produces (also
        /// across segment rolls), and stops cleanly on SIGTERM or SIGINT.
        @Test(arguments: followCases)
        func followSeesLaterAppends(segmentBytes: Int?, stopSignal: Int32) throws {
            let ws = try CLIWorkspace()
            let partitions: Int32 = 3
            let lines = rebuLines(seed: 45, count: 4000)
            try ws.createTopic("live", partitions: Int(partitions), extra: segmentBytes.map { ["--segment-bytes", String($0)] } ?? [])
            let follower = try ws.start(["consume", "live", "--follow", "--from-beginning", "--with-meta"])

            let first = Array(lines[0..<3000])
            try ws.ok(["produce", "live", try ws.writeFile("first.jsonl", lines: first)])
            try waitUntil("the follower to print 3000 records", timeoutSeconds: 60) {
                #expect(follower.isRunning, "follower exited early: \(follower.result)")
                return follower.stdoutLines.count >= 3000 || !follower.isRunning
            }
            try ws.ok(["produce", "live", "-"], stdin: joinLines(Array(lines[3000...])))
            try waitUntil("the follower to print 4000 records", timeoutSeconds: 60) {
                follower.stdoutLines.count >= lines.count || !follower.isRunning
            }
            if segmentBytes != nil {
                #expect(try ws.logFiles("live", 0).count > 1, "segments rolled while following")
            }
            follower.send(stopSignal)
            #expect(try follower.waitForExit() == 0, "clean stop on signal \(stopSignal): \(follower.result)")
            let out = follower.stdout
            #expect(out.last == 0x0A, "output ends with a whole line")
            let meta = try groupByPartition(splitLines(out).map(MetaRecord.init))
            let expected = routeByUserId(lines, partitions: partitions)
            for p in 0..<partitions {
                expectSameLines(meta[p]?.map(\.value) ?? [], expected[p]!, "follower, partition \(p)")
                #expect(meta[p]?.first?.offset ?? 0 == 0)
            }
        }
    }
}
