import KappaCore
import KappaFormat

/// One batch handed out by a `PartitionReader`: its bytes are valid until the next call.
public struct BatchRef {
    public var header: RecordBatchHeader
    public var bytes: UnsafeRawBufferPointer
    /// Where the batch starts in its segment file (`PartitionReader.currentPath`).
    public var position: FilePosition
}

/// Reads one partition's batches in offset order, across segments, from any offset.
/// Never writes: it opens every file read-only and takes no lock.
///
/// **What it sees.** Up to the end the writer published (`PublishedEnd`, one lock-free
/// pread per refill); for a transactional topic, also no further than the owner's
/// `CommittedMarker`. A batch being written lies past the published end and is simply
/// not visible yet. When no end published in this boot exists (the machine restarted,
/// and no writer has opened the partition since), it reads up to the recovery point and
/// as far past it as the batches check out — exactly the log a writer would keep — and
/// stops there.
///
/// **What it refuses.** Every batch before that end must frame, continue the offsets,
/// and match its CRC-32C; anything else is a `KappaError(.corruptData)` naming topic,
/// partition, offset, file and byte position, and no batch at or after it is returned —
/// never a silent end of the partition. Records inside a batch are decoded by the caller
/// (`BatchRecords`), whose errors carry the same evidence.
///
/// **Indexes** are caches: an index entry is checked against the batch header it points
/// at before it is used; one that disagrees makes the reader scan that segment from its
/// start instead, with a warning (once per segment, in `warnings`). Writers rebuild it.
///
/// Not thread-safe; one reader per thread.
public final class PartitionReader {
    public let topicPartition: TopicPartition
    public let directory: String
    let fs: any FileSystem
    /// Transactional topics show only what their owner committed (`CommittedMarker`).
    let transactional: Bool
    private let endReader: PublishedEndReader

    private var bases: [Offset] = []
    private var segmentBase: Offset?
    private var log: File?
    private let buffer = ByteWriter(capacity: 1 << 20)
    private var bufferStart: Int64 = 0  // file position of buffer[0]
    private var cursor = 0
    /// Base offset the next batch must have.
    public private(set) var expectedOffset: Offset = .zero
    static let readBytes = 1 << 20

    /// Things worth telling a person that stopped nothing (an index that disagrees).
    public private(set) var warnings: [String] = []
    private var warnedSegments = Set<Offset>()
    /// The end computed from the recovery point when no trustworthy end was published.
    private var checkedEnd: LogPoint??

    public init(directory: DataDirectory, topicPartition: TopicPartition) throws(KappaError) {
        self.topicPartition = topicPartition
        self.directory = directory.partitionPath(topicPartition)
        fs = directory.fileSystem
        guard fs.isDirectory(self.directory) else {
            throw KappaError(.notFound, "partition directory is missing", topicPartition: topicPartition, path: self.directory)
        }
        endReader = PublishedEndReader(fs, partitionDirectory: self.directory)
        transactional = try directory.topicConfig(topicPartition.topic).isTransactional
        bases = try SegmentFiles.bases(in: self.directory, fileSystem: fs)
    }

    /// The segment file the last batch came from.
    public var currentPath: String? { log?.path }

    /// The base offset of the segment the last batch came from (its file's name).
    public var currentSegmentBase: Offset? { segmentBase }

    /// The first offset still stored (retention moves it forward).
    public func startOffset() throws(KappaError) -> Offset {
        bases = try SegmentFiles.bases(in: directory, fileSystem: fs)
        return bases.first ?? .zero
    }

    /// Where readers may read to now (nil: nothing, the partition has no segment).
    public func visibleEnd() throws(KappaError) -> LogPoint? {
        var end: LogPoint?
        if case .record(let e) = try endReader.read(), e.bootID == fs.bootID, e.bootID != .unknown {
            end = e.tail.end
        } else {
            end = try endCheckedFromRecoveryPoint()
        }
        if transactional, let e = end {
            end = try CommittedMarker.read(fs, partitionDirectory: directory).limit(e)
        }
        return end
    }

    /// The end a writer would keep after checking the log from the recovery point;
    /// computed once (nothing changes until a writer opens the partition and publishes).
    private func endCheckedFromRecoveryPoint() throws(KappaError) -> LogPoint? {
        if let cached = checkedEnd { return cached }
        bases = try SegmentFiles.bases(in: directory, fileSystem: fs)
        guard let first = bases.first, let last = bases.last else { return nil }
        var start = try RecoveryPoint.read(fs, partitionDirectory: directory)?.point ?? .start(of: last)
        if start.segmentBase < first { start = .start(of: first) }
        let scan = TailScan(fs: fs, directory: directory, topicPartition: topicPartition, codec: LZ4Codec(), scratch: ByteWriter(capacity: 1 << 16))
        let end: LogPoint
        switch try scan.run(bases: bases, from: start) {
        case .clean(let e): end = e
        case .torn(let at, _): end = at
        }
        checkedEnd = .some(end)
        return end
    }

    public enum SeekResult: Equatable {
        case positioned
        /// The offset was deleted by retention; the reader is at the log start instead.
        case belowStart(logStart: Offset)
    }

    /// Positions the reader so that the next batch returned contains `offset` (or is the
    /// first batch after it). Batches before `offset` are skipped unread; the caller skips
    /// the records below `offset` inside the first batch.
    @discardableResult
    public func seek(to offset: Offset) throws(KappaError) -> SeekResult {
        bases = try SegmentFiles.bases(in: directory, fileSystem: fs)
        guard let first = bases.first else {
            log = nil
            segmentBase = nil
            open(position: 0, expected: .zero)
            return .positioned
        }
        if offset < first {
            try openSegment(0, at: first)
            return .belowStart(logStart: first)
        }
        var i = bases.count - 1
        while bases[i] > offset { i -= 1 }
        try openSegment(i, at: offset)
        // Skip whole batches that end before the target.
        while true {
            guard let ref = try peekBatch() else { break }
            if ref.header.nextOffset > offset { break }
            advance(past: ref.header)
        }
        return .positioned
    }

    /// Opens segment `bases[i]` at the index entry at or below `target`, if that entry
    /// agrees with the log; else at the segment's start.
    private func openSegment(_ i: Int, at target: Offset) throws(KappaError) {
        let base = bases[i]
        let file = try fs.openFile(SegmentFiles.logPath(directory, base), mode: .readOnly)
        let end = try visibleEnd()
        let visible = try visibleBytes(of: base, file: file, end: end)
        let entries = try OffsetIndex.load(path: SegmentFiles.indexPath(directory, base), base: base, logBytes: visible + 1, fileSystem: fs)
        var entry = OffsetIndex.floor(entries, target)
        if let e = entry, e.position != .zero, try !agrees(e, file: file, visible: visible, end: end) {
            warnOnce(base, "index entry (offset \(e.offset), position \(e.position)) of \(SegmentFiles.indexPath(directory, base)) disagrees with the log; "
                     + "reading the segment from its start instead (a writer rebuilds the index when it next opens the partition)")
            entry = nil
        }
        log = file
        segmentBase = base
        open(position: entry?.position.rawValue ?? 0, expected: entry?.offset ?? base)
    }

    /// An index entry agrees with the log when a batch with its offset starts at its
    /// position (or, at the visible end, when the end is that offset).
    private func agrees(_ e: OffsetIndex.Entry, file: File, visible: Int64, end: LogPoint?) throws(KappaError) -> Bool {
        if e.position.rawValue == visible { return end?.offset == e.offset }
        guard e.position.rawValue < visible, let h = try SegmentScanner.header(file, at: e.position) else { return false }
        return h.baseOffset == e.offset && e.position.rawValue + Int64(h.totalBytes) <= visible
    }

    private func warnOnce(_ base: Offset, _ message: String) {
        guard warnedSegments.insert(base).inserted else { return }
        warnings.append("\(topicPartition.readable): " + message)
    }

    private func open(position: Int64, expected: Offset) {
        bufferStart = position
        buffer.removeAll()
        cursor = 0
        expectedOffset = expected
    }

    /// The next whole, checked batch, or nil when the reader has caught up with the
    /// visible end of the log. The bytes are valid until the next call.
    public func nextBatch() throws(KappaError) -> BatchRef? {
        guard let ref = try peekBatch() else { return nil }
        advance(past: ref.header)
        return ref
    }

    private func advance(past header: RecordBatchHeader) {
        cursor += header.totalBytes
        expectedOffset = header.nextOffset
    }

    /// How many bytes of segment `base` `end` makes visible: all of a segment before the
    /// end's, up to the end in the end's, none of a later one (a roll not yet published).
    private func visibleBytes(of base: Offset, file: File, end: LogPoint?) throws(KappaError) -> Int64 {
        guard let end else { return 0 }
        if base < end.segmentBase { return try file.size() }
        if base == end.segmentBase { return end.position.rawValue }
        return 0
    }

    private func peekBatch() throws(KappaError) -> BatchRef? {
        while true {
            guard let file = log, let base = segmentBase else {
                // No segment yet (empty partition): look again.
                bases = try SegmentFiles.bases(in: directory, fileSystem: fs)
                guard !bases.isEmpty else { return nil }
                try openSegment(0, at: bases[0])
                continue
            }
            let available = UnsafeRawBufferPointer(start: buffer.base + cursor, count: buffer.count - cursor)
            let frame: BatchFrame
            do {
                frame = try RecordBatchFramer.frame(available)
            } catch {
                throw corrupt(error.message)
            }
            switch frame {
            case .batch(let header):
                let bytes = UnsafeRawBufferPointer(start: buffer.base + cursor, count: header.totalBytes)
                guard header.baseOffset == expectedOffset else {
                    throw corrupt("batch base offset is \(header.baseOffset), expected \(expectedOffset)")
                }
                guard RecordBatchFramer.crcMatches(bytes) else {
                    throw corrupt("CRC-32C mismatch in batch of offsets \(header.baseOffset)...\(header.lastOffset)")
                }
                return BatchRef(header: header, bytes: bytes, position: FilePosition(bufferStart + Int64(cursor)))
            case .needMoreBytes(let total):
                // One reading of the end for every decision below: a writer may append
                // and roll between two readings, and a second, later end would send the
                // reader on to the next segment before the rest of this one.
                let end = try visibleEnd()
                let visible = try visibleBytes(of: base, file: file, end: end)
                let position = bufferStart + Int64(cursor)
                if position + Int64(total) <= visible {
                    if try fill(file, needing: total, visible: visible) { continue }
                    throw corrupt("the file ends at \(bufferStart + Int64(buffer.count)) bytes, inside a batch of \(total) bytes, "
                                  + "before the \(visible) bytes published")
                }
                if position < visible {
                    let what = base == end?.segmentBase ? "the published end at position \(visible)" : "the end of this closed segment (\(visible) bytes)"
                    throw corrupt(total > RecordBatchLayout.headerBytes || visible - position >= Int64(RecordBatchLayout.logOverheadBytes)
                                  ? "a batch of \(total) bytes here runs past \(what)"
                                  : "\(visible - position) bytes here before \(what) are not a batch")
                }
                // Caught up with this segment: move on if a newer one is visible.
                guard try moveToNextSegment(end: end) else {
                    buffer.count = cursor  // nothing buffered past the end (a later truncation cannot leave stale bytes)
                    return nil
                }
            }
        }
    }

    /// Reads more of the current segment, up to `visible` bytes. False when the file
    /// has no more bytes, though the end says it should.
    private func fill(_ file: File, needing total: Int, visible: Int64) throws(KappaError) -> Bool {
        buffer.removeFirst(cursor)
        bufferStart += Int64(cursor)
        cursor = 0
        let have = bufferStart + Int64(buffer.count)
        let want = max(total, Self.readBytes)
        buffer.reserve(want - buffer.count)
        let count = Int(min(Int64(want - buffer.count), visible - have))
        guard count > 0 else { return false }
        let n = try file.read(into: buffer.base + buffer.count, count: count, at: have)
        buffer.count += n
        return n > 0
    }

    private func moveToNextSegment(end: LogPoint?) throws(KappaError) -> Bool {
        guard let current = segmentBase, let end, current < end.segmentBase else { return false }
        // The listing this reader has usually names the next segment already; list again
        // only when it does not, or when that segment is gone (retention).
        if let cached = bases.first(where: { $0 > current }), cached == expectedOffset,
           let file = try openIfExists(SegmentFiles.logPath(directory, cached)) {
            log = file
            segmentBase = cached
            open(position: 0, expected: cached)
            return true
        }
        bases = try SegmentFiles.bases(in: directory, fileSystem: fs)
        guard let next = bases.first(where: { $0 > current }) else {
            throw corrupt("no segment follows, though the published end is in segment \(SegmentFiles.name(end.segmentBase))")
        }
        if next != expectedOffset {
            // Retention deleted what lay between: the reader was too slow (Kafka's
            // OFFSET_OUT_OF_RANGE). Anything else is a hole in the log.
            guard expectedOffset < next, let first = bases.first, expectedOffset < first else {
                throw corrupt("segment \(SegmentFiles.name(next)) starts at offset \(next), expected \(expectedOffset)")
            }
            throw KappaError(.offsetOutOfRange, "offsets \(expectedOffset)..<\(first) were deleted by retention before they were read; the log starts at \(first)",
                             topicPartition: topicPartition, offset: expectedOffset)
        }
        log = try fs.openFile(SegmentFiles.logPath(directory, next), mode: .readOnly)
        segmentBase = next
        open(position: 0, expected: next)
        return true
    }

    private func openIfExists(_ path: String) throws(KappaError) -> File? {
        do {
            return try fs.openFile(path, mode: .readOnly)
        } catch where error.code == .notFound {
            return nil
        }
    }

    private func corrupt(_ reason: String) -> KappaError {
        KappaError(.corruptData, reason, topicPartition: topicPartition, offset: expectedOffset, path: log?.path,
                   position: FilePosition(bufferStart + Int64(cursor)))
    }
}
