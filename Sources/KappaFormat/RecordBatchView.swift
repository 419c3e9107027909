import KappaCore

/// Why bytes are not a valid batch. The log layer adds topic, partition and offset.
public struct BatchDecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The fixed header of a RecordBatch v2, read from bytes (see `RecordBatchLayout`).
public struct RecordBatchHeader: Equatable, Sendable {
    public var baseOffset: Offset
    public var batchLength: Int32
    public var magic: Int8
    public var crc: UInt32
    public var attributes: Int16
    public var lastOffsetDelta: Int32
    public var baseTimestampMillis: Int64
    public var maxTimestampMillis: Int64
    public var recordsCount: Int32

    /// Bytes of the whole batch on disk.
    public var totalBytes: Int { Int(batchLength) + RecordBatchLayout.logOverheadBytes }
    public var lastOffset: Offset { baseOffset + Int64(lastOffsetDelta) }
    public var nextOffset: Offset { lastOffset + 1 }
    public var compression: CompressionCodec? { CompressionCodec(rawValue: attributes & RecordBatchLayout.compressionMask) }
    public var isControl: Bool { attributes & RecordBatchLayout.controlBit != 0 }

    /// Reads the 61-byte header at the start of `bytes`.
    public init(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count >= RecordBatchLayout.headerBytes)
        let p = bytes.baseAddress!
        baseOffset = Offset(p.loadBigEndian(at: RecordBatchLayout.baseOffsetOffset, as: Int64.self))
        batchLength = p.loadBigEndian(at: RecordBatchLayout.batchLengthOffset, as: Int32.self)
        magic = p.loadBigEndian(at: RecordBatchLayout.magicOffset, as: Int8.self)
        crc = p.loadBigEndian(at: RecordBatchLayout.crcOffset, as: UInt32.self)
        attributes = p.loadBigEndian(at: RecordBatchLayout.attributesOffset, as: Int16.self)
        lastOffsetDelta = p.loadBigEndian(at: RecordBatchLayout.lastOffsetDeltaOffset, as: Int32.self)
        baseTimestampMillis = p.loadBigEndian(at: RecordBatchLayout.baseTimestampOffset, as: Int64.self)
        maxTimestampMillis = p.loadBigEndian(at: RecordBatchLayout.maxTimestampOffset, as: Int64.self)
        recordsCount = p.loadBigEndian(at: RecordBatchLayout.recordsCountOffset, as: Int32.self)
    }
}

/// What the next bytes of a log hold.
public enum BatchFrame: Equatable, Sendable {
    /// A batch of `header.totalBytes` starts here (its CRC is not yet checked).
    case batch(RecordBatchHeader)
    /// The bytes end inside a batch; at least `totalBytes` are needed from here.
    case needMoreBytes(totalBytes: Int)
}

public enum RecordBatchFramer {
    /// Finds the batch at the start of `bytes`. Throws only for bytes that cannot be the
    /// start of a valid batch (bad length or magic); a short read is `.needMoreBytes`.
    /// With `headerOnly`, the 61-byte header suffices (a header walk that skips bodies).
    public static func frame(_ bytes: UnsafeRawBufferPointer, headerOnly: Bool = false) throws(BatchDecodeError) -> BatchFrame {
        guard bytes.count >= RecordBatchLayout.logOverheadBytes else {
            return .needMoreBytes(totalBytes: RecordBatchLayout.headerBytes)
        }
        let length = bytes.loadBigEndian(at: RecordBatchLayout.batchLengthOffset, as: Int32.self)
        let total = Int(length) + RecordBatchLayout.logOverheadBytes
        guard total >= RecordBatchLayout.headerBytes, total <= Limits.batchBytesMax else {
            throw BatchDecodeError("batch length \(length) is outside 49...\(Limits.batchBytesMax - 12)")
        }
        guard bytes.count >= RecordBatchLayout.headerBytes else { return .needMoreBytes(totalBytes: total) }
        let header = RecordBatchHeader(bytes)
        guard header.magic == RecordBatchLayout.magic else {
            throw BatchDecodeError("batch magic is \(header.magic), expected \(RecordBatchLayout.magic)")
        }
        // The base offset is outside the CRC: a flipped bit there, or a peer's batch, may
        // claim any. Offsets past Int64.max would trap wherever a record's offset or the
        // next offset is computed.
        let (last, overflow) = header.baseOffset.rawValue.addingReportingOverflow(Int64(header.lastOffsetDelta))
        guard !overflow, last < Int64.max else {
            throw BatchDecodeError("batch offsets \(header.baseOffset) + \(header.lastOffsetDelta) pass the largest offset")
        }
        guard headerOnly || bytes.count >= total else { return .needMoreBytes(totalBytes: total) }
        return .batch(header)
    }

    /// True when the stored CRC matches the bytes it covers. `batch` is exactly one batch.
    public static func crcMatches(_ batch: UnsafeRawBufferPointer) -> Bool {
        let stored = batch.loadBigEndian(at: RecordBatchLayout.crcOffset, as: UInt32.self)
        let covered = UnsafeRawBufferPointer(rebasing: batch[RecordBatchLayout.attributesOffset...])
        return CRC32C.checksum(covered) == stored
    }

    /// Writes `baseOffset` into a sealed batch (not covered by the CRC).
    public static func stamp(baseOffset: Offset, batchAt start: Int, in buffer: ByteWriter) {
        buffer.setBigEndian(baseOffset.rawValue, at: start + RecordBatchLayout.baseOffsetOffset)
    }

    /// Checks a framed batch fully: CRC, codec, record count vs offset delta, and that
    /// every record parses within bounds. Used by recovery; readers decode lazily.
    public static func validate(_ batch: UnsafeRawBufferPointer, header: RecordBatchHeader, codec: LZ4Codec, scratch: ByteWriter) throws(BatchDecodeError) {
        guard crcMatches(batch) else {
            let actual = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: batch[RecordBatchLayout.attributesOffset...]))
            throw BatchDecodeError("CRC-32C mismatch: stored \(hex(header.crc)), computed \(hex(actual))")
        }
        var records = try RecordBatchDecoder.records(of: batch, header: header, codec: codec, scratch: scratch)
        while try records.next() != nil {}
    }
}

func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16, uppercase: false) }

/// One record inside a decoded batch; its byte views point into the batch or the
/// decompression scratch buffer and are valid until the next batch is decoded.
public struct RecordView {
    public var offset: Offset
    public var timestamp: TimestampNanos
    public var key: UnsafeRawBufferPointer?
    public var value: UnsafeRawBufferPointer
    /// The raw headers region (after headerCount) and the count, for callers that want
    /// more than the sub-millisecond nanos.
    public var headers: UnsafeRawBufferPointer
    public var headerCount: Int

    /// Iterates the record's headers as (key bytes, value bytes).
    public func forEachHeader(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        var pos = 0
        let p = headers.baseAddress!
        for _ in 0..<headerCount {
            guard let (kl, kn) = Varint.read(p + pos, limit: headers.count - pos) else { return }
            pos += kn
            let key = UnsafeRawBufferPointer(start: p + pos, count: Int(kl))
            pos += Int(kl)
            guard let (vl, vn) = Varint.read(p + pos, limit: headers.count - pos) else { return }
            pos += vn
            let value = UnsafeRawBufferPointer(start: p + pos, count: max(0, Int(vl)))
            pos += max(0, Int(vl))
            body(key, value)
        }
    }
}

/// Iterates the records of one batch. Every length is checked against the records
/// section, so a corrupt batch that slipped past its CRC still cannot read out of bounds.
public struct RecordIterator {
    let base: UnsafeRawPointer
    let end: Int
    var position = 0
    var remaining: Int32
    let header: RecordBatchHeader

    /// The records' bytes (inflated, for a compressed batch) and how far the iteration
    /// is: the next record starts at `records + bytesRead`.
    public var records: UnsafeRawPointer { base }
    public var bytesRead: Int { position }

    public mutating func next() throws(BatchDecodeError) -> RecordView? {
        guard remaining > 0 else {
            guard position == end else { throw BatchDecodeError("\(end - position) bytes after the last record") }
            return nil
        }
        remaining -= 1
        let length = try varint(bytesMax: Varint.int32BytesMax)
        guard length >= 0, position + Int(length) <= end else { throw BatchDecodeError("record length \(length) overruns the batch") }
        let recordEnd = position + Int(length)
        position += 1  // attributes
        let timestampDelta = try varint(limit: recordEnd)
        let offsetDelta = try varint(limit: recordEnd, bytesMax: Varint.int32BytesMax)
        guard offsetDelta >= 0, offsetDelta <= Int64(header.lastOffsetDelta) else {
            throw BatchDecodeError("record offset delta \(offsetDelta) outside 0...\(header.lastOffsetDelta)")
        }
        let keyLength = try varint(limit: recordEnd, bytesMax: Varint.int32BytesMax)
        var key: UnsafeRawBufferPointer? = nil
        if keyLength >= 0 {
            key = try slice(Int(keyLength), limit: recordEnd)
        } else if keyLength != -1 {
            throw BatchDecodeError("key length \(keyLength)")
        }
        let valueLength = try varint(limit: recordEnd, bytesMax: Varint.int32BytesMax)
        let value = valueLength >= 0 ? try slice(Int(valueLength), limit: recordEnd) : UnsafeRawBufferPointer(start: base + position, count: 0)
        let headerCount = try varint(limit: recordEnd, bytesMax: Varint.int32BytesMax)
        guard headerCount >= 0 else { throw BatchDecodeError("header count \(headerCount)") }
        let headersStart = position
        var subMilli: Int32 = 0
        for _ in 0..<headerCount {
            let kl = try varint(limit: recordEnd, bytesMax: Varint.int32BytesMax)
            let k = try slice(Int(kl), limit: recordEnd)
            let vl = try varint(limit: recordEnd, bytesMax: Varint.int32BytesMax)
            let v = vl >= 0 ? try slice(Int(vl), limit: recordEnd) : UnsafeRawBufferPointer(start: nil, count: 0)
            if vl == 4, Self.isNanosKey(k) {
                subMilli = v.loadBigEndian(at: 0, as: Int32.self)
                guard subMilli >= 0, subMilli < 1_000_000 else { throw BatchDecodeError("\(RecordBatchLayout.subMilliNanosHeader) header \(subMilli) is not below one millisecond") }
            }
        }
        guard position == recordEnd else { throw BatchDecodeError("record body is \(recordEnd - position) bytes longer than its fields") }
        let (millis, overflow) = header.baseTimestampMillis.addingReportingOverflow(timestampDelta)
        guard !overflow, millis > Int64.min / TimestampNanos.nanosPerMilli + 1, millis < Int64.max / TimestampNanos.nanosPerMilli - 1 else {
            throw BatchDecodeError("record timestamp \(header.baseTimestampMillis) + \(timestampDelta) ms is beyond what nanoseconds can hold")
        }
        return RecordView(
            offset: header.baseOffset + offsetDelta,
            timestamp: TimestampNanos(millis: millis, subMilliNanos: subMilli),
            key: key, value: value,
            headers: UnsafeRawBufferPointer(start: base + headersStart, count: recordEnd - headersStart),
            headerCount: Int(headerCount))
    }

    /// `kappa.ns` as a little-endian word: one load and compare per header, not a loop.
    static let nanosKeyWord: UInt64 = 0x736E_2E61_7070_616B

    @inline(__always) static func isNanosKey(_ k: UnsafeRawBufferPointer) -> Bool {
        k.count == 8 && k.loadUnaligned(as: UInt64.self) == nanosKeyWord
    }

    /// The one- and two-byte varints that make up most of a record inline; longer ones,
    /// and every error, in `varintSlow`.
    @inline(__always) mutating func varint(limit: Int? = nil, bytesMax: Int = Varint.int64BytesMax) throws(BatchDecodeError) -> Int64 {
        let lim = limit ?? end
        if position + 1 < lim {
            let b0 = base.load(fromByteOffset: position, as: UInt8.self)
            if b0 < 0x80 {
                position += 1
                return Varint.unzigzag(UInt64(b0))
            }
            let b1 = base.load(fromByteOffset: position + 1, as: UInt8.self)
            if b1 < 0x80 {
                position += 2
                return Varint.unzigzag(UInt64(b0 & 0x7F) | UInt64(b1) << 7)
            }
        }
        return try varintSlow(limit: lim, bytesMax: bytesMax)
    }

    @inline(never) mutating func varintSlow(limit: Int, bytesMax: Int) throws(BatchDecodeError) -> Int64 {
        let lim = limit - position
        guard lim > 0, let (v, n) = Varint.read(base + position, limit: lim, bytesMax: bytesMax) else {
            throw BatchDecodeError("truncated or overlong varint at records byte \(position)")
        }
        position += n
        return v
    }

    @inline(__always) mutating func slice(_ n: Int, limit: Int) throws(BatchDecodeError) -> UnsafeRawBufferPointer {
        guard n >= 0, position + n <= limit else { throw BatchDecodeError("field of \(n) bytes overruns its record") }
        defer { position += n }
        return UnsafeRawBufferPointer(start: base + position, count: n)
    }
}

public enum RecordBatchDecoder {
    /// One record's bytes (from its length varint to its last header), decoded alone as
    /// a record of the batch `header` describes; throws unless they are exactly one whole
    /// record. For readers that located a record without walking the batch.
    public static func record(_ bytes: UnsafeRawBufferPointer, header: RecordBatchHeader) throws(BatchDecodeError) -> RecordView {
        guard let base = bytes.baseAddress else { throw BatchDecodeError("empty record") }
        var iterator = RecordIterator(base: base, end: bytes.count, remaining: 1, header: header)
        guard let record = try iterator.next(), iterator.position == bytes.count else {
            throw BatchDecodeError("not one whole record")
        }
        return record
    }

    /// The records of a framed, CRC-checked batch. A compressed batch is inflated into
    /// `scratch`, which must outlive the iterator.
    public static func records(of batch: UnsafeRawBufferPointer, header: RecordBatchHeader, codec: LZ4Codec, scratch: ByteWriter) throws(BatchDecodeError) -> RecordIterator {
        guard header.recordsCount >= 0, header.recordsCount <= Int32(Limits.batchRecordsMax) * 4 else {
            throw BatchDecodeError("records count \(header.recordsCount)")
        }
        guard header.lastOffsetDelta >= header.recordsCount - 1 else {
            throw BatchDecodeError("lastOffsetDelta \(header.lastOffsetDelta) is below records count \(header.recordsCount) - 1")
        }
        let section = UnsafeRawBufferPointer(rebasing: batch[RecordBatchLayout.recordsOffset...])
        switch header.compression {
        case .none?:
            return RecordIterator(base: section.baseAddress ?? batch.baseAddress!, end: section.count, remaining: header.recordsCount, header: header)
        case .lz4?:
            if let reason = codec.decompress(section, into: scratch, limit: Limits.batchInflatedBytesMax) {
                throw BatchDecodeError(reason)
            }
            return RecordIterator(base: UnsafeRawPointer(scratch.base), end: scratch.count, remaining: header.recordsCount, header: header)
        case let other:
            throw BatchDecodeError("compression \(other.map { "\($0)" } ?? "code \(header.attributes & 7)") is not supported")
        }
    }
}
