import KappaCore
import KappaFormat

/// Where one partition starts and ends as readers may see it, asked again and again (a
/// Kafka server answers every fetch with the log start, the high watermark and the last
/// stable offset) at the cost of a few system calls when nothing changed.
///
/// It remembers how far it has walked the active segment: a call takes the partition
/// lock shared (so no writer is between two batches), stats the active segment, and walks
/// the headers of only the batches appended since — 61 bytes read per batch, no record is
/// decoded and no CRC checked (that is the reader's job, before any byte is served). A
/// roll is noticed by the segment named after the end it knows; retention by the first
/// segment's file vanishing; a truncation (recovery, a transactional owner) by the file
/// shrinking or being unlinked. A transactional topic ends at its `CommittedMarker`.
///
/// A batch that does not frame (a torn tail a writer will repair, or corruption a reader
/// will report with its evidence) ends the walk: the end is where the valid prefix ends.
/// Not thread-safe: one probe per thread.
public final class PartitionEndProbe {
    public let topicPartition: TopicPartition
    public let directory: String
    let lock: FileLock
    let transactional: Bool

    public struct Bounds: Equatable, Sendable {
        /// The first offset still stored (retention moves it).
        public var start: Offset
        /// The offset the next record will get, as readers may see it (Kafka's high
        /// watermark; for a transactional topic its committed marker, the last stable offset).
        public var end: Offset
    }

    private var bases: [Offset] = []
    private var active: File?
    private var activeBase: Offset = .zero
    private var walkedPosition: Int64 = 0
    private var walkedEnd: Offset = .zero
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: RecordBatchLayout.headerBytes, alignment: 8)

    public init(directory: DataDirectory, topicPartition: TopicPartition) throws(KappaError) {
        self.topicPartition = topicPartition
        self.directory = directory.partitionPath(topicPartition)
        guard FS.isDirectory(self.directory) else {
            throw KappaError(.notFound, "partition directory is missing", topicPartition: topicPartition, path: self.directory)
        }
        lock = try FileLock(path: self.directory + "/" + SegmentFiles.lockName)
        transactional = try directory.topicConfig(topicPartition.topic).isTransactional
    }

    deinit { header.deallocate() }

    /// The partition's bounds now.
    public func read() throws(KappaError) -> Bounds {
        try lock.withShared { () throws(KappaError) -> Bounds in
            if active == nil || !FS.exists(SegmentFiles.logPath(directory, bases[0])) { try reload() }
            while let file = active {
                let (size, linked) = try file.sizeAndLinked()
                if !linked || size < walkedPosition {
                    try reload()
                    continue
                }
                if size > walkedPosition { try walk(file, to: size) }
                // A writer rolls to a segment named after the end: move on to it.
                guard FS.exists(SegmentFiles.logPath(directory, walkedEnd)), walkedEnd != activeBase else { break }
                try reload()
            }
            var end = walkedEnd
            if transactional { end = min(end, CommittedMarker.read(partitionDirectory: directory).offset) }
            return Bounds(start: bases.first ?? .zero, end: end)
        }
    }

    /// Re-lists the segments and starts the walk of the last one from its last index entry.
    private func reload() throws(KappaError) {
        bases = try SegmentFiles.bases(in: directory)
        guard let last = bases.last else {
            active = nil
            walkedPosition = 0
            walkedEnd = .zero
            return
        }
        let file = try File(path: SegmentFiles.logPath(directory, last), mode: .readOnly)
        let size = try file.size()
        let entry = OffsetIndex.load(path: SegmentFiles.indexPath(directory, last), base: last, logBytes: size).last
        active = file
        activeBase = last
        walkedPosition = entry?.position.rawValue ?? 0
        walkedEnd = entry?.offset ?? last
        try walk(file, to: size)
        if walkedPosition == (entry?.position.rawValue ?? 0), entry != nil, walkedPosition < size {
            // The index entry did not lead to a batch: indexes are caches, walk from the start.
            walkedPosition = 0
            walkedEnd = last
            try walk(file, to: size)
        }
    }

    /// Walks batch headers from the remembered position up to `size`.
    private func walk(_ file: File, to size: Int64) throws(KappaError) {
        while walkedPosition + Int64(RecordBatchLayout.headerBytes) <= size {
            guard let h = try readHeader(file, at: walkedPosition, fileBytes: size), h.baseOffset == walkedEnd else { return }
            walkedPosition += Int64(h.totalBytes)
            walkedEnd = h.nextOffset
        }
    }

    /// The header of the whole batch at `position`, or nil when none frames there.
    private func readHeader(_ file: File, at position: Int64, fileBytes: Int64) throws(KappaError) -> RecordBatchHeader? {
        let n = try file.read(into: header.baseAddress!, count: RecordBatchLayout.headerBytes, at: position)
        guard n == RecordBatchLayout.headerBytes else { return nil }
        let frame: BatchFrame
        do {
            frame = try RecordBatchFramer.frame(UnsafeRawBufferPointer(header))
        } catch {
            return nil
        }
        // With the whole header in hand, "need more bytes" means a longer batch whose
        // length and magic checked out.
        let h: RecordBatchHeader
        switch frame {
        case .batch(let whole): h = whole
        case .needMoreBytes: h = RecordBatchHeader(UnsafeRawBufferPointer(header))
        }
        return position + Int64(h.totalBytes) <= fileBytes ? h : nil
    }

    /// Calls `body` with the 61 header bytes of every whole batch of the last
    /// `segmentsMax` segments, in offset order, up to the end readers may see: how a
    /// Kafka server rebuilds its idempotent producers' state (producer id, epoch and
    /// sequence live in batch headers) after a restart without decoding a record.
    public func forEachRecentBatchHeader(segmentsMax: Int, _ body: (UnsafeRawBufferPointer) -> Void) throws(KappaError) {
        precondition(segmentsMax > 0)
        let end = try read().end
        try lock.withShared { () throws(KappaError) in
            let all = try SegmentFiles.bases(in: directory)
            for base in all.suffix(segmentsMax) where base < end {
                let file = try File(path: SegmentFiles.logPath(directory, base), mode: .readOnly)
                let size = try file.size()
                var position: Int64 = 0
                var expected = base
                while expected < end, let h = try readHeader(file, at: position, fileBytes: size), h.baseOffset == expected {
                    body(UnsafeRawBufferPointer(header))
                    position += Int64(h.totalBytes)
                    expected = h.nextOffset
                }
            }
        }
    }
}
