import KappaCore
import KappaFormat

/// What `topics describe` and `groups describe` show of a partition.
public struct PartitionStatus: Sendable, Equatable {
    public var topicPartition: TopicPartition
    /// First offset still stored.
    public var startOffset: Offset
    /// Offset the next record will get (the high watermark: every record below it is
    /// complete and readable): the end readers see (`PartitionReader.visibleEnd`).
    public var endOffset: Offset
    /// Offset up to which the log is known to be on stable storage (nil: no recovery
    /// point recorded yet).
    public var recoveryPoint: Offset?
    /// Bytes of the segment files (.log and indexes; not torn-tail evidence).
    public var bytes: Int64
    public var segments: Int

    /// Reads the status without any lock and without writing: the end is the published
    /// one (see `PartitionReader`).
    public static func read(_ directory: DataDirectory, _ tp: TopicPartition) throws(KappaError) -> PartitionStatus {
        let fs = directory.fileSystem
        let dir = directory.partitionPath(tp)
        guard fs.isDirectory(dir) else { throw KappaError(.notFound, "partition directory is missing", topicPartition: tp, path: dir) }
        let bases = try SegmentFiles.bases(in: dir, fileSystem: fs)
        guard let first = bases.first else {
            return PartitionStatus(topicPartition: tp, startOffset: .zero, endOffset: .zero, recoveryPoint: nil, bytes: 0, segments: 0)
        }
        var bytes: Int64 = 0
        for base in bases {
            for path in [SegmentFiles.logPath(dir, base), SegmentFiles.indexPath(dir, base), SegmentFiles.timeIndexPath(dir, base)] {
                bytes += try fileBytesIfExists(fs, path)
            }
        }
        let reader = try PartitionReader(directory: directory, topicPartition: tp)
        let end = try reader.visibleEnd()?.offset ?? first
        let rp = try RecoveryPoint.read(fs, partitionDirectory: dir)?.point.offset
        return PartitionStatus(topicPartition: tp, startOffset: first, endOffset: max(end, first), recoveryPoint: rp,
                               bytes: bytes, segments: bases.count)
    }

    /// A file's size; 0 when it does not exist (indexes are caches and may be missing,
    /// or deleted by retention between the listing and here).
    static func fileBytesIfExists(_ fs: any FileSystem, _ path: String) throws(KappaError) -> Int64 {
        do {
            return try fs.openFile(path, mode: .readOnly).size()
        } catch where error.code == .notFound {
            return 0
        }
    }
}
