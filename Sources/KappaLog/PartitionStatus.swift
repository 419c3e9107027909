import KappaCore
import KappaFormat

/// What `topics describe` and `groups describe` show of a partition.
public struct PartitionStatus: Sendable, Equatable {
    public var topicPartition: TopicPartition
    /// First offset still stored.
    public var startOffset: Offset
    /// Offset the next record will get (the high watermark: every record below it is
    /// complete and readable).
    public var endOffset: Offset
    public var bytes: Int64
    public var segments: Int

    /// Reads the status under the partition lock held shared, so the end is a batch
    /// boundary that no writer is in the middle of. Scans only the active segment's tail
    /// from its last index entry. A torn tail (not yet recovered) is not counted.
    public static func read(_ directory: DataDirectory, _ tp: TopicPartition) throws(KappaError) -> PartitionStatus {
        let dir = directory.partitionPath(tp)
        guard FS.isDirectory(dir) else { throw KappaError(.notFound, "partition directory is missing", topicPartition: tp, path: dir) }
        let lock = try FileLock(path: dir + "/" + SegmentFiles.lockName)
        return try lock.withShared { () throws(KappaError) -> PartitionStatus in
            let bases = try SegmentFiles.bases(in: dir)
            guard let last = bases.last else {
                return PartitionStatus(topicPartition: tp, startOffset: .zero, endOffset: .zero, bytes: 0, segments: 0)
            }
            var bytes: Int64 = 0
            for base in bases {
                for path in [SegmentFiles.logPath(dir, base), SegmentFiles.indexPath(dir, base), SegmentFiles.timeIndexPath(dir, base)] {
                    bytes += (try? File(path: path, mode: .readOnly).size()) ?? 0
                }
            }
            let log = try File(path: SegmentFiles.logPath(dir, last), mode: .readOnly)
            let size = try log.size()
            let entry = OffsetIndex.load(path: SegmentFiles.indexPath(dir, last), base: last, logBytes: size).last
            let scanner = SegmentScanner(file: log, codec: LZ4Codec(), scratch: ByteWriter(capacity: 4096), validateRecords: false)
            var r = try scanner.scan(from: entry?.position ?? .zero, expected: entry?.offset ?? last, fileBytes: size, keepBatches: false)
            if r.endPosition == (entry?.position ?? .zero), entry != nil, r.stop != .endOfFile {
                r = try scanner.scan(from: .zero, expected: last, fileBytes: size, keepBatches: false)
            }
            var end = r.nextOffset
            if (try? directory.topicConfig(tp.topic))?.isTransactional == true {
                end = min(end, CommittedMarker.read(partitionDirectory: dir).offset)
            }
            return PartitionStatus(topicPartition: tp, startOffset: bases[0], endOffset: end, bytes: bytes, segments: bases.count)
        }
    }
}
