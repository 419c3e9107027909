import FuzzSupport
import KappaCore
@testable import KappaFormat
@testable import KappaLog

// The reference model of fuzz-segment: what a partition's files hold, batch by batch, and
// what readers and writers must make of them (README "Guarantees"). Written from the
// contract, in the plainest way: whole-file byte arrays, one walk per question.

nonisolated(unsafe) let modelCodec = LZ4Codec()
nonisolated(unsafe) let modelScratch = ByteWriter(capacity: 1 << 16)

/// One batch the model framed in a segment file.
struct RefBatch: Equatable, CustomStringConvertible {
    var segment: Int
    var position: Int
    var length: Int
    var baseOffset: Int64
    var nextOffset: Int64
    var maxTimestampMillis: Int64
    /// The stored CRC-32C matches.
    var crcOK: Bool
    /// Every record decodes (checked only when the CRC matches).
    var recordsOK: Bool

    var end: Int { position + length }
    /// What a writer's recovery accepts: CRC and every record.
    var valid: Bool { crcOK && recordsOK }
    var description: String { "batch \(baseOffset)..<\(nextOffset) at \(segment):\(position)+\(length)\(crcOK ? "" : " bad CRC")\(recordsOK ? "" : " bad records")" }
}

/// Where a walk over a segment stopped, and why.
enum WalkStop: Equatable {
    /// At the end of the file (or of the range walked), after a whole batch.
    case end
    /// The bytes from here are not a batch start (length, magic) or end inside one.
    case unframed
    /// A batch frames but does not continue the offsets.
    case offsetGap
}

/// Frames batches from `position`, each continuing the offsets from `expected`, until
/// the file ends or a batch does not frame or continue (every batch is checked, not cut
/// short at the first bad CRC: callers decide what a bad batch means to them).
func walk(_ bytes: [UInt8], segment: Int, from position: Int, expected: Int64) -> (batches: [RefBatch], stop: WalkStop, end: Int) {
    var out: [RefBatch] = []
    var at = position
    var next = expected
    while at < bytes.count {
        let framed: RecordBatchHeader? = bytes.withUnsafeBytes { raw in
            guard case .batch(let h)? = try? RecordBatchFramer.frame(UnsafeRawBufferPointer(rebasing: raw[at...])) else { return nil }  // nil: does not frame
            return h
        }
        guard let h = framed else { return (out, .unframed, at) }
        guard h.baseOffset.rawValue == next else { return (out, .offsetGap, at) }
        let (crcOK, recordsOK) = bytes.withUnsafeBytes { raw -> (Bool, Bool) in
            let batch = UnsafeRawBufferPointer(rebasing: raw[at..<(at + h.totalBytes)])
            guard RecordBatchFramer.crcMatches(batch) else { return (false, false) }
            return (true, (try? RecordBatchFramer.validate(batch, header: h, codec: modelCodec, scratch: modelScratch)) != nil)  // the verdict is the value
        }
        out.append(RefBatch(segment: segment, position: at, length: h.totalBytes, baseOffset: h.baseOffset.rawValue,
                            nextOffset: h.nextOffset.rawValue, maxTimestampMillis: h.maxTimestampMillis, crcOK: crcOK, recordsOK: recordsOK))
        next = h.nextOffset.rawValue
        at += h.totalBytes
    }
    return (out, .end, at)
}

/// A partition's files as the model holds them.
struct RefPartition {
    var bases: [Int64]
    var logs: [[UInt8]]
    /// Each segment walked from its start, expecting its base offset.
    var walks: [(batches: [RefBatch], stop: WalkStop, end: Int)]

    init(bases: [Int64], logs: [[UInt8]]) {
        precondition(bases.count == logs.count && bases == bases.sorted())
        self.bases = bases
        self.logs = logs
        walks = logs.indices.map { walk(logs[$0], segment: $0, from: 0, expected: bases[$0]) }
    }

    var last: Int { logs.count - 1 }

    func segment(withBase base: Int64) -> Int? { bases.firstIndex(of: base) }
}

/// A point in the log: segment index, byte position, offset.
struct RefPoint: Equatable, CustomStringConvertible {
    var segment: Int
    var position: Int
    var offset: Int64
    var description: String { "\(segment):\(position)@\(offset)" }
}

/// What `TailScan` answers: the end of the log that checks out from `start`, and
/// whether it stops early in the last segment (a torn tail). nil: corruption.
func tailScan(_ p: RefPartition, from start: RefPoint) -> (end: RefPoint, torn: Bool)? {
    var point = start
    for i in start.segment..<p.logs.count {
        if i > start.segment {
            guard p.bases[i] == point.offset else { return nil }  // a hole between segments
            point = RefPoint(segment: i, position: 0, offset: p.bases[i])
        }
        guard p.logs[i].count >= point.position else { return nil }  // shorter than the recovery point
        if i == start.segment && start.position > 0 {
            // The batches before the start must reach it at its offset, if they frame.
            let before = walkHeaders(Array(p.logs[i].prefix(start.position)), from: 0, expected: p.bases[i])
            guard !before.complete || before.nextOffset == start.offset else { return nil }
        }
        let w = walk(p.logs[i], segment: i, from: point.position, expected: point.offset)
        var end = RefPoint(segment: i, position: point.position, offset: point.offset)
        var clean = true
        for b in w.batches {
            guard b.valid else { clean = false; break }
            end = RefPoint(segment: i, position: b.end, offset: b.nextOffset)
        }
        if clean && !(w.stop == .end && w.end == p.logs[i].count) { clean = false }
        if !clean {
            guard i == p.last else { return nil }  // a bad batch in a segment that has a later one
            return (end, true)
        }
        point = end
    }
    return (point, false)
}

/// What a reader hands out, in order, before it stops.
enum ReadEvent: Equatable, CustomStringConvertible {
    /// A batch whose records all decoded (segment, position, bytes' length, base offset).
    case batch(segment: Int, position: Int, length: Int, baseOffset: Int64)
    /// The reader caught up with the visible end.
    case caughtUp
    /// The reader refused (corruption) — or a returned batch's records did not decode.
    case refused

    var description: String {
        switch self {
        case let .batch(s, p, l, o): "batch@\(o) \(s):\(p)+\(l)"
        case .caughtUp: "caught up"
        case .refused: "refused"
        }
    }
}

/// What a reader reading from the start must hand out when it may read up to `end`
/// (nil: the visible end itself is corruption): every batch before it, checked (frame,
/// offsets, CRC), then caught up; refused at the first batch that does not check out, or
/// whose records do not decode (the caller decodes them).
func expectedRead(_ p: RefPartition, visibleEnd end: RefPoint?) -> [ReadEvent] {
    guard let end else { return [.refused] }
    var events: [ReadEvent] = []
    var expected = p.bases[0]
    for i in 0...min(end.segment, p.last) {
        guard p.bases[i] == expected || i == 0 else { return events + [.refused] }
        let visible = i < end.segment ? p.logs[i].count : end.position
        guard visible <= p.logs[i].count else {
            // The end lies past the file: the reader finds the file short once it gets there.
            // (Refused once: at a batch that does not check out before it, else there.)
            let part = readUpTo(p, i, p.logs[i].count, expected: &expected)
            return events + part + (part.last == .refused ? [] : [.refused])
        }
        let part = readUpTo(p, i, visible, expected: &expected)
        events += part
        if part.last == .refused { return events }
    }
    return events + [.caughtUp]
}

/// The batches of segment `i` from its start up to byte `visible`, as a reader checks
/// them; `.refused` last when one does not check out or does not end exactly there.
private func readUpTo(_ p: RefPartition, _ i: Int, _ visible: Int, expected: inout Int64) -> [ReadEvent] {
    var events: [ReadEvent] = []
    var at = 0
    for b in p.walks[i].batches {
        guard b.position < visible else { break }
        guard b.end <= visible, b.crcOK else { return events + [.refused] }
        events.append(.batch(segment: i, position: b.position, length: b.length, baseOffset: b.baseOffset))
        guard b.recordsOK else { return events + [.refused] }
        at = b.end
        expected = b.nextOffset
    }
    return at == visible ? events : events + [.refused]
}
