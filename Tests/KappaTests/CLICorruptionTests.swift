import Foundation
import Testing
import KappaCore
import KappaFormat
import KappaLog
import KappaTesting

extension CLITests {
    /// Damaged segment files, as a crash or a bad disk leaves them: a torn or garbage tail
    /// past the published end is cut by the next producer, which keeps the bytes aside and
    /// says so (topic, partition, offset, bytes) and appends on at the right offset; a
    /// damaged batch before the end is an error naming topic, partition, offset, file and
    /// position, never comes out as data, and is never truncated.
    @Suite struct CLICorruptionTests {
        static let partitions: Int32 = 2
        static let chunkLines = 1000

        /// A topic whose partitions hold several batches: three produce runs of
        /// `chunkLines` each (every run ends with a flush, so each adds a batch per
        /// partition). Returns the lines of the three runs and a fourth chunk to add later.
        struct Fixture {
            let ws: CLIWorkspace
            let stored: [[UInt8]]
            let more: [[UInt8]]
            var storedByPartition: [Int32: [[UInt8]]] { routeByUserId(stored, partitions: CLICorruptionTests.partitions) }
            var moreByPartition: [Int32: [[UInt8]]] { routeByUserId(more, partitions: CLICorruptionTests.partitions) }

            init(segmentBytes: Int? = nil) throws {
                ws = try CLIWorkspace()
                let lines = rebuLines(seed: 31, count: 4 * chunkLines)
                stored = Array(lines[0..<(3 * chunkLines)])
                more = Array(lines[(3 * chunkLines)...])
                try ws.createTopic("events", partitions: Int(partitions), extra: segmentBytes.map { ["--segment-bytes", String($0)] } ?? [])
                for run in 0..<3 {
                    let chunk = Array(stored[(run * chunkLines)..<((run + 1) * chunkLines)])
                    try ws.ok(["produce", "events", try ws.writeFile("run\(run).jsonl", lines: chunk)])
                }
            }

            /// Every batch of a partition, in log order, with its file.
            func batches(_ p: Int32) throws -> [(log: String, batch: DiskBatch)] {
                try ws.logFiles("events", p).flatMap { log in try diskBatches(log).map { (log, $0) } }
            }
        }

        // MARK: torn and garbage tails

        /// What a producer killed in the middle of a write leaves: the first bytes of a batch
        /// past the published end. Readers do not see them and never touch them; the next
        /// producer cuts them, keeps them aside as evidence, says so (topic, partition,
        /// offset, bytes) and appends at the cut.
        @Test func tornTailIsCutByTheNextProducerAndKeptAside() throws {
            let f = try Fixture()
            let p: Int32 = 0
            let log = try #require(try f.ws.logFiles("events", p).last)
            let batches = try diskBatches(log)
            try #require(batches.count >= 3, "fixture makes several batches")
            let size = fileSize(log)
            let end = f.storedByPartition[p]!.count
            var torn = Array(try Data(contentsOf: URL(fileURLWithPath: log))[batches[0].position..<(batches[0].position + batches[0].totalBytes / 2)])
            withUnsafeBytes(of: Int64(end).bigEndian) { for i in 0..<8 { torn[RecordBatchLayout.baseOffsetOffset + i] = $0[i] } }
            try appendBytes(log, torn)

            // A reader reads exactly the published batches and changes nothing.
            let early = try f.ws.ok(["consume", "events", "--from-beginning", "--partition", String(p)])
            expectSameLines(early.stdoutLines, f.storedByPartition[p]!, "partition \(p) read with a torn tail past the end")
            #expect(!early.stderrText.contains("recovered"), "\(early.stderrText)")
            #expect(fileSize(log) == size + Int64(torn.count), "the reader changed the log")

            // The next producer cuts the torn bytes, keeps them, and appends at the cut.
            let produced = try f.ws.ok(["produce", "events", try f.ws.writeFile("more.jsonl", lines: f.more)])
            let reports = produced.stderrLines.filter { $0.contains("recovered") }
            #expect(reports.count == 1, "one repair reported: \(produced.stderrText)")
            let report = try #require(reports.first)
            #expect(mentions(report, "events partition \(p)"), "\(report)")
            #expect(mentions(report, "offset \(end)"), "\(report)")
            #expect(mentions(report, " \(torn.count) bytes"), "bytes dropped: \(report)")
            let evidence = log + ".torn-\(end)"
            #expect(report.contains(evidence), "names the evidence file: \(report)")
            #expect((try? Array(Data(contentsOf: URL(fileURLWithPath: evidence)))) == torn, "the cut bytes are kept in \(evidence)")

            let meta = try f.ws.consumeAll("events")
            expectSameLines(meta[p]?.map(\.value) ?? [], f.storedByPartition[p]! + f.moreByPartition[p]!, "partition \(p): everything, then the new records")
            #expect(meta[p]?.map(\.offset) == Array(0..<Int64(meta[p]?.count ?? 0)))
            expectSameLines(meta[1]?.map(\.value) ?? [], f.storedByPartition[1]! + f.moreByPartition[1]!, "partition 1 untouched")
            let after = try diskBatches(log)
            #expect(after.reduce(0) { $0 + $1.totalBytes } == Int(fileSize(log)), "no torn bytes left")
            #expect(after.first { $0.position == Int(size) }?.header.baseOffset.rawValue == Int64(end), "new batch where the torn one was")
        }

        /// A published batch whose end is gone (the file was cut below what was written
        /// and synced) is not a torn tail: readers report it with its evidence, and a
        /// producer refuses to write (the log is shorter than its recovery point); nothing
        /// is truncated further.
        @Test func cutPublishedBatchIsCorruptionNotATornTail() throws {
            let f = try Fixture()
            let p: Int32 = 0
            let log = try #require(try f.ws.logFiles("events", p).last)
            let last = try #require(try diskBatches(log).last)
            let size = fileSize(log)
            try truncateFile(log, to: size - 10)

            let read = try f.ws.kappa(["consume", "events", "--from-beginning", "--partition", String(p)])
            #expect(read.status != 0, "\(read)")
            #expect(mentions(read.stderrText, "offset \(last.header.baseOffset)") && read.stderrText.contains(log)
                    && mentions(read.stderrText, "position \(last.position)"), "\(read.stderrText)")
            expectSameLines(read.stdoutLines, Array(f.storedByPartition[p]!.prefix(Int(last.header.baseOffset.rawValue))), "the batches before it")
            let produced = try f.ws.kappa(["produce", "events", try f.ws.writeFile("more.jsonl", lines: f.more)])
            #expect(produced.status != 0 && produced.stderrText.contains("shorter than its recovery point"), "\(produced)")
            #expect(fileSize(log) == size - 10, "nothing more was cut")
        }

        static let garbageTails: [(String, [UInt8])] = [
            ("text", Array("this is not a record batch\n".utf8)),
            ("zeros", [UInt8](repeating: 0, count: 4096)),  // what a file system may leave after a crash
            ("huge length", [0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF, 2, 3, 4]),
        ]

        @Test(arguments: garbageTails)
        func garbageTailIsTruncatedAndReported(_ name: String, _ garbage: [UInt8]) throws {
            let f = try Fixture()
            let p: Int32 = 1
            let log = try #require(try f.ws.logFiles("events", p).last)
            let size = fileSize(log)
            let end = f.storedByPartition[p]!.count
            try appendBytes(log, garbage)

            let produced = try f.ws.ok(["produce", "events", try f.ws.writeFile("more.jsonl", lines: f.more)])
            let reports = produced.stderrLines.filter { $0.contains("recovered") }
            #expect(reports.count == 1, "\(name): one repair reported: \(produced.stderrText)")
            let report = try #require(reports.first)
            #expect(mentions(report, "events partition \(p)"), "\(report)")
            #expect(mentions(report, "offset \(end)"), "\(report)")
            #expect(mentions(report, " \(garbage.count) bytes"), "bytes dropped: \(report)")
            #expect((try? Array(Data(contentsOf: URL(fileURLWithPath: log + ".torn-\(end)")))) == garbage, "\(name): the cut bytes are kept aside")

            let meta = try f.ws.consumeAll("events")
            expectSameLines(meta[p]?.map(\.value) ?? [], f.storedByPartition[p]! + f.moreByPartition[p]!, "\(name): partition \(p)")
            expectSameLines(meta[0]?.map(\.value) ?? [], f.storedByPartition[0]! + f.moreByPartition[0]!, "\(name): partition 0")
            let after = try diskBatches(log)
            #expect(after.reduce(0) { $0 + $1.totalBytes } == Int(fileSize(log)), "\(name): the garbage is gone")
            #expect(after.first { $0.position == Int(size) }?.header.baseOffset.rawValue == Int64(end), "\(name): new batch where the garbage was")
        }

        // MARK: corruption in the middle

        /// Which bytes of the middle batch to damage, relative to its start.
        enum Damage: String, CaseIterable, Sendable {
            case payload, crc, attributes, baseOffset, batchLength, magic

            func position(in batch: DiskBatch) -> Int {
                switch self {
                case .payload: batch.position + RecordBatchLayout.headerBytes + (batch.totalBytes - RecordBatchLayout.headerBytes) / 2
                case .crc: batch.position + RecordBatchLayout.crcOffset + 1
                case .attributes: batch.position + RecordBatchLayout.attributesOffset + 1
                case .baseOffset: batch.position + RecordBatchLayout.baseOffsetOffset + 7
                case .batchLength: batch.position + RecordBatchLayout.batchLengthOffset
                case .magic: batch.position + RecordBatchLayout.magicOffset
                }
            }
        }

        @Test(arguments: Damage.allCases, [nil, 4096])
        func middleCorruptionIsAnErrorNeverData(_ damage: Damage, segmentBytes: Int?) throws {
            let f = try Fixture(segmentBytes: segmentBytes)
            let p: Int32 = 1
            let all = try f.batches(p)
            try #require(all.count >= 3, "fixture makes several batches")
            if segmentBytes != nil { try #require(try f.ws.logFiles("events", p).count >= 3, "one segment per batch") }
            let (log, victim) = all[1]
            let bad = victim.header.baseOffset.rawValue
            let next = all[2].batch.header.baseOffset.rawValue
            try flipBytes(log, at: damage.position(in: victim))

            for extra in [[], ["--partition", String(p)]] {
                let r = try f.ws.kappa(["consume", "events", "--from-beginning", "--with-meta"] + extra)
                let what = "\(damage) \(segmentBytes.map { "segment \($0)" } ?? "") consume \(extra)"
                #expect(r.status != 0, "\(what): \(r)")
                #expect(r.stderrLines.count == 1, "\(what): one-line reason: \(r.stderrText)")
                #expect(mentions(r.stderrText, "topic events partition \(p)"), "\(what): \(r.stderrText)")
                #expect(mentions(r.stderrText, "offset \(bad)"), "\(what): names the damaged batch's offset \(bad): \(r.stderrText)")
                // Whatever was printed is good data from before the damaged batch.
                let printed = try groupByPartition(r.stdoutLines.map(MetaRecord.init))
                let fromP = printed[p] ?? []
                #expect(fromP.allSatisfy { $0.offset < bad }, "\(what): printed a record at or after offset \(bad)")
                expectSameLines(fromP.map(\.value), Array(f.storedByPartition[p]!.prefix(fromP.count)), "\(what): partition \(p) output is a prefix")
                if let other = printed[0] {
                    expectSameLines(other.map(\.value), Array(f.storedByPartition[0]!.prefix(other.count)), "\(what): partition 0 output is a prefix")
                }
            }

            // Starting inside the damaged batch is the same error.
            let inside = try f.ws.kappa(["consume", "events", "--partition", String(p), "--offset", String(bad)])
            #expect(inside.status != 0 && inside.stdout.isEmpty, "\(damage): \(inside)")
            #expect(mentions(inside.stderrText, "offset \(bad)"), "\(damage): \(inside.stderrText)")

            // A producer does not paper over it (no truncation of the good batches after
            // it) and appends on; the batches after the damage stay readable.
            let produced = try f.ws.ok(["produce", "events", try f.ws.writeFile("more.jsonl", lines: f.more)])
            #expect(!produced.stderrText.contains("recovered"), "\(damage): \(produced.stderrText)")
            let tail = try f.ws.ok(["consume", "events", "--partition", String(p), "--offset", String(next), "--with-meta"])
            let records = tail.stdoutLines.compactMap { try? MetaRecord($0) }
            let want = Array(f.storedByPartition[p]![Int(next)...]) + f.moreByPartition[p]!
            expectSameLines(records.map(\.value), want, "\(damage): partition \(p) from offset \(next)")
            #expect(records.first?.offset == next)
        }
    }
}
