import KappaCore
import KappaFormat

/// What a writer does, under the partition lock, to find the end of the log and the
/// state of its active segment when it cannot simply continue from the published end
/// (see `PartitionWriter`'s contract): on open, after another writer died mid-append,
/// after a restart of the machine. Makes the files consistent (cuts torn tails into
/// evidence files, rebuilds index entries that disagree with the log) and returns the
/// tail to continue from. A value type over the writer's file system; not thread-safe.
struct TailRecovery {
    let fs: any FileSystem
    let directory: String
    let topicPartition: TopicPartition
    let codec: LZ4Codec
    let scratch: ByteWriter

    struct Result {
        var tail: SegmentTail
        var segment: PartitionWriter.OpenSegment
        /// The published end, when it was trusted (nil: it must be written).
        var published: SegmentTail?
        var events: [RecoveryEvent] = []
        var warnings: [String] = []
    }

    func run(recoveryPoint rp: RecoveryPoint?, published outcome: PublishedEndReader.Outcome) throws(KappaError) -> Result {
        var bases = try SegmentFiles.bases(in: directory, fileSystem: fs)
        try removeOrphanIndexes(bases: bases)
        guard !bases.isEmpty else {
            return Result(tail: .empty(base: .zero), segment: try createSegment(.zero), published: nil)
        }
        var events: [RecoveryEvent] = []
        var warnings: [String] = []
        let trusted = try trustedEnd(outcome, bases: bases, recoveryPoint: rp, warnings: &warnings)
        let start: LogPoint
        if let e = trusted {
            start = e.end
            events += try cutPastPublished(e, bases: bases)
        } else {
            start = try recoveryStart(rp, bases: bases)
            let scan = TailScan(fs: fs, directory: directory, topicPartition: topicPartition, codec: codec, scratch: scratch)
            if case .torn(let at, let reason) = try scan.run(bases: bases, from: start) {
                let log = try fs.openFile(SegmentFiles.logPath(directory, at.segmentBase), mode: .readWrite)
                events.append(try cut(log, at: at, reason: reason))
            }
        }
        bases = try SegmentFiles.bases(in: directory, fileSystem: fs)
        var result = try deriveTail(base: bases[bases.count - 1], start: start, trusted: trusted)
        result.published = trusted
        result.events = events
        result.warnings = warnings + result.warnings
        return result
    }

    // MARK: - Where to start

    /// The published end, if it can be trusted: written in this boot, naming a segment
    /// that exists and holds at least that many bytes, at or past the recovery point.
    private func trustedEnd(_ outcome: PublishedEndReader.Outcome, bases: [Offset], recoveryPoint rp: RecoveryPoint?,
                            warnings: inout [String]) throws(KappaError) -> SegmentTail? {
        guard case .record(let e) = outcome, e.bootID == fs.bootID, e.bootID != .unknown, bases.contains(e.tail.base) else { return nil }
        // The recovery point is durable ground truth: an end behind it — a lower offset,
        // an earlier segment (whose cut would move the point's own segment aside), or an
        // earlier position in the point's segment (a cut below the point) — is not this
        // log's end.
        if let rp, e.tail.nextOffset < rp.point.offset || e.tail.base < rp.point.segmentBase
            || (e.tail.base == rp.point.segmentBase && e.tail.size < rp.point.position.rawValue) { return nil }
        let size = try fs.openFile(SegmentFiles.logPath(directory, e.tail.base), mode: .readOnly).size()
        guard size >= e.tail.size else {
            warnings.append("\(topicPartition.readable): \(SegmentFiles.logPath(directory, e.tail.base)) is \(size) bytes, shorter than the \(e.tail.size) "
                            + "published in this boot (offsets up to \(e.tail.nextOffset)); something outside Kappa cut it; checking from the recovery point")
            return nil
        }
        return e.tail
    }

    /// The recovery point, checked against the files; the start of the last segment when
    /// there is none (a partition written before recovery points existed).
    private func recoveryStart(_ rp: RecoveryPoint?, bases: [Offset]) throws(KappaError) -> LogPoint {
        guard let point = rp?.point else { return .start(of: bases[bases.count - 1]) }
        // Retention deleted the segment it names (it runs before the point moves on).
        if point.segmentBase < bases[0] { return .start(of: bases[0]) }
        guard bases.contains(point.segmentBase) else {
            throw KappaError(.corruptData, "the recovery point names segment \(SegmentFiles.name(point.segmentBase)), which is missing",
                             topicPartition: topicPartition, offset: point.offset, path: RecoveryPoint.path(directory))
        }
        let path = SegmentFiles.logPath(directory, point.segmentBase)
        let size = try fs.openFile(path, mode: .readOnly).size()
        guard size >= point.position.rawValue else {
            throw KappaError(.corruptData, "the log is \(size) bytes, shorter than its recovery point: data known durable is missing",
                             topicPartition: topicPartition, offset: point.offset, path: path, position: point.position)
        }
        return point
    }

    // MARK: - Cutting

    /// Within the boot that published `e`, bytes after it are an append that never
    /// finished (its writer died or failed to undo): cut them, and move aside segments
    /// its rolls created.
    private func cutPastPublished(_ e: SegmentTail, bases: [Offset]) throws(KappaError) -> [RecoveryEvent] {
        var events: [RecoveryEvent] = []
        for base in bases.reversed() where base > e.base {
            events.append(try moveAside(base, reason: "a segment created by an append that did not finish"))
        }
        let log = try fs.openFile(SegmentFiles.logPath(directory, e.base), mode: .readWrite)
        let size = try log.size()
        if size > e.size {
            events.append(try cut(log, at: e.end, reason: "\(size - e.size) bytes past the published end: an append that did not finish"))
        }
        return events
    }

    /// Copies `log`'s bytes from `at` to its end into a new evidence file (fsynced, its
    /// name durable), then truncates the log there and fsyncs it.
    func cut(_ log: File, at: LogPoint, reason: String) throws(KappaError) -> RecoveryEvent {
        let size = try log.size()
        let evidencePath = try freeTornPath(at.segmentBase, at.offset)
        let evidence = try fs.openFile(evidencePath, mode: .createNew)
        let chunk = 1 << 20
        var position = at.position.rawValue
        let buffer = ByteWriter(capacity: chunk)
        while position < size {
            let n = try log.read(into: buffer.base, count: Int(min(Int64(chunk), size - position)), at: position)
            guard n > 0 else { break }
            try evidence.write(UnsafeRawBufferPointer(start: buffer.base, count: n), at: position - at.position.rawValue)
            position += Int64(n)
        }
        try evidence.sync()
        try fs.syncDirectory(directory)
        try log.truncate(to: at.position.rawValue)
        try log.sync()
        return RecoveryEvent(topicPartition: topicPartition, offset: at.offset, position: at.position, bytesDropped: size - at.position.rawValue,
                             reason: reason, path: log.path, evidencePath: evidencePath)
    }

    /// Renames a whole segment's .log to an evidence name and deletes its indexes.
    private func moveAside(_ base: Offset, reason: String) throws(KappaError) -> RecoveryEvent {
        let path = SegmentFiles.logPath(directory, base)
        let size = try fs.openFile(path, mode: .readOnly).size()
        let evidencePath = try freeTornPath(base, base)
        try fs.rename(path, to: evidencePath)
        try fs.remove(SegmentFiles.indexPath(directory, base))
        try fs.remove(SegmentFiles.timeIndexPath(directory, base))
        try fs.syncDirectory(directory)
        return RecoveryEvent(topicPartition: topicPartition, offset: base, position: .zero, bytesDropped: size, reason: reason,
                             path: path, evidencePath: evidencePath)
    }

    /// `<base>.log.torn-<offset>`, or with `-2`, `-3`… when that evidence exists already.
    private func freeTornPath(_ base: Offset, _ offset: Offset) throws(KappaError) -> String {
        let plain = SegmentFiles.tornPath(directory, base, offset)
        var candidate = plain
        var n = 2
        while fs.exists(candidate) {
            candidate = plain + "-\(n)"
            n += 1
        }
        return candidate
    }

    /// Index files whose .log is gone (a crash between the deletes of retention or of an
    /// undone roll): caches of nothing.
    private func removeOrphanIndexes(bases: [Offset]) throws(KappaError) {
        let live = Set(bases.map { SegmentFiles.name($0) })
        for name in try fs.list(directory) where name.hasSuffix(SegmentFiles.indexSuffix) || name.hasSuffix(SegmentFiles.timeIndexSuffix) {
            let stem = String(name.prefix { $0 != "." })
            if stem.count == 20, !live.contains(stem) { try fs.remove(directory + "/" + name) }
        }
    }

    // MARK: - Segment files

    func createSegment(_ base: Offset) throws(KappaError) -> PartitionWriter.OpenSegment {
        let log = try fs.openFile(SegmentFiles.logPath(directory, base), mode: .createNew)
        let index = try fs.openFile(SegmentFiles.indexPath(directory, base), mode: .readWriteCreate)
        let timeIndex = try fs.openFile(SegmentFiles.timeIndexPath(directory, base), mode: .readWriteCreate)
        try index.truncate(to: 0)
        try timeIndex.truncate(to: 0)
        try fs.syncDirectory(directory)
        return PartitionWriter.OpenSegment(log: log, index: index, timeIndex: timeIndex)
    }

    func openSegment(_ base: Offset) throws(KappaError) -> PartitionWriter.OpenSegment {
        PartitionWriter.OpenSegment(log: try fs.openFile(SegmentFiles.logPath(directory, base), mode: .readWrite),
                                    index: try fs.openFile(SegmentFiles.indexPath(directory, base), mode: .readWriteCreate),
                                    timeIndex: try fs.openFile(SegmentFiles.timeIndexPath(directory, base), mode: .readWriteCreate))
    }
}
