import KappaCore
import KappaFormat

/// Checks the record batches a Kafka client sent for one partition (a Produce request's
/// `records` field) before a byte of them is appended: the log stores them as they are,
/// and readers take any batch that fails these checks for corruption of the log.
///
/// A partition's batches are accepted or refused together, so a broken batch appends
/// nothing. Checks, with the error code a Kafka client acts on:
/// - framing: whole batches back to back, each at least a header long, at most
///   `Limits.batchBytesMax` (MESSAGE_TOO_LARGE), magic 2 (INVALID_RECORD);
/// - CRC-32C over attributes … end (CORRUPT_MESSAGE);
/// - compression none or lz4 (UNSUPPORTED_COMPRESSION_TYPE for gzip, snappy, zstd);
/// - no control or transactional batches (transactions are not supported);
/// - at least one record, offset deltas 0, 1, … dense (the log's offsets are dense and a
///   writer advances by the record count), every record within bounds after inflating
///   (CORRUPT_MESSAGE), the batch's max timestamp equal to its records' largest (the log's
///   time index and retention read it);
/// - idempotence fields either all unset (-1) or all set, and an idempotent request
///   carries exactly one batch (as Kafka requires).
/// Pure apart from the codec and scratch buffer it is lent; decoding never reads out
/// of bounds whatever the bytes (the fuzz target feeds it random input).
enum ClientBatches {
    struct Batch: Equatable {
        var range: Range<Int>
        var header: RecordBatchHeader
        var producer: ProducerFields
        var lastSequence: Int32 { ProducerTable.sequence(producer.baseSequence, plus: header.lastOffsetDelta) }
        var isIdempotent: Bool { producer.producerId >= 0 }
    }

    struct Rejection: Error, Equatable, CustomStringConvertible {
        var code: ErrorCode
        var message: String
        var description: String { "\(code): \(message)" }
    }

    static func validate(_ bytes: UnsafeRawBufferPointer, codec: LZ4Codec, scratch: ByteWriter) -> Result<[Batch], Rejection> {
        var batches: [Batch] = []
        var position = 0
        while position < bytes.count {
            switch validateOne(UnsafeRawBufferPointer(rebasing: bytes[position...]), index: batches.count, codec: codec, scratch: scratch) {
            case .success(var batch):
                batch.range = (position + batch.range.lowerBound)..<(position + batch.range.upperBound)
                position = batch.range.upperBound
                batches.append(batch)
            case .failure(let rejection):
                return .failure(rejection)
            }
        }
        guard !batches.isEmpty else { return .failure(Rejection(code: .invalidRecord, message: "no record batch in the request")) }
        if batches.count > 1, batches.contains(where: \.isIdempotent) {
            return .failure(Rejection(code: .invalidRecord, message: "an idempotent produce request must carry exactly one batch per partition, not \(batches.count)"))
        }
        return .success(batches)
    }

    private static func validateOne(_ bytes: UnsafeRawBufferPointer, index: Int, codec: LZ4Codec, scratch: ByteWriter) -> Result<Batch, Rejection> {
        func reject(_ code: ErrorCode, _ message: String) -> Result<Batch, Rejection> {
            .failure(Rejection(code: code, message: "batch \(index): " + message))
        }
        // The older message formats put their magic byte at the same place: name them.
        if bytes.count > RecordBatchLayout.magicOffset {
            let magic = bytes.loadBigEndian(at: RecordBatchLayout.magicOffset, as: Int8.self)
            guard magic == RecordBatchLayout.magic else {
                return reject(.invalidRecord, "magic \(magic): only RecordBatch v2 (magic 2, Kafka 0.11 and later clients) is accepted")
            }
        }
        guard bytes.count >= RecordBatchLayout.headerBytes else {
            return reject(.corruptMessage, "\(bytes.count) bytes left, less than a \(RecordBatchLayout.headerBytes)-byte batch header")
        }
        let length = bytes.loadBigEndian(at: RecordBatchLayout.batchLengthOffset, as: Int32.self)
        let total = Int(length) + RecordBatchLayout.logOverheadBytes
        guard length >= 0, total >= RecordBatchLayout.headerBytes else { return reject(.corruptMessage, "batch length \(length)") }
        guard total <= Limits.batchBytesMax else { return reject(.messageTooLarge, "batch of \(total) bytes exceeds \(Limits.batchBytesMax)") }
        guard total <= bytes.count else { return reject(.corruptMessage, "batch of \(total) bytes but only \(bytes.count) bytes sent") }
        let batch = UnsafeRawBufferPointer(rebasing: bytes[0..<total])
        let header = RecordBatchHeader(batch)
        guard RecordBatchFramer.crcMatches(batch) else { return reject(.corruptMessage, "CRC-32C mismatch") }
        switch header.compression {
        case .none?, .lz4?: break
        case let other?: return reject(.unsupportedCompressionType, "\(other) compression is not supported (use none or lz4)")
        case nil: return reject(.corruptMessage, "compression code \(header.attributes & RecordBatchLayout.compressionMask)")
        }
        guard !header.isControl else { return reject(.invalidRecord, "control batches come only from a transaction coordinator") }
        guard header.attributes & RecordBatchLayout.transactionalBit == 0 else { return reject(.invalidRecord, "transactional batches are not supported") }
        guard header.attributes & RecordBatchLayout.timestampTypeBit == 0 else { return reject(.invalidRecord, "a client sets create-time timestamps, not log-append-time") }
        guard header.recordsCount >= 1, header.lastOffsetDelta == header.recordsCount - 1 else {
            return reject(.invalidRecord, "\(header.recordsCount) records with last offset delta \(header.lastOffsetDelta): offsets must be dense from 0")
        }
        let producer = ProducerFields(batch)
        if producer.producerId >= 0 {
            guard producer.producerEpoch >= 0, producer.baseSequence >= 0 else {
                return reject(.invalidRecord, "idempotent batch with epoch \(producer.producerEpoch), sequence \(producer.baseSequence)")
            }
        }
        if header.compression == .lz4, !LZ4Codec.matchOffsetsValid(UnsafeRawBufferPointer(rebasing: batch[RecordBatchLayout.recordsOffset...])) {
            return reject(.corruptMessage, "the LZ4 stream copies from before its start (a match offset of 0 or too far back)")
        }
        do throws(BatchDecodeError) {
            var records = try RecordBatchDecoder.records(of: batch, header: header, codec: codec, scratch: scratch)
            var expected = header.baseOffset
            var maxMillis = Int64.min
            while let r = try records.next() {
                guard r.offset == expected else {
                    return reject(.invalidRecord, "record offset delta \(r.offset - header.baseOffset), expected \(expected - header.baseOffset)")
                }
                expected = expected + 1
                maxMillis = max(maxMillis, r.timestamp.millis)
            }
            guard maxMillis == header.maxTimestampMillis else {
                return reject(.invalidRecord, "max timestamp \(header.maxTimestampMillis) differs from the records' largest, \(maxMillis)")
            }
        } catch {
            return reject(.corruptMessage, error.message)
        }
        return .success(Batch(range: 0..<total, header: header, producer: producer))
    }
}
