import KappaCore
import KappaFormat

extension TailRecovery {
    /// The state of the active segment `base`, whose log is final (cut where needed):
    /// walks its batch headers, checks every index entry against them, drops the ones
    /// that disagree (a warning: the index is a cache, the log is not damaged by it),
    /// adds entries for batches after the last good one, and rewrites only the index
    /// bytes that change.
    func deriveTail(base: Offset, start: LogPoint, trusted: SegmentTail?) throws(KappaError) -> Result {
        var warnings: [String] = []
        let segment = try openSegment(base)
        let size = try segment.log.size()
        var walk = try SegmentScanner.walkHeaders(segment.log, from: .zero, expected: base, to: size)
        var batches = walk.batches
        var gap: Range<Int64>?
        if !walk.complete {
            // Damage before the trusted point (the tail after it was checked or cut):
            // writers leave it for readers to report and append after it.
            guard start.segmentBase == base, start.position >= walk.endPosition else {
                throw KappaError(.corruptData, "batch headers stop making sense here", topicPartition: topicPartition,
                                 offset: walk.nextOffset, path: segment.log.path, position: walk.endPosition)
            }
            warnings.append("\(topicPartition.readable): the log is damaged at \(segment.log.path) position \(walk.endPosition) (offset \(walk.nextOffset)), "
                            + "before the point it is known good to; not repaired: readers report it; appending after it")
            let rest = try SegmentScanner.walkHeaders(segment.log, from: start.position, expected: start.offset, to: size)
            guard rest.complete else {
                throw KappaError(.corruptData, "batch headers stop making sense here", topicPartition: topicPartition,
                                 offset: rest.nextOffset, path: segment.log.path, position: rest.endPosition)
            }
            gap = walk.endPosition.rawValue..<start.position.rawValue
            batches += rest.batches
            walk = rest
        }
        let fromTrusted = trusted?.base == base ? trusted : nil
        var maxTimestamp = batches.reduce(Int64.min) { max($0, $1.maxTimestampMillis) }
        var firstBatchMax = batches.first.flatMap { $0.position == .zero ? $0.maxTimestampMillis : nil } ?? .min
        if gap != nil, let t = fromTrusted {
            maxTimestamp = max(maxTimestamp, t.maxTimestampMillis)
            if firstBatchMax == .min { firstBatchMax = t.firstBatchMaxTimestampMillis }
        }
        let nextOffset = walk.nextOffset
        let checker = EntryChecker(batches: batches, gap: gap, log: segment.log)

        let index = try rebuildOffsetIndex(segment.index, base: base, size: size, checker: checker, warnings: &warnings)
        let times = try rebuildTimeIndex(segment.timeIndex, base: base, nextOffset: nextOffset, segmentMax: maxTimestamp,
                                         checker: checker, warnings: &warnings)
        let tail = SegmentTail(
            base: base, size: size, nextOffset: nextOffset, indexBytes: index.bytes, timeIndexBytes: times.bytes,
            bytesSinceIndexEntry: index.last.map { size - $0.position.rawValue } ?? 0,
            maxTimestampMillis: maxTimestamp, firstBatchMaxTimestampMillis: firstBatchMax,
            lastTimeIndexMillis: times.last?.timestampMillis ?? .min, lastTimeIndexOffset: times.last?.offset)
        return Result(tail: tail, segment: segment, published: nil, warnings: warnings)
    }

    /// Answers "does this index entry agree with the log" from the header walk (and a
    /// header read for entries in a stretch the walk could not frame).
    struct EntryChecker {
        let batches: [BatchSummary]
        let gap: Range<Int64>?
        let log: File

        /// The walked batch starting at `position`, if any (binary search).
        func batch(at position: FilePosition) -> Int? {
            var lo = 0, hi = batches.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if batches[mid].position < position { lo = mid + 1 } else { hi = mid }
            }
            return lo < batches.count && batches[lo].position == position ? lo : nil
        }

        /// The walked batch with base offset `offset`, if any (binary search).
        func batch(withBase offset: Offset) -> Int? {
            var lo = 0, hi = batches.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if batches[mid].baseOffset < offset { lo = mid + 1 } else { hi = mid }
            }
            return lo < batches.count && batches[lo].baseOffset == offset ? lo : nil
        }

        /// The index of the first walked batch starting after `position` (0 for nil).
        func firstBatch(after position: FilePosition?) -> Int {
            guard let position else { return 0 }
            var lo = 0, hi = batches.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if batches[mid].position <= position { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }

        func agrees(_ entry: OffsetIndex.Entry) throws(KappaError) -> Bool {
            if let i = batch(at: entry.position) { return batches[i].baseOffset == entry.offset }
            guard let gap, gap.contains(entry.position.rawValue) else { return false }
            return try SegmentScanner.header(log, at: entry.position)?.baseOffset == entry.offset
        }
    }

    /// Keeps the entries that agree with the log, then indexes the batches after the
    /// last of them by the writer's rule (an entry per `Limits.indexIntervalBytes`, and
    /// after a stretch the walk could not frame). Entries pointing past the log belong to
    /// a cut tail and go silently; entries inside it that disagree are warned about.
    private func rebuildOffsetIndex(_ file: File, base: Offset, size: Int64, checker: EntryChecker,
                                    warnings: inout [String]) throws(KappaError) -> (bytes: Int64, last: OffsetIndex.Entry?) {
        let old = try file.readAll(limit: 64 << 20)
        var kept: [OffsetIndex.Entry] = []
        var disagreeing = 0
        for entry in OffsetIndex.decode(old, base: base, logBytes: .max) {
            if entry.position.rawValue >= size { continue }
            if try checker.agrees(entry), kept.last.map({ $0.offset < entry.offset }) ?? true { kept.append(entry) } else { disagreeing += 1 }
        }
        // Entries that disagree: rebuild the whole index from the log when the walk saw
        // all of it (else keep the ones that agree and fill in after the last).
        if disagreeing > 0 && checker.gap == nil { kept = [] }
        let batches = checker.batches
        var i = checker.firstBatch(after: kept.last?.position)
        var bytesSince = kept.last.flatMap { checker.batch(at: $0.position) }.map { Int64(batches[$0].totalBytes) } ?? 0
        while i < batches.count {
            let b = batches[i]
            let afterGap = i > 0 && batches[i - 1].position.rawValue + Int64(batches[i - 1].totalBytes) != b.position.rawValue
            if kept.isEmpty || b.position == .zero || afterGap || bytesSince >= Int64(Limits.indexIntervalBytes) {
                kept.append(.init(offset: b.baseOffset, position: b.position))
                bytesSince = 0
            }
            bytesSince += Int64(b.totalBytes)
            i += 1
        }
        let encoded = ByteWriter(capacity: max(64, kept.count * OffsetIndex.entryBytes))
        for e in kept { OffsetIndex.encode(e, base: base, into: encoded) }
        if disagreeing > 0 {
            warnings.append("\(topicPartition.readable): \(disagreeing) entr\(disagreeing == 1 ? "y" : "ies") of \(file.path) disagreed with the log; rebuilt from it")
        }
        try rewrite(file, old: old, new: encoded, entryBytes: OffsetIndex.entryBytes)
        return (Int64(encoded.count), kept.last)
    }

    /// Keeps the time entries that agree with the log: the batch they name exists, and
    /// their time is at least the largest timestamp up to that batch and at most the
    /// segment's largest.
    private func rebuildTimeIndex(_ file: File, base: Offset, nextOffset: Offset, segmentMax: Int64, checker: EntryChecker,
                                  warnings: inout [String]) throws(KappaError) -> (bytes: Int64, last: TimeIndex.Entry?) {
        let old = try file.readAll(limit: 64 << 20)
        var runningMax: [Int64] = []
        runningMax.reserveCapacity(checker.batches.count)
        for b in checker.batches { runningMax.append(max(runningMax.last ?? .min, b.maxTimestampMillis)) }
        var kept: [TimeIndex.Entry] = []
        var disagreeing = 0
        for entry in TimeIndex.decode(old, base: base, nextOffset: nil) {
            if entry.offset >= nextOffset { continue }
            let i = checker.batch(withBase: entry.offset)
            let inGap = i == nil && checker.gap != nil
            let ok = (i.map { runningMax[$0] <= entry.timestampMillis } ?? inGap) && entry.timestampMillis <= segmentMax
            if ok { kept.append(entry) } else { disagreeing += 1 }
        }
        let encoded = ByteWriter(capacity: max(64, kept.count * TimeIndex.entryBytes))
        for e in kept { TimeIndex.encode(e, base: base, into: encoded) }
        if disagreeing > 0 {
            warnings.append("\(topicPartition.readable): \(disagreeing) entr\(disagreeing == 1 ? "y" : "ies") of \(file.path) disagreed with the log; dropped")
        }
        try rewrite(file, old: old, new: encoded, entryBytes: TimeIndex.entryBytes)
        return (Int64(encoded.count), kept.last)
    }

    /// Makes `file` hold `new`, writing only from the first entry that differs.
    private func rewrite(_ file: File, old: [UInt8], new: ByteWriter, entryBytes: Int) throws(KappaError) {
        let newBytes = new.bytes
        var same = 0
        let n = min(old.count, newBytes.count)
        while same < n && old[same] == newBytes[same] { same += 1 }
        same -= same % entryBytes
        if same == newBytes.count && old.count == newBytes.count { return }
        if same < newBytes.count {
            try file.write(UnsafeRawBufferPointer(rebasing: newBytes[same...]), at: Int64(same))
        }
        if old.count > newBytes.count { try file.truncate(to: Int64(newBytes.count)) }
    }
}
