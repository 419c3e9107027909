import KappaCore
import KappaFormat

/// Walks the batches of one segment file from a known batch boundary, checking each
/// (framing, magic, base offset continuity, CRC, and optionally every record), and says
/// where the valid prefix ends and why. Used by recovery and truncation. Reads in large
/// chunks; never returns data, only positions and offsets. Never writes.
struct SegmentScanner {
    enum Stop: Equatable {
        /// The file ends exactly after a valid batch.
        case endOfFile
        /// The file ends inside a batch: a write that did not finish.
        case torn(reason: String)
        /// A complete batch is invalid.
        case invalid(reason: String)
    }

    struct Batch {
        var position: FilePosition
        var header: RecordBatchHeader
    }

    struct Result {
        var endPosition: FilePosition
        var nextOffset: Offset
        var stop: Stop
        /// Where the first invalid or torn batch starts (== endPosition).
        var batches: [Batch]
        var maxTimestampMillis: Int64
    }

    let file: File
    let codec: LZ4Codec
    let scratch: ByteWriter
    let validateRecords: Bool
    static let chunkBytes = 1 << 20

    /// Scans [position, fileBytes). `expected` is the base offset the batch at `position`
    /// must have. `keepBatches` collects each valid batch's position and header.
    func scan(from position: FilePosition, expected: Offset, fileBytes: Int64, keepBatches: Bool) throws(KappaError) -> Result {
        var result = Result(endPosition: position, nextOffset: expected, stop: .endOfFile, batches: [], maxTimestampMillis: .min)
        let buffer = ByteWriter(capacity: Self.chunkBytes)
        var bufferStart = position.rawValue  // file position of buffer[0]
        var cursor = 0
        while true {
            let filePos = bufferStart + Int64(cursor)
            if filePos >= fileBytes { return result }
            let available = UnsafeRawBufferPointer(start: buffer.base + cursor, count: buffer.count - cursor)
            let frame: BatchFrame
            do {
                frame = try RecordBatchFramer.frame(available)
            } catch {
                result.stop = .invalid(reason: error.message)
                return result
            }
            switch frame {
            case .needMoreBytes(let total):
                if filePos + Int64(total) > fileBytes && buffer.count - cursor >= min(total, Int(fileBytes - filePos)) {
                    result.stop = .torn(reason: "file ends \(fileBytes - filePos) bytes into a batch of \(total) bytes")
                    return result
                }
                buffer.removeFirst(cursor)
                bufferStart += Int64(cursor)
                cursor = 0
                let want = max(total, Self.chunkBytes)
                buffer.reserve(want - buffer.count)
                let toRead = min(want - buffer.count, Int(fileBytes - bufferStart) - buffer.count)
                let n = try file.read(into: buffer.base + buffer.count, count: toRead, at: bufferStart + Int64(buffer.count))
                buffer.count += n
                if n == 0 {
                    result.stop = .torn(reason: "file ends \(fileBytes - filePos) bytes into a batch of \(total) bytes")
                    return result
                }
            case .batch(let header):
                let bytes = UnsafeRawBufferPointer(start: buffer.base + cursor, count: header.totalBytes)
                guard header.baseOffset == result.nextOffset else {
                    result.stop = .invalid(reason: "batch base offset \(header.baseOffset), expected \(result.nextOffset)")
                    return result
                }
                do throws(BatchDecodeError) {
                    if validateRecords {
                        try RecordBatchFramer.validate(bytes, header: header, codec: codec, scratch: scratch)
                    } else if !RecordBatchFramer.crcMatches(bytes) {
                        throw BatchDecodeError("CRC-32C mismatch")
                    }
                } catch {
                    result.stop = .invalid(reason: error.message)
                    return result
                }
                if keepBatches { result.batches.append(Batch(position: FilePosition(filePos), header: header)) }
                result.maxTimestampMillis = max(result.maxTimestampMillis, header.maxTimestampMillis)
                result.nextOffset = header.nextOffset
                cursor += header.totalBytes
                result.endPosition = FilePosition(filePos + Int64(header.totalBytes))
            }
        }
    }
}

/// One batch as its header describes it, without its CRC checked: what the header walk
/// collects to check and rebuild indexes and to find a segment's largest timestamp.
struct BatchSummary: Equatable {
    var position: FilePosition
    var baseOffset: Offset
    var nextOffset: Offset
    var totalBytes: Int
    var maxTimestampMillis: Int64
}

extension SegmentScanner {
    struct Walk {
        var batches: [BatchSummary] = []
        /// Where the walk stopped: `end`, or the first header that does not frame or
        /// continue the offsets.
        var endPosition: FilePosition
        var nextOffset: Offset
        var complete: Bool
        var maxTimestampMillis: Int64 { batches.reduce(Int64.min) { max($0, $1.maxTimestampMillis) } }
    }

    /// Reads only the batch headers from `position` to `end`, checking framing, magic and
    /// offset continuity (not CRCs). Small batches are read in 256 KiB chunks, large ones
    /// by one 61-byte pread each, so a 128 MiB segment costs at most its bytes when its
    /// batches are tiny and about a thousand small reads when they are full.
    static func walkHeaders(_ file: File, from position: FilePosition, expected: Offset, to end: Int64) throws(KappaError) -> Walk {
        var walk = Walk(endPosition: position, nextOffset: expected, complete: false)
        let chunkBytes = 256 << 10
        let headerBytes = RecordBatchLayout.headerBytes
        let buffer = ByteWriter(capacity: chunkBytes)
        var bufferStart: Int64 = 0
        var bufferCount = 0
        var lastBatchBytes = 0
        var at = position.rawValue
        while at < end {
            guard end - at >= Int64(headerBytes) else { return walk }
            if at < bufferStart || at + Int64(headerBytes) > bufferStart + Int64(bufferCount) {
                // Past a large batch, read just the next header; else a chunk of them.
                let want = lastBatchBytes >= chunkBytes / 16 ? headerBytes : Int(min(Int64(chunkBytes), end - at))
                bufferCount = try file.read(into: buffer.base, count: want, at: at)
                bufferStart = at
                guard bufferCount >= headerBytes else { return walk }
            }
            let raw = UnsafeRawBufferPointer(start: buffer.base + Int(at - bufferStart), count: headerBytes)
            guard case .batch(let h)? = try? RecordBatchFramer.frame(raw, headerOnly: true),  // a frame error ends the walk: that is its answer
                  h.baseOffset == walk.nextOffset, h.lastOffsetDelta >= 0, at + Int64(h.totalBytes) <= end
            else { return walk }
            walk.batches.append(BatchSummary(position: FilePosition(at), baseOffset: h.baseOffset, nextOffset: h.nextOffset,
                                             totalBytes: h.totalBytes, maxTimestampMillis: h.maxTimestampMillis))
            walk.nextOffset = h.nextOffset
            lastBatchBytes = h.totalBytes
            at += Int64(h.totalBytes)
            walk.endPosition = FilePosition(at)
        }
        walk.complete = true
        return walk
    }

    /// The header of the batch at `position` if one frames there, else nil.
    static func header(_ file: File, at position: FilePosition) throws(KappaError) -> RecordBatchHeader? {
        let head = try file.read(count: RecordBatchLayout.headerBytes, at: position.rawValue)
        guard head.count == RecordBatchLayout.headerBytes else { return nil }
        return head.withUnsafeBytes { raw -> RecordBatchHeader? in
            guard case .batch(let h)? = try? RecordBatchFramer.frame(raw, headerOnly: true) else { return nil }  // not a batch start: the answer is nil
            return h
        }
    }
}
