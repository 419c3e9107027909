import Testing
import KappaCore
import KappaFormat
@testable import KappaServer
import KappaTesting

/// The produce path's pure parts: batch validation and idempotent sequence state.
@Suite struct KafkaProduceUnitTests {
    @Test func sequencesWrapAsKafkasDo() {
        #expect(ProducerTable.sequence(0, plus: 4) == 4)
        #expect(ProducerTable.sequence(Int32.max, plus: 1) == 0)
        #expect(ProducerTable.sequence(Int32.max - 1, plus: 3) == 1)
    }

    @Test func producerTableDeduplicatesAndOrders() {
        var t = ProducerTable()
        #expect(t.check(producerId: 1, epoch: 0, firstSequence: 7, lastSequence: 9) == .append, "an unknown producer (state expired) appends")
        t.record(producerId: 1, epoch: 0, firstSequence: 0, lastSequence: 4, baseOffset: Offset(100))
        #expect(t.check(producerId: 1, epoch: 0, firstSequence: 0, lastSequence: 4) == .duplicate(baseOffset: Offset(100)))
        #expect(t.check(producerId: 1, epoch: 0, firstSequence: 5, lastSequence: 9) == .append)
        if case .reject(let code, _) = t.check(producerId: 1, epoch: 0, firstSequence: 6, lastSequence: 9) { #expect(code == .outOfOrderSequenceNumber) } else { Issue.record("a gap appended") }
        // Only the last five batches are remembered.
        for i in 1...5 { t.record(producerId: 1, epoch: 0, firstSequence: Int32(i * 5), lastSequence: Int32(i * 5 + 4), baseOffset: Offset(Int64(100 + i * 5))) }
        if case .reject = t.check(producerId: 1, epoch: 0, firstSequence: 0, lastSequence: 4) {} else { Issue.record("a batch six back is not a duplicate any more") }
        #expect(t.check(producerId: 1, epoch: 1, firstSequence: 0, lastSequence: 0) == .append, "a new epoch from 0")
        if case .reject(let code, _) = t.check(producerId: 1, epoch: 1, firstSequence: 3, lastSequence: 3) { #expect(code == .outOfOrderSequenceNumber) }
        t.record(producerId: 1, epoch: 1, firstSequence: 0, lastSequence: 0, baseOffset: Offset(200))
        if case .reject(let code, _) = t.check(producerId: 1, epoch: 0, firstSequence: 30, lastSequence: 30) { #expect(code == .invalidProducerEpoch) } else { Issue.record("a fenced epoch appended") }
    }

    @Test func replayRebuildsTheTableFromBatchHeaders() {
        var live = ProducerTable()
        var replayed = ProducerTable()
        for (i, seq) in [0, 3, 6].enumerated() {
            var batch = sealedBatch(records: 3, producerId: 42, epoch: 2, sequence: Int32(seq))
            batch.replaceSubrange(0..<8, with: bigEndian(Int64(i * 3)))
            live.record(producerId: 42, epoch: 2, firstSequence: Int32(seq), lastSequence: Int32(seq + 2), baseOffset: Offset(Int64(i * 3)))
            batch.withUnsafeBytes { replayed.replay(UnsafeRawBufferPointer(rebasing: $0[0..<RecordBatchLayout.headerBytes])) }
        }
        #expect(replayed == live)
        let plain = sealedBatch(records: 2)
        plain.withUnsafeBytes { replayed.replay(UnsafeRawBufferPointer(rebasing: $0[0..<RecordBatchLayout.headerBytes])) }
        #expect(replayed == live, "batches without a producer id change nothing")
    }

    @Test func validationAcceptsKappasOwnBatchesAndRefusesDamage() {
        let codec = LZ4Codec()
        let scratch = ByteWriter(capacity: 1 << 16)
        let good = sealedBatch(records: 3) + sealedBatch(records: 2)
        guard case .success(let batches) = good.withUnsafeBytes({ ClientBatches.validate($0, codec: codec, scratch: scratch) }) else {
            Issue.record("two good batches refused")
            return
        }
        #expect(batches.map(\.header.recordsCount) == [3, 2])
        // Every single-byte change of the first batch is refused (or, outside the CRC,
        // in a field that does not matter), never accepted as different data, never a trap.
        var random = SeededRandom(seed: 11)
        let one = sealedBatch(records: 4)
        for _ in 0..<2000 {
            var b = one
            let at = random.int(0...(b.count - 1))
            b[at] ^= UInt8(random.int(1...255))
            let result = b.withUnsafeBytes { ClientBatches.validate($0, codec: codec, scratch: scratch) }
            if case .success = result {
                // Base offset and leader epoch lie outside the CRC; everything else is covered.
                #expect(at < RecordBatchLayout.batchLengthOffset || (at >= RecordBatchLayout.partitionLeaderEpochOffset && at < RecordBatchLayout.magicOffset),
                        "a change at byte \(at) was accepted")
            }
        }
    }
}
