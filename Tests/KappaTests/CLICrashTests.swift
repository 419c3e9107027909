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
    /// kill -9 of `kappa produce` in the middle of a large input: every partition keeps a
    /// prefix of its input (in order, nothing missing before the cut, nothing invented),
    /// a torn tail is repaired by the next producer, and producing the rest completes the
    /// log exactly.
    @Suite struct CLICrashTests {
        static let partitions: Int32 = 3
        /// About 30 MB of JSON: each partition gets a few 1 MiB writes (the producer's
        /// write threshold), so a kill can land between and inside them.
        static let lineCount = 120_000

        /// Where each round kills the producer: once the topic's .log bytes have grown by
        /// this much since the round began (1 = the first write of any partition, when the
        /// other partitions may not have written yet).
        static let killAfterGrowthBytes: [Int64] = [1, 1, 2 << 20]

        @Test func killDuringProduceKeepsAPrefixPerPartition() throws {
            let ws = try CLIWorkspace()
            let lines = rebuLines(seed: 21, count: Self.lineCount)
            try #require(Set(lines).count == lines.count, "generator lines are unique, so a duplicate in the log is the log's")
            let expected = routeByUserId(lines, partitions: Self.partitions)
            // Each line's partition and its index among that partition's lines.
            var place: [(partition: Int32, index: Int)] = []
            var seen = [Int32: Int]()
            for l in lines {
                let p = expectedPartition(key: try #require(stringField("user_id", in: l)), partitions: Self.partitions)
                place.append((p, seen[p, default: 0]))
                seen[p, default: 0] += 1
            }
            try ws.createTopic("app", partitions: Int(Self.partitions))

            var stored = [Int32: Int]()  // records each partition holds
            var tornPartitions: [Int32] = []  // partitions left with a torn tail by the last kill
            var kills = 0
            for (round, growth) in Self.killAfterGrowthBytes.enumerated() {
                let pending = lines.indices.filter { place[$0].index >= stored[place[$0].partition, default: 0] }.map { lines[$0] }
                let file = try ws.writeFile("round\(round).jsonl", lines: pending)
                let before = ws.topicLogBytes("app")
                let producer = try ws.start(["produce", "app", file, "--fsync", "never"])
                try waitUntil("round \(round): the log to grow by \(growth) bytes", timeoutSeconds: 120, pollSeconds: 0.001) {
                    ws.topicLogBytes("app") >= before + growth || !producer.isRunning
                }
                producer.send(SIGKILL)
                let status = try producer.waitForExit()
                if status == 128 + SIGKILL { kills += 1 } else { #expect(status == 0, "\(producer.result)") }
                checkRecoveryReported(producer.stderrText, torn: tornPartitions, round: round)

                // Each partition: a prefix of its input. (Read plainly and routed by key,
                // which the round-trip test shows is where records go: parsing 200k
                // --with-meta lines per round would dominate the test's time.)
                let read = try ws.ok(["consume", "app", "--from-beginning"]).stdoutLines
                let routed = routeByUserId(read, partitions: Self.partitions)
                #expect(routed.values.reduce(0) { $0 + $1.count } == read.count, "round \(round): every record read has a key")
                for p in 0..<Self.partitions {
                    let values = routed[p] ?? []
                    #expect(values.count <= expected[p]!.count)
                    expectSameLines(values, Array(expected[p]!.prefix(values.count)), "round \(round) partition \(p): a prefix of its input")
                    stored[p] = values.count
                }
                tornPartitions = try Self.partitionsWithTornTail(ws, "app")
            }
            // Most rounds must really have killed a producer mid-way, or nothing was tested.
            #expect(kills >= 2, "only \(kills) of \(Self.killAfterGrowthBytes.count) producers were killed before finishing")

            // Produce the rest: the log is then exactly the input.
            let rest = lines.indices.filter { place[$0].index >= stored[place[$0].partition, default: 0] }.map { lines[$0] }
            let last = try ws.ok(["produce", "app", try ws.writeFile("rest.jsonl", lines: rest), "--fsync", "never"])
            checkRecoveryReported(last.stderrText, torn: tornPartitions, round: Self.killAfterGrowthBytes.count)
            for p in 0..<Self.partitions {
                let read = try ws.ok(["consume", "app", "--from-beginning", "--partition", String(p)]).stdoutLines
                expectSameLines(read, expected[p]!, "partition \(p) after producing the rest")
            }
            let described = try ws.describe("app")
            #expect(described.reduce(0) { $0 + intField($1, "end_offset") } == Int64(lines.count))

            // Nothing on disk is corrupt: every segment is whole batches with matching CRCs
            // and continuing offsets, and the indexes find records by offset.
            for p in 0..<Self.partitions {
                var next: Int64 = 0
                for log in try ws.logFiles("app", p) {
                    let batches = try diskBatches(log)
                    #expect(batches.reduce(0) { $0 + $1.totalBytes } == Int(fileSize(log)), "\(log) is whole batches")
                    let data = try Array(Data(contentsOf: URL(fileURLWithPath: log)))
                    for b in batches {
                        #expect(b.header.baseOffset.rawValue == next, "\(log) batch at \(b.position)")
                        next = b.header.nextOffset.rawValue
                        let crcOK = data.withUnsafeBytes { RecordBatchFramer.crcMatches(UnsafeRawBufferPointer(rebasing: $0[b.position..<(b.position + b.totalBytes)])) }
                        #expect(crcOK, "\(log) batch at \(b.position): CRC")
                    }
                }
                #expect(next == Int64(expected[p]!.count), "partition \(p) ends at its input count")
                for k in [0, expected[p]!.count / 3, expected[p]!.count - 1] {
                    let one = try ws.ok(["consume", "app", "--partition", String(p), "--offset", String(k), "--max", "1", "--with-meta"])
                    let r = try MetaRecord(try #require(one.stdoutLines.first))
                    #expect(r.offset == Int64(k))
                    #expect(r.value == expected[p]![k], "partition \(p) offset \(k) found through the index")
                }
            }
        }

        /// A producer killed mid-write leaves the first bytes of a batch at the end of the
        /// log. A follower that has already read those bytes, and a producer that was
        /// running all along, must both get past the repair: the producer truncates the
        /// torn bytes (and says so) before its next append, and the follower prints that
        /// append instead of mistaking its buffered torn bytes plus the new batch for
        /// corruption.
        @Test func followerAndLiveProducerGetPastAnotherProducersTornWrite() throws {
            let ws = try CLIWorkspace()
            try ws.createTopic("live", partitions: 1)
            let lines = rebuLines(seed: 22, count: 2000)
            let producer = try ws.start(["produce", "live", "-"], interactiveStdin: true)
            try producer.write(joinLines(Array(lines[0..<1000])))
            try waitUntil("1000 records stored") { try ws.describe("live").first.map { intField($0, "end_offset") } == 1000 }
            let follower = try ws.start(["consume", "live", "--follow", "--from-beginning", "--with-meta"])
            try waitUntil("the follower to print 1000 records") { follower.stdoutLines.count >= 1000 || !follower.isRunning }

            // The torn write: the first 500 bytes of a batch stamped with the next offset.
            let log = try #require(try ws.logFiles("live", 0).last)
            let batch = try #require(try diskBatches(log).first)
            var torn = Array(try Data(contentsOf: URL(fileURLWithPath: log))[batch.position..<(batch.position + 500)])
            withUnsafeBytes(of: Int64(1000).bigEndian) { for i in 0..<8 { torn[RecordBatchLayout.baseOffsetOffset + i] = $0[i] } }
            let readBefore = try Self.bytesRead(follower.pid)
            try appendBytes(log, torn)
            try waitUntil("the follower to read the torn bytes") { try Self.bytesRead(follower.pid) >= readBefore + Int64(torn.count) }

            try producer.write(joinLines(Array(lines[1000...])))
            try waitUntil("2000 records stored") { try ws.describe("live").first.map { intField($0, "end_offset") } == 2000 }
            producer.closeStdin()
            #expect(try producer.waitForExit() == 0, "\(producer.result)")
            #expect(producer.stderrText.contains("recovered live partition 0"),
                    "the running producer truncated the torn tail without logging it: \(producer.stderrText)")
            #expect(fileSize(log) == Int64(try diskBatches(log).reduce(0) { $0 + $1.totalBytes }), "the torn bytes are gone")

            try waitUntil("the follower to print 2000 records (or die)") { follower.stdoutLines.count >= 2000 || !follower.isRunning }
            #expect(follower.isRunning, "the follower died: \(follower.result)")
            follower.send(SIGTERM)
            #expect(try follower.waitForExit() == 0)
            let meta = try groupByPartition(follower.stdoutLines.map(MetaRecord.init))
            expectSameLines(meta[0]?.map(\.value) ?? [], lines, "the follower printed every record once, in order")
        }

        /// Bytes the process has read so far (`rchar` of /proc/PID/io).
        static func bytesRead(_ pid: Int32) throws -> Int64 {
            let io = try String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8)
            let line = try #require(io.split(separator: "\n").first { $0.hasPrefix("rchar:") })
            return try #require(Int64(line.dropFirst("rchar:".count).trimmingCharacters(in: .whitespaces)))
        }

        /// Partitions whose last .log file ends inside a batch (what a kill mid-write leaves).
        static func partitionsWithTornTail(_ ws: CLIWorkspace, _ topic: String) throws -> [Int32] {
            var out: [Int32] = []
            for p in 0..<partitions {
                guard let log = try ws.logFiles(topic, p).last else { continue }
                if try diskBatches(log).reduce(0, { $0 + $1.totalBytes }) != Int(fileSize(log)) { out.append(p) }
            }
            return out
        }

        /// The producer that opens a partition with a torn tail must say it repaired it.
        func checkRecoveryReported(_ stderr: String, torn: [Int32], round: Int) {
            for p in torn {
                #expect(stderr.contains("recovered app partition \(p)"), "round \(round): producer did not report the repair of partition \(p): \(stderr)")
            }
        }
    }
}
