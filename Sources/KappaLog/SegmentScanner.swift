import KappaCore
import KappaFormat

/// Walks the batches of one segment file from a known-good position, checking each
/// (framing, magic, base offset continuity, CRC, and optionally every record), and says
/// where the valid prefix ends and why. Used by recovery, index rebuilds and end-offset
/// look-ups. Reads in large chunks; never returns data, only positions and offsets.
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
