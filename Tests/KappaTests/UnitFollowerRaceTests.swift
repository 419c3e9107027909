import Foundation
import Synchronization
import Testing
@testable import KappaCore
@testable import KappaFormat
@testable import KappaLog
import KappaTesting

/// A reader that follows a partition while a writer in another thread appends and rolls
/// segments (4 KiB segments: a roll every few batches). The reader must see every offset
/// once, in order, and never report damage: between two readings of the published end a
/// writer may append to the segment the reader is in and roll, and the reader must read
/// the rest of that segment before it moves on (found by a daemon test: "segment …
/// starts at offset N, expected M").
@Suite struct UnitFollowerRaceTests {
    @Test func followerSeesEveryOffsetWhileTheWriterRolls() throws {
        let dir = try TemporaryDirectory(prefix: "kappa-follow-race")
        let data = dir.dataDirectory
        let config = TopicConfig(partitions: 1, compression: .none, segmentBytes: 4096)
        try data.createTopic("t", config: config)
        let tp = TopicPartition("t", 0)
        let batches = 3000
        let writerDone = Mutex(false)
        let writerError = Mutex<String?>(nil)
        let thread = Thread {
            do {
                let w = try PartitionWriter(directory: data, topicPartition: tp, config: config, fsync: .never)
                let coding = BatchCoding()
                var i = 0
                while i < batches {
                    // Several batches per append: one append both ends a segment and rolls to
                    // the next, published at once.
                    let sealed = SealedBatches()
                    for _ in 0..<min(1 + i % 5, batches - i) {
                        let record = ReferenceRecord(key: nil, value: Array("record \(i) ".utf8) + [UInt8](repeating: 0x61, count: 600),
                                                     timestamp: TimestampNanos(Int64(i) * 1_000_000), headers: [])
                        sealed.seal([record], compression: config.codec, codec: coding.codec)
                        i += 1
                    }
                    try w.append(sealed)
                    // Let the reader catch up and spin on the end, where the race is.
                    if i % 2 == 0 { usleep(UInt32(i % 7) * 20) }
                }
            } catch {
                writerError.withLock { $0 = "\(error)" }
            }
            writerDone.withLock { $0 = true }
        }
        thread.start()
        let reader = try PartitionReader(directory: data, topicPartition: tp)
        var next: Int64 = 0
        var problems: [String] = []
        let deadline = Date().addingTimeInterval(120)
        while next < Int64(batches) && Date() < deadline {
            do {
                let finished = writerDone.withLock { $0 }  // read before looking: then nothing more can come
                guard let batch = try reader.nextBatch() else {
                    if finished { break }
                    continue
                }
                if batch.header.baseOffset.rawValue != next { problems.append("batch at \(batch.header.baseOffset), expected \(next)") }
                next = batch.header.nextOffset.rawValue
            } catch {
                problems.append("\(error)")
                break
            }
        }
        while !writerDone.withLock({ $0 }) { usleep(1000) }
        #expect(writerError.withLock { $0 } == nil)
        #expect(problems.isEmpty && next == Int64(batches), "read up to \(next) of \(batches): \(problems.prefix(3))")
    }
}
