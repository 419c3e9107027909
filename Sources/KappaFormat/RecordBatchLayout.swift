/// Kafka's RecordBatch v2 (magic 2) header, byte for byte; all integers big-endian.
///
/// ```
/// baseOffset           int64   first record's offset
/// batchLength          int32   bytes after this field (header rest + records)
/// partitionLeaderEpoch int32   -1 here (no replication yet)
/// magic                int8    2
/// crc                  uint32  CRC-32C of attributes … end of batch
/// attributes           int16   bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control
/// lastOffsetDelta      int32   count - 1 for a dense batch
/// baseTimestamp        int64   first record's timestamp, milliseconds
/// maxTimestamp         int64   largest timestamp in the batch, milliseconds
/// producerId           int64   -1 (no idempotent producer yet)
/// producerEpoch        int16   -1
/// baseSequence         int32   -1
/// recordsCount         int32
/// records              ...     (compressed as `attributes` says)
/// ```
/// Each record: length varint, attributes int8, timestampDelta varlong, offsetDelta
/// varint, keyLength varint (-1 = null), key, valueLength varint, value, headerCount
/// varint, headers (keyLength varint, key, valueLength varint, value).
///
/// The CRC does not cover baseOffset, batchLength, leader epoch or magic, so a writer can
/// seal (compress + checksum) a batch before it knows the offset, then stamp it under the
/// partition lock.
public enum RecordBatchLayout {
    public static let baseOffsetOffset = 0
    public static let batchLengthOffset = baseOffsetOffset + 8
    public static let partitionLeaderEpochOffset = batchLengthOffset + 4
    public static let magicOffset = partitionLeaderEpochOffset + 4
    public static let crcOffset = magicOffset + 1
    public static let attributesOffset = crcOffset + 4
    public static let lastOffsetDeltaOffset = attributesOffset + 2
    public static let baseTimestampOffset = lastOffsetDeltaOffset + 4
    public static let maxTimestampOffset = baseTimestampOffset + 8
    public static let producerIdOffset = maxTimestampOffset + 8
    public static let producerEpochOffset = producerIdOffset + 8
    public static let baseSequenceOffset = producerEpochOffset + 2
    public static let recordsCountOffset = baseSequenceOffset + 4
    public static let recordsOffset = recordsCountOffset + 4
    /// 61 bytes.
    public static let headerBytes = recordsOffset

    /// baseOffset + batchLength: what a reader needs to know how long the batch is.
    public static let logOverheadBytes = batchLengthOffset + 4

    public static let magic: Int8 = 2
    public static let compressionMask: Int16 = 0x07
    public static let timestampTypeBit: Int16 = 0x08
    public static let transactionalBit: Int16 = 0x10
    public static let controlBit: Int16 = 0x20

    /// The record header that carries an event time's nanoseconds below the millisecond
    /// (4 bytes, big-endian, 1…999 999). Kafka timestamps are milliseconds; Kappa's event
    /// times are exact nanoseconds, so the remainder rides along only when it is not 0.
    public static let subMilliNanosHeader = "kappa.ns"
}
