import KappaCore
import KappaFormat

/// Where a batch lies in a partition: the segment holding it and its byte position there.
/// Derived state (an index keeps it to find a record without the segment's offset index);
/// `RecordFetcher` checks it against the batch it points at before trusting it.
public struct BatchLocation: Hashable, Sendable {
    public var segmentBase: Offset
    public var position: FilePosition

    public init(segmentBase: Offset, position: FilePosition) {
        self.segmentBase = segmentBase
        self.position = position
    }
}

/// One record read by offset, copied out of its batch.
public struct FetchedRecord: Equatable, Sendable {
    public var offset: Offset
    public var timestamp: TimestampNanos
    public var key: [UInt8]?
    public var value: [UInt8]
    /// The batch came from a Kafka client (`TopicConfig.cameFromKafkaClient`): the value
    /// was never validated as JSON.
    public var fromKafkaClient: Bool
    public var location: BatchLocation

    public init(offset: Offset, timestamp: TimestampNanos, key: [UInt8]?, value: [UInt8], fromKafkaClient: Bool, location: BatchLocation) {
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.fromKafkaClient = fromKafkaClient
        self.location = location
    }
}

/// Random access to single records by offset, for readers that jump around the log (the
/// user-history index fetches a page of records from many partitions).
///
/// **How.** With a `BatchLocation` hint and a `RecordLocator` (what the history index
/// stores) it reads the batch header and the record's bytes — for an LZ4 batch the one
/// block holding it, inflated only up to the record — and returns the record when the
/// locator's CRC-32C over header and record matches and the record has the wanted
/// offset. With a hint alone, or when the locator does not check out, it reads the batch
/// header at that position (one `pread`), and when the header's offsets contain the
/// wanted one, the whole batch (a second `pread`), checks its CRC-32C and decodes it. Without a hint,
/// or when the hint does not check out (another batch there, a segment deleted by
/// retention, a CRC that does not match), it falls back to a `PartitionReader`'s
/// `seek` + `nextRecords`, which does every check readers do and reports damage with
/// topic, partition, offset, file and position. So a hint can only make a fetch faster,
/// never return other bytes: the record returned is the one at `offset`, from a batch
/// whose CRC matched.
///
/// **What it sees.** The hint path trusts that a batch which was once below the
/// published end is still there (within a boot, published batches never change; the
/// caller checks its hints after a restart). The fallback sees what `PartitionReader`
/// sees. A record below the log start (retention) or not yet visible is nil.
///
/// **Decoded batches.** The last `batchesMax` batches read by hint stay decoded: a
/// user's events cluster in time, so the entries of one page often share a batch, and
/// each further record of it costs a copy instead of a read, a CRC and an inflate.
///
/// **Limits.** At most `openFilesMax` segment files, `readersMax` partition readers and
/// `batchesMax` decoded batches are kept (least recently used dropped first), so memory
/// and descriptors do not grow with the log. Batches are at most `Limits.batchBytesMax`.
///
/// Not thread-safe: one fetcher per thread.
public final class RecordFetcher {
    public let directory: DataDirectory
    private let openFilesMax: Int
    private let readersMax: Int
    private var files: [SegmentKey: File] = [:]
    private var fileUse: [SegmentKey: Int] = [:]
    private var readers: [TopicPartition: PartitionReader] = [:]
    private var readerUse: [TopicPartition: Int] = [:]
    private var tick = 0
    private let codec = LZ4Codec()
    private let scratch = ByteWriter(capacity: 1 << 20)
    private var decoded: [DecodedBatch] = []
    /// Records returned by the located path (the rest read whole batches): for tests and
    /// profiles.
    public private(set) var locatedReads = 0
    /// The located path's buffers: a batch header, a block as stored, its inflated prefix.
    private let locatedHeader = ByteWriter(capacity: RecordBatchLayout.headerBytes)
    private let locatedBlock = ByteWriter(capacity: 1 << 16)
    private let locatedRecord = ByteWriter(capacity: 1 << 16)
    private let batchesMax: Int

    private struct SegmentKey: Hashable {
        var topicPartition: TopicPartition
        var base: Offset
    }

    /// Descriptors: a page of a user's history touches a few partitions, each in one or
    /// two segments; 64 keeps the working set of many pages open at little cost.
    public static let openFilesDefault = 64
    /// Each reader holds a 1 MiB buffer; the fallback is the rare path.
    public static let readersDefault = 8
    /// A decoded batch holds up to 512 KiB of records (`Limits.batchTargetBytes`) plus
    /// its compressed bytes: 8 keep a few MiB.
    public static let batchesDefault = 8

    public init(directory: DataDirectory, openFilesMax: Int = RecordFetcher.openFilesDefault, readersMax: Int = RecordFetcher.readersDefault,
                batchesMax: Int = RecordFetcher.batchesDefault) {
        precondition(openFilesMax > 0 && readersMax > 0 && batchesMax > 0)
        self.directory = directory
        self.openFilesMax = openFilesMax
        self.readersMax = readersMax
        self.batchesMax = batchesMax
    }

    /// The record at `offset` of `topicPartition`, or nil when the log does not hold it
    /// (below the log start, or past the visible end). Throws for damage (as readers do)
    /// and for a partition that does not exist.
    /// With a `locator` as well, only the batch header and the record's block are read.
    public func record(_ topicPartition: TopicPartition, at offset: Offset, hint: BatchLocation?,
                       locator: RecordLocator? = nil) throws(KappaError) -> FetchedRecord? {
        if let hint, let locator, let found = try viaLocator(topicPartition, offset, hint, locator) { return found }
        if let hint, let found = try viaHint(topicPartition, offset, hint) { return found }
        return try viaReader(topicPartition, offset)
    }

    /// Closes every file and reader (they reopen on demand).
    public func closeAll() {
        decoded.removeAll()
        files.removeAll()
        fileUse.removeAll()
        readers.removeAll()
        readerUse.removeAll()
    }

    // MARK: - The located path

    /// Reads the batch header at `hint` and the record's bytes (for an LZ4 batch, its
    /// block, inflated only up to the record's end), and returns the record when the
    /// locator's CRC-32C matches the header and those bytes and the record is the one at
    /// `offset`; nil (the caller falls back to the whole batch) otherwise.
    private func viaLocator(_ tp: TopicPartition, _ offset: Offset, _ hint: BatchLocation, _ locator: RecordLocator) throws(KappaError) -> FetchedRecord? {
        // A decoded batch already cached is cheaper still.
        if let slot = cached(tp, hint) { return slot.record(offset) }
        guard let file = try segmentFile(SegmentKey(topicPartition: tp, base: hint.segmentBase)) else { return nil }
        let headerBytes = RecordBatchLayout.headerBytes
        let header = locatedHeader
        header.removeAll()
        header.reserve(headerBytes)
        guard try file.read(into: header.base, count: headerBytes, at: hint.position.rawValue) == headerBytes else { return nil }
        header.count = headerBytes
        guard case .batch(let h)? = try? RecordBatchFramer.frame(header.bytes, headerOnly: true), !h.isControl,
              h.baseOffset <= offset, offset < h.nextOffset else { return nil }
        let sectionBytes = h.totalBytes - headerBytes
        let recordsAt = hint.position.rawValue + Int64(headerBytes)
        let length = Int(locator.length), inBlock = Int(locator.inBlock), blockStart = Int(locator.blockStart)
        let block = locatedBlock
        let bytes: UnsafeRawBufferPointer
        switch h.compression {
        case .none?:
            guard locator.blockSizeField == 0, blockStart + length <= sectionBytes else { return nil }
            block.removeAll()
            block.reserve(length)
            guard try file.read(into: block.base, count: length, at: recordsAt + Int64(blockStart)) == length else { return nil }
            block.count = length
            bytes = block.bytes
        case .lz4?:
            let blockBytes = 4 + Int(locator.blockSizeField & LZ4Block.sizeMask)
            guard locator.blockSizeField != 0, blockStart + blockBytes <= sectionBytes, inBlock + length <= LZ4Block.inflatedBytesMax else { return nil }
            block.removeAll()
            block.reserve(blockBytes)
            guard try file.read(into: block.base, count: blockBytes, at: recordsAt + Int64(blockStart)) == blockBytes,
                  block.base.loadUnaligned(as: UInt32.self) == locator.blockSizeField.littleEndian else { return nil }
            block.count = blockBytes
            guard LZ4Codec.inflatePrefix(ofBlock: block.bytes, count: inBlock + length, into: locatedRecord) else { return nil }
            bytes = UnsafeRawBufferPointer(rebasing: locatedRecord.bytes[inBlock...])
        default:
            return nil
        }
        guard RecordLocator.checksum(header: header.bytes, record: bytes) == locator.crc,
              let r = try? RecordBatchDecoder.record(bytes, header: h), r.offset == offset else { return nil }
        locatedReads += 1
        return Self.copy(r, fromKafka: TopicConfig.cameFromKafkaClient(header.bytes), location: hint)
    }

    // MARK: - The hinted path

    private func viaHint(_ tp: TopicPartition, _ offset: Offset, _ hint: BatchLocation) throws(KappaError) -> FetchedRecord? {
        if let slot = cached(tp, hint) { return slot.record(offset) }
        guard let slot = try decode(tp, hint) else { return nil }
        return slot.record(offset)
    }

    /// The cache slot holding the batch at `hint`, marked as just used.
    private func cached(_ tp: TopicPartition, _ hint: BatchLocation) -> DecodedBatch? {
        tick += 1
        guard let slot = decoded.first(where: { $0.topicPartition == tp && $0.location == hint }) else { return nil }
        slot.lastUse = tick
        return slot
    }

    /// Reads, checks and decodes the batch at `hint` into a cache slot; nil when no
    /// whole batch with a matching CRC is there.
    private func decode(_ tp: TopicPartition, _ hint: BatchLocation) throws(KappaError) -> DecodedBatch? {
        guard let file = try segmentFile(SegmentKey(topicPartition: tp, base: hint.segmentBase)) else { return nil }
        let slot = takeSlot(tp, hint)
        let batch = slot.batch
        let headerBytes = RecordBatchLayout.headerBytes
        batch.removeAll()
        batch.reserve(headerBytes)
        guard try file.read(into: batch.base, count: headerBytes, at: hint.position.rawValue) == headerBytes else { return nil }
        batch.count = headerBytes
        guard case .batch(let header)? = try? RecordBatchFramer.frame(batch.bytes, headerOnly: true), !header.isControl else { return nil }
        let rest = header.totalBytes - headerBytes
        batch.reserve(rest)
        guard try file.read(into: batch.base + headerBytes, count: rest, at: hint.position.rawValue + Int64(headerBytes)) == rest else { return nil }
        batch.count = header.totalBytes
        guard RecordBatchFramer.crcMatches(batch.bytes) else { return nil }
        do throws(BatchDecodeError) {
            var records = try RecordBatchDecoder.records(of: batch.bytes, header: header, codec: codec, scratch: slot.scratch)
            slot.records.removeAll(keepingCapacity: true)
            while let r = try records.next() { slot.records.append(r) }
        } catch {
            return nil  // a batch whose CRC matched but does not decode: let the reader report it
        }
        slot.fromKafkaClient = TopicConfig.cameFromKafkaClient(batch.bytes)
        slot.valid = true
        return slot
    }

    /// The least recently used slot (or a new one), emptied for `hint`.
    private func takeSlot(_ tp: TopicPartition, _ hint: BatchLocation) -> DecodedBatch {
        let slot: DecodedBatch
        if decoded.count < batchesMax {
            slot = DecodedBatch()
            decoded.append(slot)
        } else {
            slot = decoded.min { $0.lastUse < $1.lastUse }!
        }
        slot.topicPartition = tp
        slot.location = hint
        slot.lastUse = tick
        slot.valid = false
        slot.records.removeAll(keepingCapacity: true)
        return slot
    }

    private func segmentFile(_ key: SegmentKey) throws(KappaError) -> File? {
        tick += 1
        if let f = files[key] {
            fileUse[key] = tick
            return f
        }
        let path = SegmentFiles.logPath(directory.partitionPath(key.topicPartition), key.base)
        let file: File
        do {
            file = try directory.fileSystem.openFile(path, mode: .readOnly)
        } catch where error.code == .notFound {
            return nil  // retention deleted the segment, or the hint is stale
        }
        if files.count >= openFilesMax, let oldest = fileUse.min(by: { $0.value < $1.value })?.key {
            files[oldest] = nil
            fileUse[oldest] = nil
        }
        files[key] = file
        fileUse[key] = tick
        return file
    }

    // MARK: - The fallback

    private func viaReader(_ tp: TopicPartition, _ offset: Offset) throws(KappaError) -> FetchedRecord? {
        let reader = try partitionReader(tp)
        if case .belowStart = try reader.seek(to: offset) { return nil }
        guard var records = try reader.nextRecords(from: offset, codec: codec, scratch: scratch),
              let r = try records.next(), r.offset == offset else { return nil }
        guard let base = reader.currentSegmentBase else { return nil }
        let location = BatchLocation(segmentBase: base, position: records.position)
        return Self.copy(r, fromKafka: records.fromKafkaClient, location: location)
    }

    private func partitionReader(_ tp: TopicPartition) throws(KappaError) -> PartitionReader {
        tick += 1
        if let r = readers[tp] {
            readerUse[tp] = tick
            return r
        }
        let r = try PartitionReader(directory: directory, topicPartition: tp)
        if readers.count >= readersMax, let oldest = readerUse.min(by: { $0.value < $1.value })?.key {
            readers[oldest] = nil
            readerUse[oldest] = nil
        }
        readers[tp] = r
        readerUse[tp] = tick
        return r
    }

    fileprivate static func copy(_ r: RecordView, fromKafka: Bool, location: BatchLocation) -> FetchedRecord {
        FetchedRecord(offset: r.offset, timestamp: r.timestamp, key: r.key.map { Array($0) }, value: Array(r.value),
                      fromKafkaClient: fromKafka, location: location)
    }
}

/// One batch read by hint and decoded: its bytes, its inflated records, and a view of
/// each record (pointing into those buffers, valid while the slot holds this batch).
private final class DecodedBatch {
    var topicPartition = TopicPartition("", 0)
    var location = BatchLocation(segmentBase: .zero, position: .zero)
    var lastUse = 0
    /// False until the batch is wholly read and decoded (a failed decode leaves it false).
    var valid = false
    var fromKafkaClient = false
    let batch = ByteWriter(capacity: 1 << 16)
    let scratch = ByteWriter(capacity: 1 << 16)
    var records: [RecordView] = []

    func record(_ offset: Offset) -> FetchedRecord? {
        guard valid, let first = records.first, offset >= first.offset else { return nil }
        // Offsets within a batch are dense from its base: index, then confirm.
        let i = Int(offset - first.offset)
        let view: RecordView? = i < records.count && records[i].offset == offset ? records[i] : records.first { $0.offset == offset }
        return view.map { RecordFetcher.copy($0, fromKafka: fromKafkaClient, location: location) }
    }
}
