import KappaCore
import KappaFormat

extension PartitionReader {
    /// A record found by its timestamp: its offset and its timestamp in milliseconds.
    public struct TimestampMatch: Equatable, Sendable {
        public var offset: Offset
        public var timestampMillis: Int64
    }

    /// The first record, in offset order, whose timestamp is at or after `millis` (Kafka's
    /// ListOffsets by time): record timestamps need not grow with offsets, so the answer
    /// is per record, not per batch. nil when no record is that late.
    ///
    /// Like Kafka it trusts each closed segment's time index for where to start: the last
    /// entry of a closed segment holds its largest timestamp (a segment entirely earlier
    /// is skipped unread), and within the first segment that may hold a match the scan
    /// starts at the batch of the entry before the first entry that reaches `millis`.
    /// From there, batches whose largest timestamp is earlier are skipped without
    /// decoding; the first batch that may match is decoded. Every batch read is checked
    /// as `nextBatch` checks it. Moves the reader.
    public func firstRecord(atOrAfterMillis millis: Int64, codec: LZ4Codec, scratch: ByteWriter) throws(KappaError) -> TimestampMatch? {
        let bases = try SegmentFiles.bases(in: directory, fileSystem: fs)
        guard !bases.isEmpty else { return nil }
        var from = bases.last!
        for (i, base) in bases.enumerated() {
            // Indexes are caches: one that does not load only costs a longer scan.
            let entries = (try? TimeIndex.load(path: SegmentFiles.timeIndexPath(directory, base), base: base,
                                               nextOffset: i + 1 < bases.count ? bases[i + 1] : nil, fileSystem: fs)) ?? []
            let closed = i + 1 < bases.count
            if closed, let last = entries.last, last.timestampMillis < millis { continue }
            from = TimeIndex.scanStart(entries, atOrAfter: millis, base: base)
            break
        }
        if case .belowStart = try seek(to: from) { return nil }
        while var records = try nextRecords(from: .zero, codec: codec, scratch: scratch) {
            guard records.header.maxTimestampMillis >= millis else { continue }
            while let r = try records.next() {
                if r.timestamp.millis >= millis { return TimestampMatch(offset: r.offset, timestampMillis: r.timestamp.millis) }
            }
        }
        return nil
    }
}
