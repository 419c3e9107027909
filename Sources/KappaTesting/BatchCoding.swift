import KappaCore
import KappaFormat
import KappaLog

/// Encodes and decodes whole RecordBatch v2 batches to and from owned values, for tests
/// that round-trip records or build logs byte by byte.
///
/// Contract: `encode` uses the production `RecordBatchBuilder` (so it tests nothing by
/// itself); `decode` frames, checks the CRC, and decodes every record, throwing a
/// `BatchDecodeError` for anything a reader must refuse. Not thread-safe (one LZ4
/// context per instance).
public final class BatchCoding {
    public let codec = LZ4Codec()
    public let scratch = ByteWriter(capacity: 1 << 16)

    public init() {}

    /// One sealed batch holding `records`, stamped with `baseOffset`.
    public func encode(_ records: [ReferenceRecord], compression: CompressionCodec, baseOffset: Offset = .zero) -> [UInt8] {
        let builder = RecordBatchBuilder(compression: compression)
        for r in records { Self.append(r, to: builder) }
        let out = ByteWriter(capacity: 4096)
        builder.seal(into: out, codec: codec)
        RecordBatchFramer.stamp(baseOffset: baseOffset, batchAt: 0, in: out)
        return Array(out.bytes)
    }

    /// Appends `record` to `builder` (copying its bytes into the builder).
    public static func append(_ record: ReferenceRecord, to builder: RecordBatchBuilder) {
        record.value.withUnsafeBytes { value in
            if let key = record.key {
                key.withUnsafeBytes { builder.append(key: $0, value: value, timestamp: record.timestamp, headers: record.headers) }
            } else {
                builder.append(key: nil, value: value, timestamp: record.timestamp, headers: record.headers)
            }
        }
    }

    /// Frames exactly one batch in `bytes`, checks its CRC, decodes its records.
    public func decode(_ bytes: [UInt8]) throws -> (header: RecordBatchHeader, records: [ReadRecord]) {
        try bytes.withUnsafeBytes { raw in
            guard case .batch(let header) = try RecordBatchFramer.frame(raw) else {
                throw BatchDecodeError("incomplete batch of \(raw.count) bytes")
            }
            guard header.totalBytes == raw.count else { throw BatchDecodeError("batch is \(header.totalBytes) bytes, buffer \(raw.count)") }
            guard RecordBatchFramer.crcMatches(raw) else { throw BatchDecodeError("CRC-32C mismatch") }
            var it = try RecordBatchDecoder.records(of: raw, header: header, codec: codec, scratch: scratch)
            return (header, try it.collect())
        }
    }
}

extension SealedBatches {
    /// Seals `records` as one batch into this buffer (a test shorthand).
    public func seal(_ records: [ReferenceRecord], compression: CompressionCodec, codec: LZ4Codec) {
        let builder = RecordBatchBuilder(compression: compression)
        for r in records { BatchCoding.append(r, to: builder) }
        seal(builder, codec: codec)
    }
}
