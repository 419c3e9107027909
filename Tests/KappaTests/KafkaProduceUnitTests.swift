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

    /// An LZ4 batch whose stream copies from before its start (offset 0) decodes in
    /// liblz4 1.9.4 to whatever its buffer held: refused as corrupt before anything is
    /// read from it, with a valid CRC.
    @Test func lz4MatchFromBeforeTheStartIsRefused() {
        let plain = sealedBatch(records: 3)
        let records = Array(plain[RecordBatchLayout.recordsOffset...])
        // One block: the first 20 bytes as literals, a 4-byte match at offset 0, the rest.
        func lengths(_ n: Int) -> [UInt8] { n < 15 ? [] : Array(repeating: 255, count: (n - 15) / 255) + [UInt8((n - 15) % 255)] }
        let head = 20, rest = records.count - head - 4
        var block: [UInt8] = [0xF0] + lengths(head) + records[0..<head] + [0, 0]
        block += [UInt8(min(rest, 15) << 4)] + lengths(rest) + records[(head + 4)...]
        let frame: [UInt8] = [4, 34, 77, 24, 0x60, 0x40, 0x82] + withUnsafeBytes(of: UInt32(block.count).littleEndian) { Array($0) } + block + [0, 0, 0, 0]
        var batch = Array(plain[..<RecordBatchLayout.recordsOffset]) + frame
        batch.replaceSubrange(RecordBatchLayout.batchLengthOffset..<(RecordBatchLayout.batchLengthOffset + 4),
                              with: bigEndian(Int32(batch.count - RecordBatchLayout.logOverheadBytes)))
        let attributes = batch.withUnsafeBytes { $0.loadBigEndian(at: RecordBatchLayout.attributesOffset, as: Int16.self) } | CompressionCodec.lz4.rawValue
        batch.replaceSubrange(RecordBatchLayout.attributesOffset..<(RecordBatchLayout.attributesOffset + 2), with: bigEndian(attributes))
        fixCRC(&batch)
        let result = batch.withUnsafeBytes { ClientBatches.validate($0, codec: LZ4Codec(), scratch: ByteWriter()) }
        guard case .failure(let rejection) = result else {
            Issue.record("a batch with an LZ4 match at offset 0 was accepted")
            return
        }
        #expect(rejection.code == .corruptMessage && rejection.message.contains("copies from before its start"), "\(rejection)")
    }
}
