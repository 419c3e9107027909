import KappaCore
import KappaFormat

/// The records of one batch that a `PartitionReader` returned, from a given offset on,
/// decoded lazily: the one record-iteration loop of every reader of the log (consume,
/// result readers, job tasks). Skips the records below `from`; a record that does not
/// decode is a `KappaError(.corruptData)` naming topic, partition, batch offset, file and
/// position — never a silent end. Views are valid until the next batch is read.
public struct BatchRecords {
    public let header: RecordBatchHeader
    public let topicPartition: TopicPartition
    /// The segment file and position of the batch, for error reports.
    public let path: String?
    public let position: FilePosition
    /// The batch was appended by a Kafka client through `kappa serve`
    /// (`TopicConfig.cameFromKafkaClient`): its values were not validated as JSON.
    public let fromKafkaClient: Bool
    /// The batch's header as stored (`RecordBatchLayout.headerBytes`), valid while the
    /// records are.
    public let headerBytes: UnsafeRawBufferPointer
    @usableFromInline var iterator: RecordIterator
    @usableFromInline let from: Offset

    /// The next record at or after `from`, or nil after the batch's last.
    @inlinable
    public mutating func next() throws(KappaError) -> RecordView? {
        try nextWithBytes()?.0
    }

    /// Like `next()`, with the record's whole bytes (length varint to last header) where
    /// they lie in the records section (inflated, for a compressed batch): for indexes
    /// that locate single records.
    @inlinable
    public mutating func nextWithBytes() throws(KappaError) -> (RecordView, start: Int, bytes: UnsafeRawBufferPointer)? {
        do throws(BatchDecodeError) {
            while true {
                let start = iterator.bytesRead
                guard let record = try iterator.next() else { return nil }
                if record.offset >= from {
                    let bytes = UnsafeRawBufferPointer(start: iterator.records + start, count: iterator.bytesRead - start)
                    return (record, start, bytes)
                }
            }
        } catch {
            throw failure("undecodable batch: \(error.message)")
        }
    }

    /// An error about this batch with its evidence (for callers that find a record they
    /// cannot use, e.g. a repartition record out of range).
    public func failure(_ message: String, offset: Offset? = nil) -> KappaError {
        KappaError(.corruptData, message, topicPartition: topicPartition, offset: offset ?? header.baseOffset, path: path, position: position)
    }
}

extension PartitionReader {
    /// The next batch holding a record at or after `from`, as lazily decoded records;
    /// batches wholly below `from` and control batches are skipped. Nil when caught up.
    /// `scratch` receives decompressed records and must outlive the returned value.
    public func nextRecords(from: Offset, codec: LZ4Codec, scratch: ByteWriter) throws(KappaError) -> BatchRecords? {
        while let batch = try nextBatch() {
            if batch.header.nextOffset <= from || batch.header.isControl { continue }
            do throws(BatchDecodeError) {
                let iterator = try RecordBatchDecoder.records(of: batch.bytes, header: batch.header, codec: codec, scratch: scratch)
                return BatchRecords(header: batch.header, topicPartition: topicPartition, path: currentPath, position: batch.position,
                                    fromKafkaClient: TopicConfig.cameFromKafkaClient(batch.bytes),
                                    headerBytes: UnsafeRawBufferPointer(rebasing: batch.bytes[..<RecordBatchLayout.headerBytes]),
                                    iterator: iterator, from: from)
            } catch {
                throw KappaError(.corruptData, "undecodable batch: \(error.message)", topicPartition: topicPartition,
                                 offset: batch.header.baseOffset, path: currentPath, position: batch.position)
            }
        }
        return nil
    }
}
