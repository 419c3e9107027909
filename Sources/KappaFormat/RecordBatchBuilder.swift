import KappaCore

/// A record header: a string key and opaque bytes (Kafka's shape).
public struct RecordHeader: Equatable, Sendable {
    public var key: String
    public var value: [UInt8]

    public init(key: String, value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

/// Record headers already in their wire form — per header a varint key length, the key,
/// a varint value length, the value — for writers that send mostly the same headers with
/// every record (a job's results): the fixed ones are encoded once, `truncate(to:)` keeps
/// them, and only the one that changes is appended per record. Not thread-safe.
public final class EncodedHeaders {
    public let bytes = ByteWriter(capacity: 256)
    public private(set) var count = 0

    public init() {}

    public func append(key: String, value: UnsafeRawBufferPointer) {
        bytes.appendVarint(Int64(key.utf8.count))
        bytes.append(key)
        bytes.appendVarint(Int64(value.count))
        bytes.append(value)
        count += 1
    }

    /// Appends a header whose value the caller writes into `bytes` in `body`.
    public func append(key: String, _ body: (ByteWriter) -> Void) {
        bytes.appendVarint(Int64(key.utf8.count))
        bytes.append(key)
        // Lengths are varints before the value: write the value aside, then copy it in.
        let start = bytes.count
        body(bytes)
        let length = bytes.count - start
        let prefix = Varint.size(Int64(length))
        bytes.reserve(prefix)
        (bytes.base + start + prefix).copyMemory(from: bytes.base + start, byteCount: length)
        _ = Varint.write(Int64(length), to: bytes.base + start)
        bytes.count += prefix
        count += 1
    }

    /// A mark to come back to with `truncate(to:)`: the headers so far.
    public var mark: (bytes: Int, count: Int) { (bytes.count, count) }

    public func truncate(to mark: (bytes: Int, count: Int)) {
        bytes.count = mark.bytes
        count = mark.count
    }
}

/// Accumulates records for one batch, then seals it into RecordBatch v2 bytes.
///
/// Records are encoded as they arrive into an uncompressed records section; `seal`
/// compresses it, writes the 61-byte header with baseOffset 0 and the CRC. The caller
/// stamps the real base offset later (`RecordBatchView.stamp`), which the CRC does not
/// cover. Not thread-safe; reuse one builder per partition.
public final class RecordBatchBuilder {
    public let compression: CompressionCodec
    private let records: ByteWriter
    /// The batch is full once its records reach this many bytes (before compression).
    public let targetBytes: Int
    public private(set) var count: Int32 = 0
    private var baseTimestampMillis: Int64 = 0
    private var maxTimestampMillis: Int64 = .min
    private static let nsHeaderKey = Array(RecordBatchLayout.subMilliNanosHeader.utf8)
    /// `headers` of the array-taking `append`, encoded.
    private let scratchHeaders = EncodedHeaders()

    /// `targetBytes`: smaller batches where many builders live at once (a task's
    /// repartition sender keeps one per destination partition).
    public init(compression: CompressionCodec, targetBytes: Int = Limits.batchTargetBytes) {
        precondition(compression == .none || compression == .lz4, "Kappa writes only none and lz4")
        precondition(targetBytes > 0 && targetBytes <= Limits.batchTargetBytes)
        self.compression = compression
        self.targetBytes = targetBytes
        records = ByteWriter(capacity: targetBytes + (64 << 10))
    }

    public var isEmpty: Bool { count == 0 }

    /// Uncompressed bytes of the records so far.
    public var recordsBytes: Int { records.count }

    /// True once the batch should be sealed (size or count target reached).
    public var isFull: Bool { records.count >= targetBytes || count >= Int32(Limits.batchRecordsMax) }

    /// Appends one record with headers in their wire form. `key` nil means a null key.
    public func append(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, timestamp: TimestampNanos, headers: EncodedHeaders) {
        let millis = timestamp.millis
        if count == 0 { baseTimestampMillis = millis }
        if millis > maxTimestampMillis { maxTimestampMillis = millis }
        let subMilli = timestamp.subMilliNanos
        let timestampDelta = millis &- baseTimestampMillis
        let offsetDelta = Int64(count)
        let keyLength = key.map { Int64($0.count) } ?? -1
        let headerCount = Int64(headers.count + (subMilli != 0 ? 1 : 0))

        var bodyBytes = 1 + Varint.size(timestampDelta) + Varint.size(offsetDelta)
        bodyBytes += Varint.size(keyLength) + max(0, Int(keyLength))
        bodyBytes += Varint.size(Int64(value.count)) + value.count + Varint.size(headerCount)
        if subMilli != 0 { bodyBytes += headerBytes(keyCount: Self.nsHeaderKey.count, valueCount: 4) }
        bodyBytes += headers.bytes.count

        records.reserve(bodyBytes + Varint.int32BytesMax)
        records.appendVarint(Int64(bodyBytes))
        let start = records.count
        records.append(0)  // record attributes: unused
        records.appendVarint(timestampDelta)
        records.appendVarint(offsetDelta)
        records.appendVarint(keyLength)
        if let key { records.append(key) }
        records.appendVarint(Int64(value.count))
        records.append(value)
        records.appendVarint(headerCount)
        if subMilli != 0 {
            records.appendVarint(Int64(Self.nsHeaderKey.count))
            records.append(Self.nsHeaderKey)
            records.appendVarint(4)
            records.appendBigEndian(subMilli)
        }
        records.append(headers.bytes.bytes)
        assert(records.count - start == bodyBytes, "record length prefix must match the body")
        count += 1
    }

    /// Appends one record. `key` nil means a null key.
    public func append(key: UnsafeRawBufferPointer?, value: UnsafeRawBufferPointer, timestamp: TimestampNanos, headers: [RecordHeader] = []) {
        scratchHeaders.truncate(to: (0, 0))
        for h in headers { h.value.withUnsafeBytes { scratchHeaders.append(key: h.key, value: $0) } }
        append(key: key, value: value, timestamp: timestamp, headers: scratchHeaders)
    }

    private func headerBytes(keyCount: Int, valueCount: Int) -> Int {
        Varint.size(Int64(keyCount)) + keyCount + Varint.size(Int64(valueCount)) + valueCount
    }

    /// Appends the sealed batch (base offset 0, CRC set) to `out` and resets the builder.
    /// Returns the sealed batch's byte count.
    @discardableResult
    public func seal(into out: ByteWriter, codec: LZ4Codec) -> Int {
        precondition(count > 0, "an empty batch is never sealed")
        let start = out.count
        out.reserve(RecordBatchLayout.headerBytes)
        out.appendBigEndian(Int64(0))  // baseOffset, stamped under the partition lock
        out.appendBigEndian(Int32(0))  // batchLength, set below
        out.appendBigEndian(Int32(-1))  // partitionLeaderEpoch
        out.appendBigEndian(RecordBatchLayout.magic)
        out.appendBigEndian(UInt32(0))  // crc, set below
        out.appendBigEndian(compression.rawValue)  // attributes: create-time timestamps
        out.appendBigEndian(count - 1)
        out.appendBigEndian(baseTimestampMillis)
        out.appendBigEndian(maxTimestampMillis)
        out.appendBigEndian(Int64(-1))  // producerId
        out.appendBigEndian(Int16(-1))  // producerEpoch
        out.appendBigEndian(Int32(-1))  // baseSequence
        out.appendBigEndian(count)
        assert(out.count - start == RecordBatchLayout.headerBytes)
        switch compression {
        case .lz4: codec.compress(records.bytes, appendingTo: out)
        default: out.append(records.bytes)
        }
        let total = out.count - start
        out.setBigEndian(Int32(total - RecordBatchLayout.logOverheadBytes), at: start + RecordBatchLayout.batchLengthOffset)
        let covered = UnsafeRawBufferPointer(start: out.base + start + RecordBatchLayout.attributesOffset,
                                             count: total - RecordBatchLayout.attributesOffset)
        out.setBigEndian(CRC32C.checksum(covered), at: start + RecordBatchLayout.crcOffset)
        records.removeAll()
        count = 0
        maxTimestampMillis = .min
        return total
    }
}
