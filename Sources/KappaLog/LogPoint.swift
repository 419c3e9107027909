import KappaCore

/// A place in a partition's log: byte `position` of segment `segmentBase`, where the
/// batch with base offset `offset` starts (or, at the end, the offset the next record
/// gets). Always a batch boundary. Ordered by offset: positions only compare within a
/// segment.
public struct LogPoint: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var segmentBase: Offset
    public var position: FilePosition
    public var offset: Offset

    public init(segmentBase: Offset, position: FilePosition, offset: Offset) {
        precondition(position.rawValue >= 0 && offset >= segmentBase, "a log point lies inside its segment")
        self.segmentBase = segmentBase
        self.position = position
        self.offset = offset
    }

    /// The start of segment `base`.
    public static func start(of base: Offset) -> LogPoint { LogPoint(segmentBase: base, position: .zero, offset: base) }

    public var description: String { "offset \(offset) (segment \(SegmentFiles.name(segmentBase)), position \(position))" }
}

/// The writer's summary of the active segment: where it ends and the state an appender
/// needs to continue it (index fill, timestamps for rolling and the time index). What a
/// writer holds in memory, and what it publishes in the partition's `end` file so that
/// another writer (another process) continues from it without rescanning the log.
///
/// Invariants, checked by `PartitionWriter` under the partition lock: `size` is the
/// .log file's length; `indexBytes` and `timeIndexBytes` are the index files' lengths and
/// multiples of their entry sizes; `nextOffset >= base`.
public struct SegmentTail: Equatable, Sendable {
    public var base: Offset
    /// Bytes of the .log: where the next batch goes.
    public var size: Int64
    public var nextOffset: Offset
    public var indexBytes: Int64
    public var timeIndexBytes: Int64
    /// Log bytes since (and including) the batch of the last offset-index entry.
    public var bytesSinceIndexEntry: Int64
    /// The largest batch max timestamp in the segment (`Int64.min`: none yet).
    public var maxTimestampMillis: Int64
    /// The first batch's max timestamp, for rolling by age (`Int64.min`: empty segment).
    public var firstBatchMaxTimestampMillis: Int64
    /// The last time-index entry (`Int64.min` / nil: none).
    public var lastTimeIndexMillis: Int64
    public var lastTimeIndexOffset: Offset?

    /// A new, empty segment at `base`.
    public static func empty(base: Offset) -> SegmentTail {
        SegmentTail(base: base, size: 0, nextOffset: base, indexBytes: 0, timeIndexBytes: 0, bytesSinceIndexEntry: 0,
                    maxTimestampMillis: .min, firstBatchMaxTimestampMillis: .min, lastTimeIndexMillis: .min, lastTimeIndexOffset: nil)
    }

    public var end: LogPoint { LogPoint(segmentBase: base, position: FilePosition(size), offset: nextOffset) }

    /// Whole index entries, a log that ends after its base: what must hold of any tail.
    var isWellFormed: Bool {
        size >= 0 && nextOffset >= base && indexBytes >= 0 && timeIndexBytes >= 0
            && indexBytes % Int64(OffsetIndex.entryBytes) == 0 && timeIndexBytes % Int64(TimeIndex.entryBytes) == 0
            && (size == 0) == (nextOffset == base)
    }
}
