import KappaCore
import KappaFormat

/// One batch handed out by a `PartitionReader`: its bytes are valid until the next call.
public struct BatchRef {
    public var header: RecordBatchHeader
    public var bytes: UnsafeRawBufferPointer
}

/// Reads one partition's batches in offset order, across segments, from any offset.
///
/// Sees only whole batches: the committed end of the active segment is read under the
/// partition lock held shared (writers hold it exclusively while writing). Every batch is
/// checked before it is handed out: its base offset must continue the previous batch and
/// its CRC-32C must match; a failure is a `KappaError(.corruptData)` naming topic,
/// partition and offset, never data. Not thread-safe; one reader per thread.
public final class PartitionReader {
    public let topicPartition: TopicPartition
    public let directory: String
    let lock: FileLock
    /// Transactional topics show only what their owner committed (`CommittedMarker`).
    let transactional: Bool

    private var bases: [Offset] = []
    private var segmentBase: Offset?
    private var log: File?
    private let buffer = ByteWriter(capacity: 1 << 20)
    private var bufferStart: Int64 = 0  // file position of buffer[0]
    private var cursor = 0
    /// Base offset the next batch must have.
    public private(set) var expectedOffset: Offset = .zero
    static let readBytes = 1 << 20

    public init(directory: DataDirectory, topicPartition: TopicPartition) throws(KappaError) {
        self.topicPartition = topicPartition
        self.directory = directory.partitionPath(topicPartition)
        guard FS.isDirectory(self.directory) else {
            throw KappaError(.notFound, "partition directory is missing", topicPartition: topicPartition, path: self.directory)
        }
        lock = try FileLock(path: self.directory + "/" + SegmentFiles.lockName)
        bases = try SegmentFiles.bases(in: self.directory)
        transactional = (try? directory.topicConfig(topicPartition.topic))?.isTransactional ?? false
    }

    /// The first offset still stored (retention moves it forward).
    public func startOffset() throws(KappaError) -> Offset {
        bases = try SegmentFiles.bases(in: directory)
        return bases.first ?? .zero
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
        bases = try SegmentFiles.bases(in: directory)
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

    private func openSegment(_ i: Int, at target: Offset) throws(KappaError) {
        let base = bases[i]
        let file = try File(path: SegmentFiles.logPath(directory, base), mode: .readOnly)
        let size = try file.size()
        let entry = OffsetIndex.floor(OffsetIndex.load(path: SegmentFiles.indexPath(directory, base), base: base, logBytes: size), target)
        log = file
        segmentBase = base
        open(position: entry?.position.rawValue ?? 0, expected: entry?.offset ?? base)
    }

    private func open(position: Int64, expected: Offset) {
        bufferStart = position
        buffer.removeAll()
        cursor = 0
        expectedOffset = expected
    }

    /// The next whole, checked batch, or nil when the reader has caught up with the
    /// committed end of the log. The bytes are valid until the next call.
    public func nextBatch() throws(KappaError) -> BatchRef? {
        guard let ref = try peekBatch() else { return nil }
        advance(past: ref.header)
        return ref
    }

    private func advance(past header: RecordBatchHeader) {
        cursor += header.totalBytes
        expectedOffset = header.nextOffset
    }

    private func peekBatch() throws(KappaError) -> BatchRef? {
        while true {
            guard log != nil else {
                // No segment yet (empty partition): look again.
                bases = try SegmentFiles.bases(in: directory)
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
                return BatchRef(header: header, bytes: bytes)
            case .needMoreBytes(let total):
                if try !fill(needing: total) {
                    // Nothing more in this segment: move on if a newer one exists.
                    guard try moveToNextSegment() else { return nil }
                }
            }
        }
    }

    /// Reads more of the current segment, up to its committed end. False at the end.
    private func fill(needing total: Int) throws(KappaError) -> Bool {
        let file = log!
        let isLast = segmentBase == bases.last
        var end = isLast ? try lock.withShared { () throws(KappaError) -> Int64 in try file.size() } : try file.size()
        if transactional, let base = segmentBase {
            end = CommittedMarker.read(partitionDirectory: directory).visibleBytes(segment: base, fileBytes: end)
        }
        if bufferStart + Int64(buffer.count) > end {
            // A writer's recovery truncated a torn tail we had buffered: forget those bytes.
            buffer.count = max(cursor, Int(end - bufferStart))
        }
        let have = bufferStart + Int64(buffer.count)
        guard have < end else {
            // Nothing new: forget the start of a batch we may hold. If it was torn, a
            // writer's recovery will cut it and write a new batch in its place; re-read
            // from the batch start next time instead of gluing new bytes to stale ones.
            buffer.count = cursor
            return false
        }
        buffer.removeFirst(cursor)
        bufferStart += Int64(cursor)
        cursor = 0
        let want = max(total, Self.readBytes)
        buffer.reserve(want - buffer.count)
        let n = try file.read(into: buffer.base + buffer.count, count: min(want - buffer.count, Int(end - have)), at: have)
        buffer.count += n
        return n > 0
    }

    private func moveToNextSegment() throws(KappaError) -> Bool {
        bases = try SegmentFiles.bases(in: directory)
        guard let current = segmentBase, let next = bases.first(where: { $0 > current }) else { return false }
        if buffer.count - cursor > 0 {
            throw corrupt("\(buffer.count - cursor) bytes of an incomplete batch at the end of a closed segment")
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
        log = try File(path: SegmentFiles.logPath(directory, next), mode: .readOnly)
        segmentBase = next
        open(position: 0, expected: next)
        return true
    }

    private func corrupt(_ reason: String) -> KappaError {
        let path = log?.path
        return KappaError(.corruptData, reason + " at file position \(bufferStart + Int64(cursor))",
                          topicPartition: topicPartition, offset: expectedOffset, path: path)
    }
}
