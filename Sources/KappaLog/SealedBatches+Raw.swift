import KappaCore
import KappaFormat

extension SealedBatches {
    /// Adds one batch that someone else built (a Kafka client's, through `kappa serve`)
    /// exactly as it is, for `PartitionWriter.append` to stamp with its base offset and
    /// write. The caller has validated it in full (framing, magic, CRC-32C, every record,
    /// dense offset deltas): the writer trusts what it is given, and readers would report
    /// a bad batch as corruption of the log.
    ///
    /// `leaderEpoch` is written into the batch's partition leader epoch field, which the
    /// CRC does not cover (a Kafka broker stamps its leader epoch there in the same way).
    /// Kappa's own writers leave it at -1; `kappa serve` stamps 0, so a reader can tell a
    /// batch that came over the Kafka protocol (whose values need not be JSON).
    public func appendRaw(_ batch: UnsafeRawBufferPointer, leaderEpoch: Int32) {
        precondition(batch.count >= RecordBatchLayout.headerBytes, "a batch is at least its 61-byte header")
        let header = RecordBatchHeader(batch)
        precondition(header.totalBytes == batch.count, "one whole batch")
        precondition(header.recordsCount > 0 && header.lastOffsetDelta == header.recordsCount - 1,
                     "offsets of an appended batch are dense: the writer advances by the record count")
        let start = buffer.count
        buffer.append(batch)
        buffer.setBigEndian(leaderEpoch, at: start + RecordBatchLayout.partitionLeaderEpochOffset)
        batches.append(Batch(start: start, length: batch.count, records: header.recordsCount,
                             maxTimestampMillis: header.maxTimestampMillis))
        records += Int(header.recordsCount)
    }
}
