import KappaCore
import KappaFormat

/// One record as a test produced it and expects to read it back.
public struct ReferenceRecord: Equatable, Sendable, CustomStringConvertible {
    /// nil is a null key.
    public var key: [UInt8]?
    public var value: [UInt8]
    public var timestamp: TimestampNanos
    /// User headers, in order (not the `kappa.ns` header the format adds).
    public var headers: [RecordHeader]

    public init(key: [UInt8]?, value: [UInt8], timestamp: TimestampNanos, headers: [RecordHeader] = []) {
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers = headers
    }

    public var description: String {
        let k = key.map { "\($0.count)B" } ?? "null"
        return "Record(key: \(k), value: \(value.count)B, time: \(timestamp.rawValue)ns, headers: \(headers.count))"
    }
}

/// An in-memory model of a partitioned log: what a Kappa partition must look like from
/// outside, with none of the files.
///
/// What it models exactly (the contract every real log is checked against):
/// - offsets are dense per partition, start at 0, and are given in append order;
/// - a read returns exactly the records appended, in order, from the requested offset
///   (or from the start offset when the request is below it) to the end;
/// - the start offset only moves forward, never past the end, and a deleted prefix
///   never reappears.
/// What it does not model: *which* prefix retention deletes (whole segments, whose
/// boundaries depend on byte sizes). The test observes the real start offset and moves
/// the model's with `advanceStart`, which refuses any move a real log must never make.
///
/// A value type, not thread-safe; copy it to snapshot.
public struct ReferenceLog: Sendable {
    public struct Partition: Sendable {
        public fileprivate(set) var startOffset: Offset = .zero
        /// Records at offsets `startOffset ..< endOffset`.
        public fileprivate(set) var records: [ReferenceRecord] = []
        public var endOffset: Offset { startOffset + Int64(records.count) }
    }

    /// A move of the start offset that no log may make.
    public enum Violation: Error, Equatable, Sendable, CustomStringConvertible {
        case startMovedBackward(partition: Int, from: Offset, to: Offset)
        case startBeyondEnd(partition: Int, start: Offset, end: Offset)

        public var description: String {
            switch self {
            case let .startMovedBackward(p, from, to): "partition \(p): start offset moved backward from \(from) to \(to)"
            case let .startBeyondEnd(p, start, end): "partition \(p): start offset \(start) is beyond the end \(end)"
            }
        }
    }

    public private(set) var partitions: [Partition]

    public init(partitions: Int) {
        precondition(partitions > 0)
        self.partitions = Array(repeating: Partition(), count: partitions)
    }

    /// Appends `records` to `partition`; returns the offsets they got (nil when empty).
    @discardableResult
    public mutating func append(_ records: [ReferenceRecord], partition: Int) -> ClosedRange<Offset>? {
        guard !records.isEmpty else { return nil }
        let first = partitions[partition].endOffset
        partitions[partition].records.append(contentsOf: records)
        return first...(first + Int64(records.count - 1))
    }

    public func startOffset(_ partition: Int) -> Offset { partitions[partition].startOffset }
    public func endOffset(_ partition: Int) -> Offset { partitions[partition].endOffset }

    /// The record at `offset`, or nil when it is deleted or not yet written.
    public func record(_ partition: Int, at offset: Offset) -> ReferenceRecord? {
        let p = partitions[partition]
        guard offset >= p.startOffset, offset < p.endOffset else { return nil }
        return p.records[Int(offset - p.startOffset)]
    }

    /// Records from `offset` (clamped to the start offset) to the end, with their offsets.
    public func read(_ partition: Int, from offset: Offset) -> [(offset: Offset, record: ReferenceRecord)] {
        let p = partitions[partition]
        let from = max(offset, p.startOffset)
        guard from < p.endOffset else { return [] }
        var out: [(offset: Offset, record: ReferenceRecord)] = []
        out.reserveCapacity(Int(p.endOffset - from))
        for i in Int(from - p.startOffset)..<p.records.count {
            out.append((p.startOffset + Int64(i), p.records[i]))
        }
        return out
    }

    /// Moves `partition`'s start offset to `offset` (a no-op when equal), dropping the
    /// records below it for good; returns them. Throws, leaving the model unchanged, for
    /// a move backward or past the end.
    @discardableResult
    public mutating func advanceStart(_ partition: Int, to offset: Offset) throws(Violation) -> [(offset: Offset, record: ReferenceRecord)] {
        let p = partitions[partition]
        guard offset >= p.startOffset else { throw .startMovedBackward(partition: partition, from: p.startOffset, to: offset) }
        guard offset <= p.endOffset else { throw .startBeyondEnd(partition: partition, start: offset, end: p.endOffset) }
        let dropCount = Int(offset - p.startOffset)
        var dropped: [(offset: Offset, record: ReferenceRecord)] = []
        for i in 0..<dropCount { dropped.append((p.startOffset + Int64(i), p.records[i])) }
        partitions[partition].records.removeFirst(dropCount)
        partitions[partition].startOffset = offset
        return dropped
    }
}
