import KappaCore
import KappaFormat

extension PartitionWriter {
    /// Deletes the oldest inactive segments that retention no longer covers: by bytes,
    /// while the partition stays at or above `retentionBytes` without the segment; by age,
    /// while the segment's largest timestamp is older than `retentionMillis` by the wall
    /// clock. Only a prefix of whole segments goes, never the active one. The .log is
    /// unlinked first, so a crash mid-delete leaves at worst orphan index files, which
    /// are ignored. Readers holding a deleted segment open keep reading it. Caller holds
    /// the lock.
    func enforceRetention() throws(KappaError) {
        guard config.retentionMillis != nil || config.retentionBytes != nil else { return }
        let bases = try SegmentFiles.bases(in: directory)
        guard bases.count > 1 else { return }
        var sizes: [Int64] = []
        for base in bases { sizes.append(try File(path: SegmentFiles.logPath(directory, base), mode: .readOnly).size()) }
        var total = sizes.reduce(0, +)
        let nowMillis = clock.nowNanos() / 1_000_000
        for i in 0..<(bases.count - 1) {
            var expired = false
            if let limit = config.retentionBytes, total - sizes[i] >= limit { expired = true }
            if !expired, let age = config.retentionMillis,
               let maxTs = try segmentMaxTimestamp(bases[i], next: bases[i + 1]), nowMillis - maxTs > age {
                expired = true
            }
            guard expired else { return }
            try FS.remove(SegmentFiles.logPath(directory, bases[i]))
            try FS.remove(SegmentFiles.indexPath(directory, bases[i]))
            try FS.remove(SegmentFiles.timeIndexPath(directory, bases[i]))
            total -= sizes[i]
        }
    }

    /// A closed segment's largest timestamp: its time index's last entry, written at
    /// roll; a scan of the segment when that index is missing.
    func segmentMaxTimestamp(_ base: Offset, next: Offset) throws(KappaError) -> Int64? {
        if let last = TimeIndex.load(path: SegmentFiles.timeIndexPath(directory, base), base: base, nextOffset: next).last {
            return last.timestampMillis
        }
        let log = try File(path: SegmentFiles.logPath(directory, base), mode: .readOnly)
        let scanner = SegmentScanner(file: log, codec: codec, scratch: scratch, validateRecords: false)
        let r = try scanner.scan(from: .zero, expected: base, fileBytes: try log.size(), keepBatches: false)
        return r.maxTimestampMillis == .min ? nil : r.maxTimestampMillis
    }
}
