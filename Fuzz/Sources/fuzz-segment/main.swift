// fuzz-segment: segment scan and tail recovery (KappaLog: SegmentScanner, TailScan,
// TailRecovery, and the PartitionReader / PartitionWriter that run them), on fuzzed
// partition files in a SimulatedFileSystem: up to three .log segments, the last one's
// .index and .timeindex, a recovery point and a published end (`SegmentCase`).
//
// Each input: (1) a reader reads the partition from the start before any writer opened
// it; (2) a writer opens it (recovery: cut a torn tail, rebuild indexes, or refuse
// corruption); (3) a reader reads again; optionally (4) the writer appends a batch, a
// reader reads it back, and a second writer opens the partition; optionally (5) a reader
// seeks to an offset and reads from there.
//
// Invariants, always (whatever the files say):
// - no crash, no assertion of the code under test (debug build), no out-of-bounds read;
// - a reader returns only batches that lie in the file exactly where it says, that frame,
//   continue the offsets and match their CRC; it stops by catching up or refusing with a
//   corruption error, never otherwise;
// - a writer's recovery never changes a byte before the recovery point (nor any segment
//   before the recovery point's), and keeps every byte it cuts in its evidence file.
// And when the recovery point and the published end agree with the log (the only kind
// Kappa writes), the model (Model.swift) predicts exactly what readers hand out, whether
// the writer opens or refuses, and where it cuts.
import FuzzSupport
import KappaCore
@testable import KappaFormat
@testable import KappaLog
import KappaTesting

let tp = TopicPartition("t", 0)
let dataRoot = "/kappa"
let dir = dataRoot + "/topics/t/0"
let otherBoot: UInt64 = 0x0BAD_B007

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSegment(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var input = FuzzInput(UnsafeRawBufferPointer(start: data, count: size))
    let c = SegmentCase(&input)
    let p = buildLogs(c)
    let fs = SimulatedFileSystem(seed: 1)
    fs.recordsSteps = false
    let directory = DataDirectory(root: dataRoot, fileSystem: fs)
    do {
        try directory.createTopic("t", config: TopicConfig(partitions: 1, compression: .none))
    } catch {
        fatalError("making the topic: \(error)")
    }
    let points = writeFiles(c, p, fs)
    checkReader(directory, fs, p, visibleEnd: points.readerEnd, when: "before any writer")
    openWriter(c, p, points, directory, fs)
    if c.has(SegmentCase.Flag.seek) { checkSeek(directory, fs, to: Int64(c.firstBase) + Int64(c.seek)) }
    return 0
}

// MARK: - Files

/// The segments' bytes as the case asks (offsets and CRCs fixed where flagged), and
/// their base offsets: each where the previous one's framed batches end.
func buildLogs(_ c: SegmentCase) -> RefPartition {
    var bases: [Int64] = []
    var logs: [[UInt8]] = []
    for (i, segment) in c.segments.enumerated() {
        var bytes = segment
        let base = i == 0 ? Int64(c.firstBase) : max(walk(logs[i - 1], segment: i - 1, from: 0, expected: bases[i - 1]).batches.last?.nextOffset ?? bases[i - 1], bases[i - 1] + 1)
        repair(&bytes, base: base, offsets: c.has(SegmentCase.Flag.fixOffsets), crcs: c.has(SegmentCase.Flag.fixCRCs))
        bases.append(base)
        logs.append(bytes)
    }
    return RefPartition(bases: bases, logs: logs)
}

/// Rewrites each framed batch's base offset to continue the previous one and/or its CRC
/// to match its bytes, as far as batches frame.
func repair(_ bytes: inout [UInt8], base: Int64, offsets: Bool, crcs: Bool) {
    guard offsets || crcs else { return }
    var at = 0
    var next = base
    while at < bytes.count {
        let framed: RecordBatchHeader? = bytes.withUnsafeBytes { raw in
            guard case .batch(let h)? = try? RecordBatchFramer.frame(UnsafeRawBufferPointer(rebasing: raw[at...])) else { return nil }  // nil: stop here
            return h
        }
        guard let h = framed else { return }
        if offsets {
            put(next, at: at + RecordBatchLayout.baseOffsetOffset, in: &bytes)
            next += Int64(h.lastOffsetDelta) + 1  // stays far from overflow: at most 2^31 per batch
        }
        if crcs {
            let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(at + RecordBatchLayout.attributesOffset)..<(at + h.totalBytes)])) }
            put(crc, at: at + RecordBatchLayout.crcOffset, in: &bytes)
        }
        at += h.totalBytes
    }
}

func put<T: FixedWidthInteger>(_ v: T, at position: Int, in bytes: inout [UInt8]) {
    withUnsafeBytes(of: v.bigEndian) { for (k, b) in $0.enumerated() { bytes[position + k] = b } }
}

/// The point a spec names in the model's files.
func resolve(_ spec: SegmentCase.PointSpec, _ p: RefPartition) -> (point: RefPoint, agrees: Bool) {
    let s = Int(spec.segment) % p.logs.count
    let batches = p.walks[s].batches
    var point: RefPoint
    if spec.boundary == SegmentCase.PointSpec.rawBoundary {
        point = RefPoint(segment: s, position: spec.rawPosition, offset: p.bases[s])
    } else {
        let k = min(Int(spec.boundary), batches.count)
        point = k == 0 ? RefPoint(segment: s, position: 0, offset: p.bases[s])
                       : RefPoint(segment: s, position: batches[k - 1].end, offset: batches[k - 1].nextOffset)
    }
    point.offset = max(p.bases[s], point.offset + Int64(spec.offsetSkew))  // a log point lies inside its segment
    let agrees = spec.boundary != SegmentCase.PointSpec.rawBoundary && spec.offsetSkew == 0
    return (point, agrees)
}

struct Points {
    /// The recovery point the file names (nil: no valid copy).
    var recoveryPoint: RefPoint?
    var recoveryPointAgrees: Bool
    /// The published end the file names, if any, and whether it was written in this boot.
    var published: RefPoint?
    var publishedThisBoot: Bool
    var publishedAgrees: Bool
    /// Where a reader may read to before any writer opened the partition (nil: refused).
    var readerEnd: RefPoint?
}

/// Writes the case's files into the partition directory; returns what they name.
func writeFiles(_ c: SegmentCase, _ p: RefPartition, _ fs: SimulatedFileSystem) -> Points {
    for (i, log) in p.logs.enumerated() { create(SegmentFiles.logPath(dir, Offset(p.bases[i])), log, fs) }
    if c.has(SegmentCase.Flag.indexes) {
        create(SegmentFiles.indexPath(dir, Offset(p.bases[p.last])), c.index, fs)
        create(SegmentFiles.timeIndexPath(dir, Offset(p.bases[p.last])), c.timeIndex, fs)
    }
    var points = Points(recoveryPointAgrees: false, publishedThisBoot: c.has(SegmentCase.Flag.thisBoot), publishedAgrees: false)
    if c.has(SegmentCase.Flag.recoveryPoint) {
        let (point, agrees) = resolve(c.recoveryPoint, p)
        let rp = RecoveryPoint(point: logPoint(point, p), sequence: 1)
        var file = [UInt8](repeating: 0, count: RecoveryPoint.Layout.fileBytes)
        file.replaceSubrange(RecoveryPoint.Layout.slotStride..<(RecoveryPoint.Layout.slotStride + RecoveryPoint.Layout.slotBytes), with: rp.encoded())
        overwrite(RecoveryPoint.path(dir), file, fs)
        // A copy that is not well-formed is no recovery point (RecoveryPoint.decode).
        if (point.position == 0) == (point.offset == p.bases[point.segment]) {
            points.recoveryPoint = point
            points.recoveryPointAgrees = agrees
        }
    }
    if c.has(SegmentCase.Flag.publishedEnd) {
        let (point, agrees) = resolve(c.publishedEnd, p)
        let boot = points.publishedThisBoot ? fs.bootID : BootID(high: fs.bootID.high, low: otherBoot)
        let tail = segmentTail(point, p, c)
        let w = ByteWriter(capacity: PublishedEnd.Layout.recordBytes)
        PublishedEnd(bootID: boot, tail: tail).encode(into: w)
        create(PublishedEnd.path(dir), Array(w.bytes), fs)
        if tail.isWellFormed {
            points.published = point
            points.publishedAgrees = agrees
        }
    }
    if let end = points.published, points.publishedThisBoot {
        points.readerEnd = end
    } else {
        let start = points.recoveryPoint ?? RefPoint(segment: p.last, position: 0, offset: p.bases[p.last])
        points.readerEnd = tailScan(p, from: start)?.end
    }
    return points
}

func logPoint(_ point: RefPoint, _ p: RefPartition) -> LogPoint {
    LogPoint(segmentBase: Offset(p.bases[point.segment]), position: FilePosition(Int64(point.position)), offset: Offset(point.offset))
}

/// The tail a writer would have published at `point`: index sizes as the files have them.
func segmentTail(_ point: RefPoint, _ p: RefPartition, _ c: SegmentCase) -> SegmentTail {
    let indexed = point.segment == p.last && c.has(SegmentCase.Flag.indexes)
    let batches = p.walks[point.segment].batches.filter { $0.end <= point.position }
    return SegmentTail(
        base: Offset(p.bases[point.segment]), size: Int64(point.position), nextOffset: Offset(point.offset),
        indexBytes: indexed ? Int64(c.index.count / OffsetIndex.entryBytes * OffsetIndex.entryBytes) : 0,
        timeIndexBytes: indexed ? Int64(c.timeIndex.count / TimeIndex.entryBytes * TimeIndex.entryBytes) : 0,
        bytesSinceIndexEntry: 0, maxTimestampMillis: batches.map(\.maxTimestampMillis).max() ?? .min,
        firstBatchMaxTimestampMillis: batches.first?.maxTimestampMillis ?? .min, lastTimeIndexMillis: .min, lastTimeIndexOffset: nil)
}

func create(_ path: String, _ bytes: [UInt8], _ fs: SimulatedFileSystem) {
    do {
        let f = try fs.openFile(path, mode: .createNew)
        if !bytes.isEmpty { try f.write(bytes, at: 0) }
        try f.sync()
    } catch {
        fatalError("writing \(path): \(error)")
    }
}

func overwrite(_ path: String, _ bytes: [UInt8], _ fs: SimulatedFileSystem) {
    do {
        let f = try fs.openFile(path, mode: .readWrite)
        try f.write(bytes, at: 0)
        try f.sync()
    } catch {
        fatalError("writing \(path): \(error)")
    }
}

/// The partition's segment files now, by base offset.
func snapshot(_ fs: SimulatedFileSystem) -> [Int64: [UInt8]] {
    var out: [Int64: [UInt8]] = [:]
    for name in (try? fs.list(dir)) ?? [] where name.hasSuffix(SegmentFiles.logSuffix) {  // listing a directory made above cannot fail
        guard let base = Int64(name.dropLast(SegmentFiles.logSuffix.count)) else { continue }
        out[base] = fs.contents(dir + "/" + name)
    }
    return out
}

/// The model of the files as they are now.
func model(_ fs: SimulatedFileSystem) -> RefPartition {
    let files = snapshot(fs)
    let bases = files.keys.sorted()
    return RefPartition(bases: bases, logs: bases.map { files[$0]! })
}
