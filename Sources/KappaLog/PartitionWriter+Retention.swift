import KappaCore
import KappaFormat

extension PartitionWriter {
    /// Deletes the oldest inactive segments that retention no longer covers: by bytes,
    /// while the partition stays at or above `retentionBytes` without the segment; by age,
    /// while the segment's largest timestamp is older than `retentionMillis` by the wall
    /// clock. Only a prefix of whole segments goes, never the active one. The largest
    /// timestamp is read from the segment's batch headers, not from its time index (a
    /// cache whose damage must never delete data early); a segment whose headers do not
    /// frame is kept, with a warning. The .log is unlinked first, so a crash mid-delete
    /// leaves at worst orphan index files (removed by the next recovery); the directory is
    /// fsynced after, so deleted segments do not come back after a power loss. Readers
    /// holding a deleted segment open keep reading it. Caller holds the lock.
    func enforceRetention() throws(KappaError) {
        guard config.retentionMillis != nil || config.retentionBytes != nil else { return }
        let bases = try SegmentFiles.bases(in: directory, fileSystem: fs)
        guard bases.count > 1 else { return }
        var sizes: [Int64] = []
        for base in bases { sizes.append(try fs.openFile(SegmentFiles.logPath(directory, base), mode: .readOnly).size()) }
        var total = sizes.reduce(0, +)
        let nowMillis = clock.nowNanos() / 1_000_000
        var deleted = false
        defer {
            if deleted { deferredFailure = deferredFailure ?? syncDirectoryReportingFailure() }
        }
        for i in 0..<(bases.count - 1) {
            var expired = false
            if let limit = config.retentionBytes, total - sizes[i] >= limit { expired = true }
            if !expired, let age = config.retentionMillis,
               let maxTs = try segmentMaxTimestamp(bases[i], next: bases[i + 1]), nowMillis - maxTs > age {
                expired = true
            }
            guard expired else { return }
            try fs.remove(SegmentFiles.logPath(directory, bases[i]))
            deleted = true
            try fs.remove(SegmentFiles.indexPath(directory, bases[i]))
            try fs.remove(SegmentFiles.timeIndexPath(directory, bases[i]))
            total -= sizes[i]
        }
    }

    /// fsyncs the partition directory; the error, if any, as a value (for a `defer`).
    private func syncDirectoryReportingFailure() -> KappaError? {
        do {
            try fs.syncDirectory(directory)
            return nil
        } catch {
            return error
        }
    }

    /// A closed segment's largest timestamp, from its batch headers; nil (keep it) when
    /// they do not frame up to the next segment's base.
    func segmentMaxTimestamp(_ base: Offset, next: Offset) throws(KappaError) -> Int64? {
        let log = try fs.openFile(SegmentFiles.logPath(directory, base), mode: .readOnly)
        let walk = try SegmentScanner.walkHeaders(log, from: .zero, expected: base, to: try log.size())
        guard walk.complete, walk.nextOffset == next else {
            warnings.append("\(topicPartition.readable): \(log.path) does not frame as batches up to offset \(next) (stops at position \(walk.endPosition)); "
                            + "kept by retention, whose age it cannot tell")
            return nil
        }
        let max = walk.maxTimestampMillis
        return max == .min ? nil : max
    }

    /// Cuts the partition back to end at `offset`, which must be a batch boundary at or
    /// below the end: how a transactional owner discards output written after its last
    /// checkpoint. The recovery point is lowered first (durably) when it is past the cut,
    /// then the end is published at the cut, whole later segments are deleted, the
    /// truncation is fsynced, indexes are rebuilt and the end is published again with
    /// them. Not evidence: nothing is kept of what was cut (unless a crash interrupts it).
    public func truncate(to offset: Offset) throws(KappaError) {
        try lock.withExclusive { () throws(KappaError) in
            try syncTail()
            checkInvariants()
            let end = tail.nextOffset
            guard offset != end else { return }
            guard offset < end else {
                throw KappaError(.invalidArgument, "cannot truncate to offset \(offset): the log ends at \(end)", topicPartition: topicPartition, offset: offset)
            }
            let bases = try SegmentFiles.bases(in: directory, fileSystem: fs)
            guard let base = bases.last(where: { $0 <= offset }) else {
                throw KappaError(.invalidArgument, "offset \(offset) is below the log start", topicPartition: topicPartition, offset: offset)
            }
            let cut = try batchBoundary(offset, in: base)
            try recoveryPoint.refresh()
            if let rp = recoveryPoint.current, rp.point.offset > offset { try recoveryPoint.write(cut) }
            // Readers stop at the cut before any byte goes: a reader must never find the
            // log shorter than its published end. (A crash from here on leaves bytes past
            // the end, which the next writer cuts like any unfinished append.)
            try publish(SegmentTail(base: cut.segmentBase, size: cut.position.rawValue, nextOffset: cut.offset, indexBytes: 0,
                                    timeIndexBytes: 0, bytesSinceIndexEntry: 0, maxTimestampMillis: .min,
                                    firstBatchMaxTimestampMillis: .min, lastTimeIndexMillis: .min, lastTimeIndexOffset: nil))
            for b in bases where b > base {
                try fs.remove(SegmentFiles.logPath(directory, b))
                try fs.remove(SegmentFiles.indexPath(directory, b))
                try fs.remove(SegmentFiles.timeIndexPath(directory, b))
            }
            let log = try fs.openFile(SegmentFiles.logPath(directory, base), mode: .readWrite)
            try log.truncate(to: cut.position.rawValue)
            try log.sync()
            if bases.last != base { try fs.syncDirectory(directory) }
            let r = try recovery.deriveTail(base: base, start: cut, trusted: nil)
            tail = r.tail
            segment = r.segment
            warnings += r.warnings
            dirty = false
            durable = nil
            try publish()
            checkInvariants()
        }
    }

    /// Where the batch with base offset `offset` starts in segment `base` (or the
    /// segment's end, when `offset` is where it ends).
    private func batchBoundary(_ offset: Offset, in base: Offset) throws(KappaError) -> LogPoint {
        let log = try fs.openFile(SegmentFiles.logPath(directory, base), mode: .readOnly)
        let walk = try SegmentScanner.walkHeaders(log, from: .zero, expected: base, to: try log.size())
        if let b = walk.batches.first(where: { $0.baseOffset == offset }) {
            return LogPoint(segmentBase: base, position: b.position, offset: offset)
        }
        if walk.nextOffset == offset, walk.complete {
            return LogPoint(segmentBase: base, position: walk.endPosition, offset: offset)
        }
        throw KappaError(.corruptData, "offset \(offset) is not a batch boundary (batch headers frame up to offset \(walk.nextOffset))",
                         topicPartition: topicPartition, offset: offset, path: log.path, position: walk.endPosition)
    }
}
