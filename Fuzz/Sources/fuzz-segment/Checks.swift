import FuzzSupport
import KappaCore
@testable import KappaFormat
@testable import KappaLog
import KappaTesting

nonisolated(unsafe) let readCodec = LZ4Codec()
nonisolated(unsafe) let readScratch = ByteWriter(capacity: 1 << 16)

// MARK: - Readers

/// What a fresh reader hands out (from the start, or from `seekTo`), checking every batch
/// against the file it says it came from: the bytes are the file's, the offsets continue.
func read(_ directory: DataDirectory, _ fs: SimulatedFileSystem, seekTo: Int64? = nil) -> [ReadEvent] {
    let p = model(fs)
    var events: [ReadEvent] = []
    var expected: Int64?
    do {
        let reader = try PartitionReader(directory: directory, topicPartition: tp)
        if let seekTo { try reader.seek(to: Offset(seekTo)) }
        while let batch = try reader.nextBatch() {
            let path = reader.currentPath ?? "?"
            let name = path.split(separator: "/").last.map(String.init) ?? ""
            let base = Int64(name.dropLast(SegmentFiles.logSuffix.count))
            guard let base, name.hasSuffix(SegmentFiles.logSuffix), let s = p.segment(withBase: base) else {
                require(false, "a reader returned a batch of \(path), which is not a segment")
                return events
            }
            let position = Int(batch.position.rawValue), length = batch.bytes.count
            let file = p.logs[s]
            require(length == batch.header.totalBytes && position + length <= file.count && file[position..<(position + length)].elementsEqual(batch.bytes),
                    "a reader returned \(length) bytes as the batch at \(path):\(position) that the file does not hold there")
            require(RecordBatchFramer.crcMatches(batch.bytes), "a reader returned a batch at \(path):\(position) whose CRC does not match")
            if let e = expected { require(batch.header.baseOffset.rawValue == e, "a reader returned offset \(batch.header.baseOffset) after \(e)") }
            expected = batch.header.nextOffset.rawValue
            events.append(.batch(segment: s, position: position, length: length, baseOffset: batch.header.baseOffset.rawValue))
            guard decodes(batch) else { return events + [.refused] }
        }
        events.append(.caughtUp)
    } catch {
        require(error.code == .corruptData, "a reader failed with \(error.code): \(error) (only corruption is expected)")
        events.append(.refused)
    }
    return events
}

/// Decodes every record of a batch a reader returned, as a consumer does.
func decodes(_ batch: BatchRef) -> Bool {
    do throws(BatchDecodeError) {
        var records = try RecordBatchDecoder.records(of: batch.bytes, header: batch.header, codec: readCodec, scratch: readScratch)
        while let r = try records.next() { _ = touch(r.key) ^ touch(r.value) }
        return true
    } catch {
        return false
    }
}

/// Reads from the start and, when the visible end is one the model can predict from,
/// compares with the model.
func checkReader(_ directory: DataDirectory, _ fs: SimulatedFileSystem, _ p: RefPartition, visibleEnd: RefPoint?, when: String) {
    let events = read(directory, fs)
    let expected = expectedRead(p, visibleEnd: visibleEnd)
    require(events == expected, "\(when): a reader handed out \(events), the model expects \(expected) (visible end \(visibleEnd.map { "\($0)" } ?? "refused"))")
}

/// A reader that seeks somewhere: only the always-true checks of `read`.
func checkSeek(_ directory: DataDirectory, _ fs: SimulatedFileSystem, to offset: Int64) {
    _ = read(directory, fs, seekTo: offset)
}

// MARK: - Writers

/// What the model says a writer opening the partition does.
enum WriterOutcome: Equatable, CustomStringConvertible {
    /// It refuses (corruption).
    case refused
    /// It opens; the log then ends at `end`, the last segment holding `size` bytes.
    case opened(lastSegment: Int, size: Int, nextOffset: Int64)

    var description: String {
        switch self {
        case .refused: "refused"
        case let .opened(s, size, next): "opened (segment \(s) of \(size) bytes, next offset \(next))"
        }
    }
}

/// The published end a writer trusts: written in this boot, not behind the recovery point
/// (not a lower offset, an earlier segment or an earlier position in its segment), within
/// its segment's bytes.
func trustedEnd(_ p: RefPartition, _ points: Points) -> RefPoint? {
    let rp = points.recoveryPoint
    guard let e = points.published, points.publishedThisBoot, e.offset >= (rp?.offset ?? .min), e.segment >= (rp?.segment ?? .min),
          e.segment > (rp?.segment ?? .min) || e.position >= (rp?.position ?? .min), e.position <= p.logs[e.segment].count else { return nil }
    return e
}

/// The model of a writer's recovery (PartitionWriter's contract, README "Guarantees").
func expectedWriter(_ p: RefPartition, _ points: Points) -> WriterOutcome {
    let rp = points.recoveryPoint
    var lastSegment = p.last
    var cutAt: Int?
    var start: RefPoint
    if let e = trustedEnd(p, points) {
        // Trusted (not behind the recovery point): later segments are moved aside, bytes past it cut.
        lastSegment = e.segment
        cutAt = e.position
        start = e
    } else {
        start = rp ?? RefPoint(segment: p.last, position: 0, offset: p.bases[p.last])
        guard let scan = tailScan(p, from: start) else { return .refused }
        if scan.torn { cutAt = scan.end.position }
    }
    let log = Array(p.logs[lastSegment].prefix(cutAt ?? p.logs[lastSegment].count))
    var w = walkHeaders(log, from: 0, expected: p.bases[lastSegment])
    if !w.complete {
        guard start.segment == lastSegment, start.position >= w.end else { return .refused }
        w = walkHeaders(log, from: start.position, expected: start.offset)
        guard w.complete else { return .refused }
    }
    return .opened(lastSegment: lastSegment, size: log.count, nextOffset: w.nextOffset)
}

/// The header walk a writer does over its active segment: framing, offsets, a batch
/// that ends within the file; no CRCs.
func walkHeaders(_ log: [UInt8], from position: Int, expected: Int64) -> (complete: Bool, end: Int, nextOffset: Int64) {
    var at = position
    var next = expected
    while at < log.count {
        guard log.count - at >= RecordBatchLayout.headerBytes else { return (false, at, next) }
        let h: RecordBatchHeader? = log.withUnsafeBytes { raw in
            guard case .batch(let h)? = try? RecordBatchFramer.frame(UnsafeRawBufferPointer(rebasing: raw[at..<(at + RecordBatchLayout.headerBytes)]), headerOnly: true)  // nil: the walk ends
            else { return nil }
            return h
        }
        guard let h, h.baseOffset.rawValue == next, h.lastOffsetDelta >= 0, at + h.totalBytes <= log.count else { return (false, at, next) }
        next = h.nextOffset.rawValue
        at += h.totalBytes
    }
    return (true, at, next)
}

/// Opens a writer on the files and checks what its recovery did; then reads, appends
/// and reopens as the case asks.
func openWriter(_ c: SegmentCase, _ p: RefPartition, _ points: Points, _ directory: DataDirectory, _ fs: SimulatedFileSystem) {
    let before = snapshot(fs)
    let expected = expectedWriter(p, points)
    let writer: PartitionWriter
    do {
        writer = try PartitionWriter(directory: directory, topicPartition: tp, config: TopicConfig(partitions: 1, compression: .none),
                                     fsync: .always, clock: ManualClock())
    } catch {
        require(error.code == .corruptData, "a writer failed to open with \(error.code): \(error) (only corruption is expected)")
        checkCuts(before: before, fs: fs, points: points, p: p)
        require(expected == .refused, "a writer refused (\(error)); the model expects it \(expected)")
        return
    }
    checkCuts(before: before, fs: fs, points: points, p: p)
    if case let .opened(s, size, next) = expected {
        let end = writer.endMarker
        require(end.segmentBase.rawValue == p.bases[s] && end.position.rawValue == Int64(size) && end.offset.rawValue == next,
                "a writer opened at \(end); the model expects \(expected)")
    } else {
        require(false, "a writer opened at \(writer.endMarker); the model expects it to refuse")
    }
    let now = model(fs)
    checkReader(directory, fs, now, visibleEnd: point(writer.endMarker, now), when: "after a writer opened")
    if c.has(SegmentCase.Flag.append) { append(writer, directory, fs) }
}

/// The model point of a marker the writer published.
func point(_ m: CommittedMarker, _ p: RefPartition) -> RefPoint? {
    guard let s = p.segment(withBase: m.segmentBase.rawValue) else { return nil }
    return RefPoint(segment: s, position: Int(m.position.rawValue), offset: m.offset.rawValue)
}

/// Appends a batch; a reader then hands it out last (unless the log is refused before
/// it), and a second writer opens the partition without cutting anything.
func append(_ writer: PartitionWriter, _ directory: DataDirectory, _ fs: SimulatedFileSystem) {
    let next = writer.nextOffset
    let sealed = SealedBatches()
    sealed.seal([ReferenceRecord(key: Array("k".utf8), value: Array("{\"v\":1}".utf8), timestamp: TimestampNanos(1_457_741_907_959_400_112)),
                 ReferenceRecord(key: nil, value: [], timestamp: TimestampNanos(1_457_741_907_000_000_000))],
                compression: .none, codec: readCodec)
    do {
        let range = try writer.append(sealed)
        require(range == next...(next + 1), "an append got offsets \(String(describing: range)), expected \(next)...\(next + 1)")
        try writer.close()
    } catch {
        require(false, "an append after recovery failed: \(error)")
    }
    let now = model(fs)
    let events = read(directory, fs)
    let expected = expectedRead(now, visibleEnd: point(writer.endMarker, now))
    require(events == expected, "after an append: a reader handed out \(events), the model expects \(expected)")
    if events.last == .caughtUp {
        guard case .batch(_, _, _, let base)? = events.dropLast().last else {
            require(false, "after an append: a reader caught up without the appended batch")
            return
        }
        require(base == next.rawValue, "after an append: the last batch a reader handed out starts at \(base), the append at \(next)")
    }
    let before = snapshot(fs)
    do {
        let again = try PartitionWriter(directory: directory, topicPartition: tp, config: TopicConfig(partitions: 1, compression: .none),
                                        fsync: .always, clock: ManualClock())
        require(again.recoveries.isEmpty, "a second writer in the same boot cut \(again.recoveries)")
        require(again.nextOffset == writer.nextOffset, "a second writer continues at \(again.nextOffset), the first ended at \(writer.nextOffset)")
    } catch {
        require(false, "a second writer in the same boot failed to open: \(error)")
    }
    require(snapshot(fs) == before, "a second writer in the same boot changed the log")
}

/// What a writer's recovery may have done to the segment files: cut a tail or move a
/// whole segment aside, keeping the bytes as evidence, and never at or before the
/// recovery point (nor in a segment before it).
func checkCuts(before: [Int64: [UInt8]], fs: SimulatedFileSystem, points: Points, p: RefPartition) {
    let after = snapshot(fs)
    let evidence = ((try? fs.list(dir)) ?? []).filter { $0.contains(SegmentFiles.tornInfix) }.compactMap { fs.contents(dir + "/" + $0) }  // listing a directory made above cannot fail
    // Without a recovery point, a trusted end is what must stay (past it, an append that
    // did not finish); with neither, the start of the last segment.
    let protected = points.recoveryPoint ?? trustedEnd(p, points) ?? RefPoint(segment: p.last, position: 0, offset: p.bases[p.last])
    for (base, old) in before {
        let new = after[base] ?? []
        require(after.keys.contains(base) || old.isEmpty || evidence.contains(old), "segment \(base) vanished without evidence")
        require(new.count <= old.count && old.starts(with: new), "recovery changed segment \(base) other than by cutting its tail")
        if new.count < old.count {
            require(evidence.contains(Array(old[new.count...])), "recovery cut \(old.count - new.count) bytes of segment \(base) at \(new.count) without keeping them")
        }
        guard let s = p.segment(withBase: base) else { continue }
        if s < protected.segment {
            require(new == old, "recovery changed segment \(base), before the recovery point's segment (\(protected))")
        } else if s == protected.segment {
            require(after.keys.contains(base) && new.count >= min(old.count, protected.position),
                    "recovery cut segment \(base) at \(new.count), below the recovery point \(protected)")
        }
    }
    for base in after.keys { require(before.keys.contains(base), "recovery made segment \(base)") }
}
