import KappaCore
import KappaFormat

/// A tail repair made when a writer opened (or re-synchronised with) a partition: the
/// bytes it cut, and where it kept them. Evidence for the operator.
public struct RecoveryEvent: Sendable, CustomStringConvertible {
    public var topicPartition: TopicPartition
    /// The first offset of the cut: the log now ends here.
    public var offset: Offset
    public var position: FilePosition
    public var bytesDropped: Int64
    public var reason: String
    /// The segment file that was cut.
    public var path: String
    /// Where the cut bytes are kept (`<base>.log.torn-<offset>`).
    public var evidencePath: String

    public var description: String {
        "recovered \(topicPartition.topic) partition \(topicPartition.partition): truncated \(bytesDropped) bytes at offset \(offset) "
            + "(file \(path), position \(position)): \(reason); the cut bytes are kept in \(evidencePath)"
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

/// Appends to one partition, in any number of processes at once.
///
/// **Protocol.** Every append takes the partition's `lock` file exclusively, re-reads the
/// published end (another writer may have appended, rolled or died mid-append since),
/// writes whole batches to the .log, then their index entries, then publishes the new
/// end in the `end` file (`PublishedEnd`) and releases the lock. Readers read up to the
/// published end without any lock; a batch being written is past it, so invisible.
///
/// **Durability.** Per `FsyncPolicy`, the .log is fsynced before the end is published
/// (so an acknowledged append is durable under `always`), and after every fsync the
/// recovery point (`RecoveryPoint`) moves to what the fsync covered. A roll fsyncs the
/// closed segment and its indexes and makes the new segment's name durable.
///
/// **Failure.** An append that fails (ENOSPC, EIO, a short write) is undone under the
/// lock before the error is thrown: the .log and index files are truncated back to where
/// the append began, segments it created are deleted, the end is left (or put back) where
/// it was, and the truncation is fsynced so a power loss cannot bring the undone batches
/// back. So an error means "none of it", success means "all of it". Failures after the
/// end is published (moving the recovery point, retention) cannot undo an acknowledged
/// append: they are thrown by the writer's next call (`append`, `syncNow`, `close`).
///
/// **Recovery** (on open, and whenever the end does not match the files): within the
/// boot that published the end, everything before it is trusted and everything after it
/// is an append that never finished; after a restart of the machine, everything after
/// the recovery point is checked batch by batch (framing, base offset continuity,
/// CRC-32C, every record) and cut at the first that fails. Cut bytes are kept beside the
/// segment (`<base>.log.torn-<offset>`) and reported in `recoveries`. A bad batch in a
/// segment that has a later segment, a log shorter than its recovery point, or a hole
/// between segments is corruption: a `KappaError(.corruptData)` naming file and
/// position; nothing is cut. Damage before the trusted point is not looked for by
/// writers (readers check every batch); a writer that trips over it while checking its
/// indexes says so in `warnings` and appends after it. The indexes of the active segment
/// are checked against the log's batch headers and rebuilt where they disagree (a
/// warning), never reported as damage to the log.
///
/// **Crash points.** What a kill -9 (K) or a power loss (P) at each step leaves, and why
/// the next writer's recovery is right (`SimulatedCrashTests` crashes at every one):
/// 1. writing .log bytes, 2. writing index entries — not published: K: the bytes past the
///    end are cut (evidence kept); P: past the recovery point, checked and cut at the
///    first bad batch (valid unpublished batches may stay: they were whole, never read).
/// 3. fsync of the .log (policy) — before the publish: an acknowledged append under
///    `always` is on disk. 4. publishing the end — one 108-byte pwrite: K: old or new end,
///    both consistent; P: the end is not trusted after a restart anyway.
/// 5. moving the recovery point — one copy of two, fsynced: a torn copy loses only the
///    newest point, which is never past what was fsynced.
/// Roll: the closed segment and its indexes are fsynced, then the new segment is made and
/// its name made durable, all before the end moves into it: so only the last segment can
/// ever hold torn bytes, and a bad batch in an earlier one is corruption. Retention
/// deletes .log files first (orphan indexes are removed by recovery) and fsyncs the
/// directory. A cut (recovery) copies the bytes to the evidence file and fsyncs it and
/// its name before it truncates. An undo or truncation publishes the lower end before it
/// cuts (a reader never finds the log shorter than the end), lowers the recovery point
/// first, and fsyncs the cut (a power loss cannot revive undone batches).
///
/// **Invariants** (asserted under the lock before and after every append and recovery):
/// `tail.size` is the active .log's length, `tail.indexBytes`/`tail.timeIndexBytes` the
/// index files' lengths, whole entries; between appends the published end equals `tail`.
///
/// Not thread-safe: one writer per thread.
public final class PartitionWriter {
    public let topicPartition: TopicPartition
    public let directory: String
    public let config: TopicConfig
    public let fsync: FsyncPolicy
    let fs: any FileSystem
    let clock: any WallClock
    let lock: FileLock
    let codec: LZ4Codec
    let scratch: ByteWriter
    let indexBuffer = ByteWriter(capacity: 4096)
    let timeIndexBuffer = ByteWriter(capacity: 4096)
    let endBuffer = ByteWriter(capacity: PublishedEnd.Layout.recordBytes)
    let endFile: File
    let recoveryPoint: RecoveryPointFile

    /// Tail repairs made by this writer, in order.
    public internal(set) var recoveries: [RecoveryEvent] = []
    /// Index files rebuilt, damage noticed below the recovery point: things an operator
    /// may want to know that stopped nothing.
    public internal(set) var warnings: [String] = []

    /// The active segment's files and state as this writer last saw or made them.
    struct OpenSegment {
        var log: File
        var index: File
        var timeIndex: File
    }

    var tail: SegmentTail
    var segment: OpenSegment
    /// What the `end` file says, as this writer last wrote or read it.
    var published: SegmentTail

    /// What an append in progress must restore if it fails (nil outside an append).
    struct Undo {
        var tail: SegmentTail
        var segment: OpenSegment
        var published: SegmentTail
        var createdSegments: [Offset] = []
        var publishAttempted = false
    }

    var undo: Undo?
    /// Holding the partition lock for an append (`beginAppend` … `finishAppend`).
    var inAppend = false
    /// A roll happened in the append in progress: retention runs when it finishes.
    var rolledInAppend = false
    /// The state on disk is unknown (an undo failed): the next append recovers first.
    var needsRecovery = false
    /// Log bytes written since the last fsync of the active segment.
    var dirty = false
    /// The furthest point known durable that the recovery point may not show yet.
    var durable: LogPoint?
    var lastSyncNanos: Int64
    /// An error after an append was acknowledged, thrown by the next call.
    var deferredFailure: KappaError?

    public init(directory: DataDirectory, topicPartition: TopicPartition, config: TopicConfig,
                fsync: FsyncPolicy = .default, clock: any WallClock = SystemClock(), enforcingRetention: Bool = true) throws(KappaError) {
        self.topicPartition = topicPartition
        self.directory = directory.partitionPath(topicPartition)
        self.config = config
        self.fsync = fsync
        self.fs = directory.fileSystem
        self.clock = clock
        self.lastSyncNanos = clock.monotonicNanos()
        guard fs.isDirectory(self.directory) else {
            throw KappaError(.notFound, "partition directory is missing", topicPartition: topicPartition, path: self.directory)
        }
        let codec = LZ4Codec(), scratch = ByteWriter(capacity: 1 << 20)
        self.codec = codec
        self.scratch = scratch
        let lock = try FileLock(path: self.directory + "/" + SegmentFiles.lockName, fileSystem: fs)
        self.lock = lock
        let endFile = try fs.openFile(PublishedEnd.path(self.directory), mode: .readWriteCreate)
        self.endFile = endFile
        try lock.lockExclusive()
        defer { lock.unlock() }
        recoveryPoint = try RecoveryPointFile(fs, partitionDirectory: self.directory)
        let recovery = TailRecovery(fs: fs, directory: self.directory, topicPartition: topicPartition, codec: codec, scratch: scratch)
        let recovered = try recovery.run(recoveryPoint: recoveryPoint.current,
                                         published: try Self.readPublished(endFile, into: endBuffer))
        tail = recovered.tail
        segment = recovered.segment
        published = recovered.published ?? recovered.tail
        recoveries = recovered.events
        warnings = recovered.warnings
        if recovered.published != tail { try publish() }
        if enforcingRetention { try enforceRetention() }
        checkInvariants()
    }

    /// A writer dropped without `close()` still syncs per its policy. A deinit cannot
    /// report a failure; callers that must know call `close()`, which throws it.
    deinit {
        do { try close() } catch {}
    }

    /// The offset the next appended record gets (as of this writer's last append).
    public var nextOffset: Offset { tail.nextOffset }

    var recovery: TailRecovery {
        TailRecovery(fs: fs, directory: directory, topicPartition: topicPartition, codec: codec, scratch: scratch)
    }

    // MARK: - Appending

    /// Stamps and writes `sealed` (emptying it), publishes it, syncs per the policy.
    /// Returns the first and last offsets given. On failure nothing of it is in the log
    /// and `sealed` keeps its batches.
    @discardableResult
    public func append(_ sealed: SealedBatches) throws(KappaError) -> ClosedRange<Offset>? {
        guard !sealed.isEmpty else { return nil }
        try beginAppend()
        let range: ClosedRange<Offset>
        do {
            range = try writeLocked(sealed)
            try syncIfDueLocked()
            try publishLocked()
        } catch {
            abortAppend(after: error)
            throw undoFailure ?? error
        }
        finishAppend()
        sealed.removeAll()
        return range
    }

    /// Takes the lock and brings this writer's view of the tail up to date. The first
    /// step of an append; `TopicWriter` takes several partitions' locks this way (in
    /// partition order) to write a group of them as one.
    func beginAppend() throws(KappaError) {
        precondition(!inAppend, "an append is already in progress")
        if let failure = deferredFailure {
            deferredFailure = nil
            throw failure
        }
        try lock.lockExclusive()
        inAppend = true
        do {
            try syncTail()
        } catch {
            inAppend = false
            lock.unlock()
            throw error
        }
        checkInvariants()
        undo = Undo(tail: tail, segment: segment, published: published)
        rolledInAppend = false
    }

    /// Stamps offsets and writes `sealed`'s batches and their index entries, rolling
    /// segments as needed. Not yet visible: `publishLocked` makes it so.
    func writeLocked(_ sealed: SealedBatches) throws(KappaError) -> ClosedRange<Offset> {
        precondition(inAppend && undo != nil)
        let first = tail.nextOffset
        var runStart = -1  // buffer start of the batches not yet written
        var runEnd = 0
        var runPosition: Int64 = 0
        for batch in sealed.batches {
            if shouldRoll(batchBytes: batch.length, batchMaxTimestamp: batch.maxTimestampMillis) {
                if runStart >= 0 { try writeRun(sealed.buffer, runStart, runEnd, at: runPosition) }
                runStart = -1
                try roll()
            }
            RecordBatchFramer.stamp(baseOffset: tail.nextOffset, batchAt: batch.start, in: sealed.buffer)
            if runStart < 0 {
                runStart = batch.start
                runPosition = tail.size
            }
            runEnd = batch.start + batch.length
            addIndexEntries(forBatchOf: Int64(batch.length), maxTimestampMillis: batch.maxTimestampMillis)
            tail.size += Int64(batch.length)
            tail.nextOffset = tail.nextOffset + Int64(batch.records)
        }
        if runStart >= 0 { try writeRun(sealed.buffer, runStart, runEnd, at: runPosition) }
        try flushIndexes()
        return first...(tail.nextOffset + -1)
    }

    /// Index entries for a batch about to be written at `tail.size`: one when a full
    /// interval of bytes has gone by since the last entry (and always for the first batch
    /// of a segment, so scans start nearby); a time entry beside it when the segment's
    /// largest timestamp grew.
    private func addIndexEntries(forBatchOf bytes: Int64, maxTimestampMillis: Int64) {
        tail.maxTimestampMillis = max(tail.maxTimestampMillis, maxTimestampMillis)
        if tail.firstBatchMaxTimestampMillis == .min { tail.firstBatchMaxTimestampMillis = maxTimestampMillis }
        if tail.bytesSinceIndexEntry >= Int64(Limits.indexIntervalBytes) || tail.size == 0 {
            OffsetIndex.encode(.init(offset: tail.nextOffset, position: FilePosition(tail.size)), base: tail.base, into: indexBuffer)
            if tail.maxTimestampMillis > tail.lastTimeIndexMillis {
                TimeIndex.encode(.init(timestampMillis: tail.maxTimestampMillis, offset: tail.nextOffset), base: tail.base, into: timeIndexBuffer)
                tail.lastTimeIndexMillis = tail.maxTimestampMillis
                tail.lastTimeIndexOffset = tail.nextOffset
            }
            tail.bytesSinceIndexEntry = 0
        }
        tail.bytesSinceIndexEntry += bytes
    }

    private func writeRun(_ buffer: ByteWriter, _ start: Int, _ end: Int, at position: Int64) throws(KappaError) {
        try segment.log.write(UnsafeRawBufferPointer(start: buffer.base + start, count: end - start), at: position)
        dirty = true
    }

    /// Writes the index entries gathered in the buffers. `tail.indexBytes` counts them
    /// already written only once they are.
    func flushIndexes() throws(KappaError) {
        if indexBuffer.count > 0 {
            let bytes = Int64(indexBuffer.count)
            indexBuffer.removeAll()  // whatever happens, these entries are spent: an undo truncates the file
            try segment.index.write(UnsafeRawBufferPointer(start: indexBuffer.base, count: Int(bytes)), at: tail.indexBytes)
            tail.indexBytes += bytes
        }
        if timeIndexBuffer.count > 0 {
            let bytes = Int64(timeIndexBuffer.count)
            timeIndexBuffer.removeAll()
            try segment.timeIndex.write(UnsafeRawBufferPointer(start: timeIndexBuffer.base, count: Int(bytes)), at: tail.timeIndexBytes)
            tail.timeIndexBytes += bytes
        }
    }

    private func shouldRoll(batchBytes: Int, batchMaxTimestamp: Int64) -> Bool {
        guard tail.size > 0 else { return false }
        if tail.size + Int64(batchBytes) > config.segmentBytes { return true }
        if tail.firstBatchMaxTimestampMillis != .min, batchMaxTimestamp - tail.firstBatchMaxTimestampMillis > config.segmentMillis { return true }
        return false
    }

    /// Closes the active segment (final time-index entry, fsync of it and its indexes)
    /// and starts a new one at the next offset, its name durable. Inside an append.
    private func roll() throws(KappaError) {
        precondition(inAppend)
        try flushIndexes()
        if tail.maxTimestampMillis > tail.lastTimeIndexMillis || tail.lastTimeIndexOffset == nil {
            // The last time entry of a closed segment carries its largest timestamp.
            let lastOffset = tail.lastTimeIndexOffset ?? tail.base
            TimeIndex.encode(.init(timestampMillis: tail.maxTimestampMillis, offset: lastOffset), base: tail.base, into: timeIndexBuffer)
            tail.lastTimeIndexMillis = tail.maxTimestampMillis
            tail.lastTimeIndexOffset = lastOffset
            try flushIndexes()
        }
        try segment.log.sync()
        try segment.index.sync()
        try segment.timeIndex.sync()
        dirty = false
        let base = tail.nextOffset
        undo?.createdSegments.append(base)
        segment = try recovery.createSegment(base)
        tail = .empty(base: base)
        durable = tail.end
        rolledInAppend = true
    }

    /// fsyncs the .log before publishing when the policy says so: always, or when the
    /// interval has passed. An fsync failure then fails the append (undone), so nothing
    /// is acknowledged that the policy promised durable.
    func syncIfDueLocked() throws(KappaError) {
        precondition(inAppend)
        switch fsync {
        case .never: return
        case .always: break
        case .interval(let ms):
            guard clock.monotonicNanos() - lastSyncNanos >= ms * 1_000_000 else { return }
        }
        try syncActiveLog()
    }

    private func syncActiveLog() throws(KappaError) {
        if dirty { try segment.log.sync() }
        dirty = false
        lastSyncNanos = clock.monotonicNanos()
        durable = tail.end
    }

    /// Makes the append visible: writes the new end. Inside an append.
    func publishLocked() throws(KappaError) {
        precondition(inAppend)
        undo?.publishAttempted = true
        try publish()
    }

    func publish() throws(KappaError) { try publish(tail) }

    func publish(_ end: SegmentTail) throws(KappaError) {
        PublishedEnd(bootID: fs.bootID, tail: end).encode(into: endBuffer)
        try endFile.write(endBuffer.bytes, at: 0)
        published = end
    }

    /// Ends a successful append: moves the recovery point, runs retention after a roll,
    /// releases the lock. Failures here come after the append was acknowledged and are
    /// thrown by the next call.
    func finishAppend() {
        precondition(inAppend)
        undo = nil
        do {
            try advanceRecoveryPoint()
            if rolledInAppend { try enforceRetention() }
        } catch {
            deferredFailure = deferredFailure ?? error
        }
        rolledInAppend = false
        checkInvariants()
        inAppend = false
        lock.unlock()
    }

    /// The error of the last failed undo, to throw instead of the append's own error.
    var undoFailure: KappaError?

    /// Undoes the append in progress after `error`, releases the lock. If the undo
    /// itself fails, `undoFailure` holds an error saying both, and the next append
    /// recovers the partition first.
    func abortAppend(after error: KappaError) {
        precondition(inAppend)
        undoFailure = nil
        do {
            try rollBackLocked()
        } catch let e {
            needsRecovery = true
            undoFailure = KappaError(error.code, "\(error.message); undoing the append then failed too (\(e.description)); "
                                     + "the next writer cuts what it left", topicPartition: topicPartition,
                                     offset: error.offset, path: error.path, position: error.position, systemError: error.systemError)
        }
        undo = nil
        rolledInAppend = false
        inAppend = false
        lock.unlock()
    }

    /// Puts the files back as they were when the append began: puts the old end back if
    /// a publish was tried, deletes segments it created, truncates the .log and indexes,
    /// and fsyncs the truncation (else a power loss could revive undone batches,
    /// which a producer resuming after the failure would then write twice).
    private func rollBackLocked() throws(KappaError) {
        guard let u = undo else { return }
        guard tail != u.tail || !u.createdSegments.isEmpty || u.publishAttempted || dirty else {
            indexBuffer.removeAll()
            timeIndexBuffer.removeAll()
            return  // nothing was written: nothing to undo
        }
        // The old end first: a reader must never find the log shorter than the end.
        if u.publishAttempted { try publish(u.published) }
        for base in u.createdSegments.reversed() {
            try fs.remove(SegmentFiles.logPath(directory, base))
            try fs.remove(SegmentFiles.indexPath(directory, base))
            try fs.remove(SegmentFiles.timeIndexPath(directory, base))
        }
        if !u.createdSegments.isEmpty { try fs.syncDirectory(directory) }
        segment = u.segment
        try segment.log.truncate(to: u.tail.size)
        try segment.index.truncate(to: u.tail.indexBytes)
        try segment.timeIndex.truncate(to: u.tail.timeIndexBytes)
        try segment.log.sync()
        indexBuffer.removeAll()
        timeIndexBuffer.removeAll()
        tail = u.tail
        published = u.published
        if let d = durable, d.offset > tail.nextOffset { durable = nil }
        dirty = false
    }

    /// Records what the last fsync covered as the recovery point, if it moved. Under the
    /// lock: writers take turns with the file's two copies.
    private func advanceRecoveryPoint() throws(KappaError) {
        guard let point = durable else { return }
        durable = nil
        try recoveryPoint.refresh()
        if let current = recoveryPoint.current?.point, current.offset >= point.offset { return }
        try recoveryPoint.write(point)
    }

    // MARK: - Keeping up with other writers

    func readPublished() throws(KappaError) -> PublishedEndReader.Outcome { try Self.readPublished(endFile, into: endBuffer) }

    /// The `end` file's record. Under the lock no writer is changing it, so a record that
    /// does not check out is damaged, not torn.
    static func readPublished(_ file: File, into buffer: ByteWriter) throws(KappaError) -> PublishedEndReader.Outcome {
        buffer.removeAll()
        buffer.reserve(PublishedEnd.Layout.recordBytes)
        let got = try file.read(into: buffer.base, count: PublishedEnd.Layout.recordBytes, at: 0)
        if got == 0 { return .missing }
        guard got == PublishedEnd.Layout.recordBytes,
              let end = PublishedEnd.decode(UnsafeRawBufferPointer(start: buffer.base, count: got)) else { return .damaged }
        return .record(end)
    }

    /// Brings this writer's view of the tail up to date. Caller holds the lock. One pread
    /// and one fstat when nobody else appended; when another writer did, its published
    /// tail is adopted once the files agree with it; anything else is a recovery.
    func syncTail() throws(KappaError) {
        if !needsRecovery, case .record(let end) = try readPublished(), end.bootID == fs.bootID, end.bootID != .unknown {
            if end.tail == published, end.tail.base == tail.base, try segment.log.size() == tail.size { return }
            if try adopt(end.tail) { return }
        }
        try recoverLocked()
    }

    /// Takes `other` (another writer's published tail) as this writer's, if the files
    /// are exactly as it says. False when they are not: recovery decides then.
    private func adopt(_ other: SegmentTail) throws(KappaError) -> Bool {
        var files = segment
        if other.base != tail.base {
            guard fs.exists(SegmentFiles.logPath(directory, other.base)) else { return false }
            files = try recovery.openSegment(other.base)
        }
        guard try files.log.size() == other.size, try files.index.size() == other.indexBytes,
              try files.timeIndex.size() == other.timeIndexBytes else { return false }
        if other.base != tail.base { dirty = false }
        segment = files
        tail = other
        published = other
        return true
    }

    /// A full recovery of the tail (see the type's contract), then publishes. Caller
    /// holds the lock.
    func recoverLocked() throws(KappaError) {
        try recoveryPoint.refresh()
        let recovered = try recovery.run(recoveryPoint: recoveryPoint.current, published: try readPublished())
        tail = recovered.tail
        segment = recovered.segment
        recoveries += recovered.events
        warnings += recovered.warnings
        dirty = false
        needsRecovery = false
        if recovered.published != tail { try publish() } else { published = tail }
    }

    // MARK: - Invariants, sync, close

    /// The invariants of the type's contract, checked in debug builds (each costs an
    /// fstat). Caller holds the lock. An fstat that fails (a dead disk) is not what they
    /// check: the failure surfaces from the next real operation.
    func checkInvariants() {
        #if DEBUG
        assert(tail.isWellFormed, "\(topicPartition): malformed tail \(tail)")
        let sizes = try? (segment.log.size(), segment.index.size(), segment.timeIndex.size())  // see above
        if let (log, index, time) = sizes {
            assert(log == tail.size, "\(topicPartition): the .log is \(log) bytes, the tail says \(tail.size)")
            assert(index == tail.indexBytes, "\(topicPartition): the .index is \(index) bytes, the tail says \(tail.indexBytes)")
            assert(time == tail.timeIndexBytes, "\(topicPartition): the .timeindex is \(time) bytes, the tail says \(tail.timeIndexBytes)")
        }
        assert(inAppend || published == tail, "\(topicPartition): between appends the published end is the tail")
        #endif
    }

    /// Where the log ends now: what a transactional owner publishes after a checkpoint.
    public var endMarker: CommittedMarker {
        CommittedMarker(segmentBase: tail.base, position: FilePosition(tail.size), offset: tail.nextOffset)
    }

    /// Forces what this writer appended to stable storage and moves the recovery point.
    /// Throws an error left by an earlier acknowledged append.
    public func syncNow() throws(KappaError) {
        if let failure = deferredFailure {
            deferredFailure = nil
            throw failure
        }
        if dirty {
            try syncActiveLog()
        }
        guard durable != nil else { return }
        try lock.withExclusive { () throws(KappaError) in try advanceRecoveryPoint() }
    }

    /// Flushes per the policy (interval and always sync here). Idempotent.
    public func close() throws(KappaError) {
        if fsync != .never {
            try syncNow()
        } else if let failure = deferredFailure {
            deferredFailure = nil
            throw failure
        }
    }
}
