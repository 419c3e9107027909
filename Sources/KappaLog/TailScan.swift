import KappaCore
import KappaFormat

/// Checks a partition's log from a point known good (the recovery point) to the end of
/// its last segment, batch by batch: framing, base offset continuity within and across
/// segments, CRC-32C and every record. Read-only: writers act on its answer (cut a torn
/// tail), readers that find no trustworthy published end use it as their end.
///
/// Bytes past the recovery point were never fsynced, so a power loss may have torn any
/// of them; but a segment that has a later segment was fsynced whole before that one was
/// created (`PartitionWriter` rolls that way). So only the last segment can have a torn
/// tail; a bad batch anywhere else, or a segment that does not start where the previous
/// one ended, is corruption and thrown as such.
struct TailScan {
    let fs: any FileSystem
    let directory: String
    let topicPartition: TopicPartition
    let codec: LZ4Codec
    let scratch: ByteWriter

    enum Outcome: Equatable {
        /// Every batch from the start checks out; the log ends at `end`.
        case clean(end: LogPoint)
        /// The last segment holds an invalid or incomplete batch at `at`.
        case torn(at: LogPoint, reason: String)
    }

    func run(bases: [Offset], from start: LogPoint) throws(KappaError) -> Outcome {
        guard let first = bases.firstIndex(of: start.segmentBase) else {
            throw KappaError(.corruptData, "the recovery point names segment \(SegmentFiles.name(start.segmentBase)), which is missing",
                             topicPartition: topicPartition, offset: start.offset, path: directory)
        }
        var point = start
        for i in first..<bases.count {
            let base = bases[i]
            let path = SegmentFiles.logPath(directory, base)
            if i > first {
                guard base == point.offset else {
                    throw KappaError(.corruptData, "segment starts at offset \(base), but the segment before it ends at \(point.offset)",
                                     topicPartition: topicPartition, offset: point.offset, path: path, position: .zero)
                }
                point = .start(of: base)
            }
            let log = try fs.openFile(path, mode: .readOnly)
            let size = try log.size()
            guard size >= point.position.rawValue else {
                throw KappaError(.corruptData, "the log is \(size) bytes, shorter than its recovery point: data known durable is missing",
                                 topicPartition: topicPartition, offset: point.offset, path: path, position: point.position)
            }
            if i == first { try checkStart(point, log: log) }
            let scanner = SegmentScanner(file: log, codec: codec, scratch: scratch, validateRecords: true)
            let r = try scanner.scan(from: point.position, expected: point.offset, fileBytes: size, keepBatches: false)
            let end = LogPoint(segmentBase: base, position: r.endPosition, offset: r.nextOffset)
            switch r.stop {
            case .endOfFile:
                point = end
            case .torn(let reason), .invalid(let reason):
                guard i == bases.count - 1 else {
                    throw KappaError(.corruptData, "\(reason), in a segment that was fsynced whole before the next one was created",
                                     topicPartition: topicPartition, offset: end.offset, path: path, position: end.position)
                }
                return .torn(at: end, reason: reason)
            }
        }
        return .clean(end: point)
    }

    /// The batches before `start` end exactly there, at its offset, when their headers
    /// frame: a point the log disagrees with was not written for this log, and scanning
    /// from it would cut batches that were acknowledged after it (fuzz-segment found a
    /// recovery point whose offset ran ahead of the log: a later writer cut an appended
    /// batch as torn). Headers that stop framing before it are damage below the point,
    /// which readers report and writers append after.
    private func checkStart(_ start: LogPoint, log: File) throws(KappaError) {
        guard start.position > .zero else { return }
        let walk = try SegmentScanner.walkHeaders(log, from: .zero, expected: start.segmentBase, to: start.position.rawValue)
        guard !walk.complete || walk.nextOffset == start.offset else {
            throw KappaError(.corruptData, "the recovery point says offset \(start.offset) at position \(start.position), but the batches before it end at offset \(walk.nextOffset)",
                             topicPartition: topicPartition, offset: start.offset, path: log.path, position: start.position)
        }
    }
}
