import KappaCore
import KappaFormat

/// Where one partition starts and ends as readers may see it, asked again and again (a
/// Kafka server answers every fetch with the log start, the high watermark and the last
/// stable offset) at the cost of a system call or two.
///
/// The end is the one the writer published (`PartitionReader.visibleEnd`: one pread of
/// the partition's `end` file; for a transactional topic, no further than its
/// `CommittedMarker`). The start is the first segment's base, listed again only when that
/// segment's file is gone (retention). Never takes a lock and never writes. Not
/// thread-safe: one probe per thread.
public final class PartitionEndProbe {
    public let topicPartition: TopicPartition
    public let directory: String
    private let fs: any FileSystem
    private let reader: PartitionReader
    private var firstBase: Offset?
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: RecordBatchLayout.headerBytes, alignment: 8)

    public struct Bounds: Equatable, Sendable {
        /// The first offset still stored (retention moves it).
        public var start: Offset
        /// The offset the next record will get, as readers may see it (Kafka's high
        /// watermark; for a transactional topic its committed marker, the last stable offset).
        public var end: Offset
    }

    public init(directory: DataDirectory, topicPartition: TopicPartition) throws(KappaError) {
        self.topicPartition = topicPartition
        self.directory = directory.partitionPath(topicPartition)
        fs = directory.fileSystem
        reader = try PartitionReader(directory: directory, topicPartition: topicPartition)
    }

    deinit { header.deallocate() }

    /// The partition's bounds now.
    public func read() throws(KappaError) -> Bounds {
        if firstBase == nil || !fs.exists(SegmentFiles.logPath(directory, firstBase!)) {
            firstBase = try SegmentFiles.bases(in: directory, fileSystem: fs).first
        }
        let end = try reader.visibleEnd()?.offset ?? .zero
        let start = firstBase ?? .zero
        return Bounds(start: min(start, end), end: end)
    }

    /// Calls `body` with the 61 header bytes of every whole batch of the last
    /// `segmentsMax` segments, in offset order, up to the end readers may see: how a
    /// Kafka server rebuilds its idempotent producers' state (producer id, epoch and
    /// sequence live in batch headers) after a restart without decoding a record. Stops
    /// at the first bytes that do not frame (a reader reports such damage, with its
    /// evidence, when it reaches it).
    public func forEachRecentBatchHeader(segmentsMax: Int, _ body: (UnsafeRawBufferPointer) -> Void) throws(KappaError) {
        precondition(segmentsMax > 0)
        let end = try read().end
        let all = try SegmentFiles.bases(in: directory, fileSystem: fs)
        for base in all.suffix(segmentsMax) where base < end {
            let file = try fs.openFile(SegmentFiles.logPath(directory, base), mode: .readOnly)
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

    /// The header of the whole batch at `position`, or nil when none frames there.
    private func readHeader(_ file: File, at position: Int64, fileBytes: Int64) throws(KappaError) -> RecordBatchHeader? {
        guard position + Int64(RecordBatchLayout.headerBytes) <= fileBytes else { return nil }
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
}
