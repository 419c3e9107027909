import KappaCore
import KappaFormat

/// A tail repair made when a partition was opened: evidence for the operator.
public struct RecoveryEvent: Sendable, CustomStringConvertible {
    public var topicPartition: TopicPartition
    public var offset: Offset
    public var position: FilePosition
    public var bytesDropped: Int64
    public var reason: String
    public var path: String

    public var description: String {
        "recovered \(topicPartition.topic) partition \(topicPartition.partition): truncated \(bytesDropped) bytes at offset \(offset) (file \(path), position \(position)): \(reason)"
    }
}

/// Batches sealed by `RecordBatchBuilder`, back to back in one buffer, waiting for their
/// offsets. `PartitionWriter.append` stamps and writes them in one go.
public final class SealedBatches {
    public struct Batch {
        public var start: Int
        public var length: Int
        public var records: Int32
        public var maxTimestampMillis: Int64
    }

    public let buffer = ByteWriter(capacity: 1 << 20)
    public internal(set) var batches: [Batch] = []
    public internal(set) var records: Int = 0

    public init() {}

    public var isEmpty: Bool { batches.isEmpty }
    public var bytes: Int { buffer.count }

    /// Seals `builder`'s records into this buffer.
    public func seal(_ builder: RecordBatchBuilder, codec: LZ4Codec) {
        guard !builder.isEmpty else { return }
        let start = buffer.count
        let n = builder.count
        let length = builder.seal(into: buffer, codec: codec)
        let maxTs = buffer.bytes.loadBigEndian(at: start + RecordBatchLayout.maxTimestampOffset, as: Int64.self)
        batches.append(Batch(start: start, length: length, records: n, maxTimestampMillis: maxTs))
        records += Int(n)
    }

    public func removeAll() {
        buffer.removeAll()
        batches.removeAll(keepingCapacity: true)
        records = 0
    }
}

/// Appends to one partition. Many `PartitionWriter`s, in many processes, may write the
/// same partition: every append takes the partition's `lock` file exclusively, first
/// re-reads the tail that others may have moved (`syncTail`), then stamps offsets and
/// writes whole batches. Readers take the same lock shared to learn the committed end,
/// so they never see a batch that is still being written.
///
/// Crash safety: the log is written before its indexes; on every open the active
/// segment's tail is re-validated from its last trusted index entry, and a torn or
/// corrupt final batch is truncated (and reported in `recoveries`). A bad batch with a
/// good batch after it is corruption, not a torn tail: it is refused, never truncated.
///
/// Not thread-safe: one writer per thread.
public final class PartitionWriter {
    public let topicPartition: TopicPartition
    public let directory: String
    public let config: TopicConfig
    public let fsync: FsyncPolicy
    let clock: any WallClock
    let lock: FileLock
    let codec = LZ4Codec()
    let scratch = ByteWriter(capacity: 1 << 20)
    let indexBuffer = ByteWriter(capacity: 4096)
    let timeIndexBuffer = ByteWriter(capacity: 4096)

    public private(set) var recoveries: [RecoveryEvent] = []

    /// The active (last) segment as this writer last saw it.
    struct Active {
        var base: Offset
        var log: File
        var index: File
        var timeIndex: File
        var size: Int64
        var nextOffset: Offset
        var indexBytes: Int64
        var timeIndexBytes: Int64
        var bytesSinceIndexEntry: Int
        var maxTimestampMillis: Int64
        var lastTimeIndexMillis: Int64
        var lastTimeIndexOffset: Offset?
        var firstBatchMaxTimestampMillis: Int64?
    }

    var active: Active?
    var dirty = false
    var lastSyncNanos: Int64

    public init(directory: DataDirectory, topicPartition: TopicPartition, config: TopicConfig,
                fsync: FsyncPolicy = .default, clock: any WallClock = SystemClock(), enforcingRetention: Bool = true) throws(KappaError) {
        self.topicPartition = topicPartition
        self.directory = directory.partitionPath(topicPartition)
        self.config = config
        self.fsync = fsync
        self.clock = clock
        self.lastSyncNanos = clock.nowNanos()
        guard FS.isDirectory(self.directory) else {
            throw KappaError(.notFound, "partition directory is missing", topicPartition: topicPartition, path: self.directory)
        }
        lock = try FileLock(path: self.directory + "/" + SegmentFiles.lockName)
        try lock.withExclusive { () throws(KappaError) in
            try syncTail()
            if enforcingRetention { try enforceRetention() }
        }
    }

    deinit { try? close() }

    /// The offset the next appended record gets (as of this writer's last append).
    public var nextOffset: Offset { active?.nextOffset ?? .zero }

    /// Stamps and writes `sealed` (emptying it). Returns the first and last offsets given.
    @discardableResult
    public func append(_ sealed: SealedBatches) throws(KappaError) -> ClosedRange<Offset>? {
        guard !sealed.isEmpty else { return nil }
        let range = try lock.withExclusive { () throws(KappaError) -> ClosedRange<Offset> in
            try syncTail()
            return try appendLocked(sealed)
        }
        sealed.removeAll()
        return range
    }

    private func appendLocked(_ sealed: SealedBatches) throws(KappaError) -> ClosedRange<Offset> {
        let first = active!.nextOffset
        var runStart = -1  // buffer start of the batches not yet written
        var runEnd = 0
        var runPosition: Int64 = 0
        for batch in sealed.batches {
            if shouldRoll(batchBytes: batch.length, batchMaxTimestamp: batch.maxTimestampMillis) {
                if runStart >= 0 { try writeRun(sealed.buffer, runStart, runEnd, at: runPosition) }
                runStart = -1
                try roll()
            }
            var a = active!
            RecordBatchFramer.stamp(baseOffset: a.nextOffset, batchAt: batch.start, in: sealed.buffer)
            if runStart < 0 {
                runStart = batch.start
                runPosition = a.size
            }
            runEnd = batch.start + batch.length
            // Index the batch when a full interval of bytes has gone by since the last
            // entry (and always the first batch of a segment, so scans start nearby).
            a.maxTimestampMillis = max(a.maxTimestampMillis, batch.maxTimestampMillis)
            if a.firstBatchMaxTimestampMillis == nil { a.firstBatchMaxTimestampMillis = batch.maxTimestampMillis }
            if a.bytesSinceIndexEntry >= Limits.indexIntervalBytes || a.size == 0 {
                OffsetIndex.encode(.init(offset: a.nextOffset, position: FilePosition(a.size)), base: a.base, into: indexBuffer)
                if a.maxTimestampMillis > a.lastTimeIndexMillis {
                    TimeIndex.encode(.init(timestampMillis: a.maxTimestampMillis, offset: a.nextOffset), base: a.base, into: timeIndexBuffer)
                    a.lastTimeIndexMillis = a.maxTimestampMillis
                    a.lastTimeIndexOffset = a.nextOffset
                }
                a.bytesSinceIndexEntry = 0
            }
            a.bytesSinceIndexEntry += batch.length
            a.size += Int64(batch.length)
            a.nextOffset = a.nextOffset + Int64(batch.records)
            active = a
        }
        if runStart >= 0 { try writeRun(sealed.buffer, runStart, runEnd, at: runPosition) }
        try flushIndexes()
        dirty = true
        try maybeSync()
        return first...(active!.nextOffset + -1)
    }

    private func writeRun(_ buffer: ByteWriter, _ start: Int, _ end: Int, at position: Int64) throws(KappaError) {
        try active!.log.write(UnsafeRawBufferPointer(start: buffer.base + start, count: end - start), at: position)
    }

    private func flushIndexes() throws(KappaError) {
        guard var a = active else { return }
        if indexBuffer.count > 0 {
            try a.index.write(indexBuffer.bytes, at: a.indexBytes)
            a.indexBytes += Int64(indexBuffer.count)
            indexBuffer.removeAll()
        }
        if timeIndexBuffer.count > 0 {
            try a.timeIndex.write(timeIndexBuffer.bytes, at: a.timeIndexBytes)
            a.timeIndexBytes += Int64(timeIndexBuffer.count)
            timeIndexBuffer.removeAll()
        }
        active = a
    }

    private func shouldRoll(batchBytes: Int, batchMaxTimestamp: Int64) -> Bool {
        let a = active!
        guard a.size > 0 else { return false }
        if a.size + Int64(batchBytes) > config.segmentBytes { return true }
        if let first = a.firstBatchMaxTimestampMillis, batchMaxTimestamp - first > config.segmentMillis { return true }
        return false
    }

    /// Closes the active segment (final time-index entry, fsync) and starts a new one at
    /// the next offset. Caller holds the lock.
    private func roll() throws(KappaError) {
        try flushIndexes()
        var a = active!
        if a.maxTimestampMillis > a.lastTimeIndexMillis || a.lastTimeIndexOffset == nil {
            // The last time entry of a closed segment carries its largest timestamp.
            let lastOffset = a.lastTimeIndexOffset ?? a.base
            TimeIndex.encode(.init(timestampMillis: a.maxTimestampMillis, offset: lastOffset), base: a.base, into: timeIndexBuffer)
            active = a
            try flushIndexes()
            a = active!
        }
        try a.log.sync()
        try a.index.sync()
        try a.timeIndex.sync()
        active = try openSegment(base: a.nextOffset, create: true)
        FS.syncDirectory(of: active!.log.path)
        try enforceRetention()
    }

    private func openSegment(base: Offset, create: Bool) throws(KappaError) -> Active {
        let mode: File.Mode = create ? .readWriteCreate : .readWrite
        let log = try File(path: SegmentFiles.logPath(directory, base), mode: mode)
        let index = try File(path: SegmentFiles.indexPath(directory, base), mode: .readWriteCreate)
        let timeIndex = try File(path: SegmentFiles.timeIndexPath(directory, base), mode: .readWriteCreate)
        return Active(base: base, log: log, index: index, timeIndex: timeIndex, size: try log.size(), nextOffset: base,
                      indexBytes: try index.size(), timeIndexBytes: try timeIndex.size(), bytesSinceIndexEntry: 0,
                      maxTimestampMillis: .min, lastTimeIndexMillis: .min, lastTimeIndexOffset: nil,
                      firstBatchMaxTimestampMillis: nil)
    }

    /// Brings this writer's view of the tail up to date. Caller holds the lock. Fast when
    /// nobody else appended: one directory listing and one fstat; when others appended
    /// to the same segment, a scan of just their batches (`catchUp`).
    func syncTail() throws(KappaError) {
        let bases = try SegmentFiles.bases(in: directory)
        guard let last = bases.last else {
            active = try openSegment(base: .zero, create: true)
            return
        }
        if var a = active, a.base == last {
            let size = try a.log.size()
            if size == a.size { return }
            if size > a.size, a.size > 0, a.firstBatchMaxTimestampMillis != nil, try catchUp(&a, to: size) {
                active = a
                return
            }
        }
        try recover(base: last)
    }

    /// Another writer appended whole batches after this one's last view of the active
    /// segment: validate just those bytes (framing, offsets, CRC, records) and move past
    /// them, appending later index entries after the ones that writer added. A full
    /// recovery would rescan from the last index entry and rewrite both index files on
    /// every such append. False when the new bytes do not scan cleanly to the end of the
    /// file (a torn or corrupt tail): recovery decides then.
    private func catchUp(_ a: inout Active, to size: Int64) throws(KappaError) -> Bool {
        let scanner = SegmentScanner(file: a.log, codec: codec, scratch: scratch, validateRecords: true)
        let r = try scanner.scan(from: FilePosition(a.size), expected: a.nextOffset, fileBytes: size, keepBatches: false)
        guard r.stop == .endOfFile, r.endPosition.rawValue == size else { return false }
        a.bytesSinceIndexEntry += Int(size - a.size)
        a.size = size
        a.nextOffset = r.nextOffset
        a.maxTimestampMillis = max(a.maxTimestampMillis, r.maxTimestampMillis)
        // The index files as they are now (others wrote entries, or a recovery rewrote
        // them); whole entries only: a partial one (a writer killed mid-write) is
        // overwritten. Files deleted under this writer: recovery recreates them.
        let (indexBytes, indexLinked) = try a.index.sizeAndLinked()
        let (timeBytes, timeLinked) = try a.timeIndex.sizeAndLinked()
        guard indexLinked, timeLinked else { return false }
        a.indexBytes = indexBytes - indexBytes % Int64(OffsetIndex.entryBytes)
        a.timeIndexBytes = timeBytes - timeBytes % Int64(TimeIndex.entryBytes)
        // Later time entries continue from the file's last one, whoever wrote it.
        a.lastTimeIndexMillis = .min
        a.lastTimeIndexOffset = nil
        if a.timeIndexBytes >= TimeIndex.entryBytes {
            let last = try a.timeIndex.read(count: TimeIndex.entryBytes, at: a.timeIndexBytes - Int64(TimeIndex.entryBytes))
            guard last.count == TimeIndex.entryBytes else { return false }
            a.lastTimeIndexMillis = last.withUnsafeBytes { $0.loadBigEndian(at: 0, as: Int64.self) }
            a.lastTimeIndexOffset = a.base + Int64(last.withUnsafeBytes { $0.loadBigEndian(at: 8, as: UInt32.self) })
        }
        return true
    }

    /// Re-validates the tail of segment `base` from its last trusted index entry and
    /// rebuilds what follows; truncates a torn or corrupt final batch.
    private func recover(base: Offset) throws(KappaError) {
        var a = try openSegment(base: base, create: false)
        var entries = OffsetIndex.load(path: a.index.path, base: base, logBytes: a.size)
        let scanner = SegmentScanner(file: a.log, codec: codec, scratch: scratch, validateRecords: true)
        var start = entries.last ?? OffsetIndex.Entry(offset: base, position: .zero)
        var result = try scanner.scan(from: start.position, expected: start.offset, fileBytes: a.size, keepBatches: true)
        if result.batches.isEmpty && start.position != .zero {
            // The last index entry does not point at a valid batch: the index is not to
            // be trusted at all. Rebuild it from the whole segment.
            entries = []
            start = OffsetIndex.Entry(offset: base, position: .zero)
            result = try scanner.scan(from: .zero, expected: base, fileBytes: a.size, keepBatches: true)
        }
        if result.stop != .endOfFile {
            try handleBadTail(result, segment: a, scanner: scanner)
            try a.log.truncate(to: result.endPosition.rawValue)
            a.size = result.endPosition.rawValue
        }
        // Rewrite the index from the trusted prefix plus the batches just scanned.
        entries.removeAll { $0.position >= start.position }
        var bytesSince = 0
        for b in result.batches {
            if bytesSince >= Limits.indexIntervalBytes || b.position.rawValue == 0 || b.position == start.position {
                entries.append(.init(offset: b.header.baseOffset, position: b.position))
                bytesSince = 0
            }
            bytesSince += b.header.totalBytes
        }
        indexBuffer.removeAll()
        for e in entries { OffsetIndex.encode(e, base: base, into: indexBuffer) }
        try a.index.truncate(to: 0)
        try a.index.write(indexBuffer.bytes, at: 0)
        a.indexBytes = Int64(indexBuffer.count)
        indexBuffer.removeAll()
        a.bytesSinceIndexEntry = bytesSince
        a.nextOffset = result.nextOffset
        // The time index: keep entries below the scanned region, add one for its end. The
        // batches between the last kept time entry and the scan start count too: scan them
        // (from the offset index entry at or below that time entry) so that the segment's
        // largest timestamp, which retention reads at roll, is never understated.
        var times = TimeIndex.load(path: a.timeIndex.path, base: base, nextOffset: start.offset)
        var maxTs = times.last?.timestampMillis ?? .min
        maxTs = max(maxTs, result.maxTimestampMillis)
        let gapFrom = OffsetIndex.floor(entries, times.last?.offset ?? base) ?? OffsetIndex.Entry(offset: base, position: .zero)
        if gapFrom.position < start.position {
            let gap = try SegmentScanner(file: a.log, codec: codec, scratch: scratch, validateRecords: false)
                .scan(from: gapFrom.position, expected: gapFrom.offset, fileBytes: start.position.rawValue, keepBatches: false)
            maxTs = max(maxTs, gap.maxTimestampMillis)
        }
        if let lastBatch = result.batches.last, maxTs > (times.last?.timestampMillis ?? .min) {
            times.append(.init(timestampMillis: maxTs, offset: lastBatch.header.baseOffset))
        }
        timeIndexBuffer.removeAll()
        for t in times { TimeIndex.encode(t, base: base, into: timeIndexBuffer) }
        try a.timeIndex.truncate(to: 0)
        try a.timeIndex.write(timeIndexBuffer.bytes, at: 0)
        a.timeIndexBytes = Int64(timeIndexBuffer.count)
        timeIndexBuffer.removeAll()
        a.maxTimestampMillis = maxTs
        a.lastTimeIndexMillis = times.last?.timestampMillis ?? .min
        a.lastTimeIndexOffset = times.last?.offset
        if a.size > 0 {
            a.firstBatchMaxTimestampMillis = try firstBatchMaxTimestamp(a)
        }
        active = a
    }

    /// A torn final batch is expected after a crash; anything else must be the last
    /// thing in the file, or it is corruption we refuse to paper over.
    private func handleBadTail(_ result: SegmentScanner.Result, segment a: Active, scanner: SegmentScanner) throws(KappaError) {
        let reason: String
        switch result.stop {
        case .endOfFile: return
        case .torn(let r): reason = r
        case .invalid(let r):
            reason = r
            if try goodBatchFollows(result.endPosition, in: a) {
                throw KappaError(.corruptData, "corrupt batch in the middle of the log: \(r); refusing to truncate the valid batches after it",
                                 topicPartition: topicPartition, offset: result.nextOffset, path: a.log.path)
            }
        }
        recoveries.append(RecoveryEvent(topicPartition: topicPartition, offset: result.nextOffset, position: result.endPosition,
                                        bytesDropped: a.size - result.endPosition.rawValue, reason: reason, path: a.log.path))
    }

    /// Whether a valid batch (framed by the bad batch's own length) follows `position`.
    private func goodBatchFollows(_ position: FilePosition, in a: Active) throws(KappaError) -> Bool {
        let head = try a.log.read(count: RecordBatchLayout.logOverheadBytes, at: position.rawValue)
        guard head.count == RecordBatchLayout.logOverheadBytes else { return false }
        let length = head.withUnsafeBytes { $0.loadBigEndian(at: RecordBatchLayout.batchLengthOffset, as: Int32.self) }
        let next = position.rawValue + Int64(length) + Int64(RecordBatchLayout.logOverheadBytes)
        guard length > 0, next < a.size else { return false }
        let probe = SegmentScanner(file: a.log, codec: codec, scratch: scratch, validateRecords: false)
        let nextHeader = try readHeader(a.log, at: next)
        guard let nextHeader else { return false }
        let r = try probe.scan(from: FilePosition(next), expected: nextHeader.baseOffset, fileBytes: a.size, keepBatches: false)
        return r.endPosition.rawValue > next
    }

    private func readHeader(_ file: File, at position: Int64) throws(KappaError) -> RecordBatchHeader? {
        let head = try file.read(count: RecordBatchLayout.headerBytes, at: position)
        guard head.count == RecordBatchLayout.headerBytes else { return nil }
        return head.withUnsafeBytes { RecordBatchHeader($0) }
    }

    private func firstBatchMaxTimestamp(_ a: Active) throws(KappaError) -> Int64? {
        try readHeader(a.log, at: 0)?.maxTimestampMillis
    }

    private func maybeSync() throws(KappaError) {
        switch fsync {
        case .never: return
        case .always: try syncNow()
        case .interval(let ms):
            let now = clock.nowNanos()
            if now - lastSyncNanos >= ms * 1_000_000 { try syncNow() }
        }
    }

    /// Where the log ends now: what a transactional owner publishes after a checkpoint.
    public var endMarker: CommittedMarker {
        let a = active!
        return CommittedMarker(segmentBase: a.base, position: FilePosition(a.size), offset: a.nextOffset)
    }

    /// Cuts the partition back to end at `offset`, which must be a batch boundary at or
    /// below the end: how a transactional owner discards output written after its last
    /// checkpoint. Whole later segments are deleted; indexes are rebuilt.
    public func truncate(to offset: Offset) throws(KappaError) {
        try lock.withExclusive { () throws(KappaError) in
            try syncTail()
            let end = active!.nextOffset
            guard offset != end else { return }
            guard offset < end else {
                throw KappaError(.corruptData, "cannot truncate to offset \(offset): the log ends at \(end)", topicPartition: topicPartition, offset: offset)
            }
            let bases = try SegmentFiles.bases(in: directory)
            guard let base = bases.last(where: { $0 <= offset }) else {
                throw KappaError(.corruptData, "offset \(offset) is below the log start", topicPartition: topicPartition, offset: offset)
            }
            for b in bases where b > base {
                try FS.remove(SegmentFiles.logPath(directory, b))
                try FS.remove(SegmentFiles.indexPath(directory, b))
                try FS.remove(SegmentFiles.timeIndexPath(directory, b))
            }
            let log = try File(path: SegmentFiles.logPath(directory, base), mode: .readWrite)
            let size = try log.size()
            let entry = OffsetIndex.floor(OffsetIndex.load(path: SegmentFiles.indexPath(directory, base), base: base, logBytes: size), offset)
            let scanner = SegmentScanner(file: log, codec: codec, scratch: scratch, validateRecords: false)
            let r = try scanner.scan(from: entry?.position ?? .zero, expected: entry?.offset ?? base, fileBytes: size, keepBatches: true)
            let position: FilePosition
            if let b = r.batches.first(where: { $0.header.baseOffset == offset }) {
                position = b.position
            } else if r.nextOffset == offset {
                position = r.endPosition
            } else {
                throw KappaError(.corruptData, "offset \(offset) is not a batch boundary", topicPartition: topicPartition, offset: offset, path: log.path)
            }
            try log.truncate(to: position.rawValue)
            try log.sync()
            active = nil
            try syncTail()
        }
    }

    /// Forces appended bytes to stable storage.
    public func syncNow() throws(KappaError) {
        guard dirty, let a = active else { return }
        try a.log.sync()
        dirty = false
        lastSyncNanos = clock.nowNanos()
    }

    /// Flushes per the policy (interval and always sync here). Idempotent.
    public func close() throws(KappaError) {
        if fsync != .never { try syncNow() }
    }
}
