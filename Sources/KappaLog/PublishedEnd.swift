import KappaCore
import KappaFormat

/// Where a partition's log ends, as the last writer published it: readers in every
/// process read up to here and no further; writers continue from here.
///
/// File `DATA/topics/T/P/end`, one 108-byte record at byte 0, overwritten in place by
/// the writer holding the partition lock right after each append (log and index bytes
/// written first), never fsynced: it is a statement about the page cache, which is why
/// it names the boot that wrote it. Layout (big-endian):
///
/// ```
/// magic                  u32  "KEND"
/// version                u16  1
/// flags                  u16  0
/// bootHigh, bootLow      u64  the boot of the machine that wrote it (`BootID`)
/// segmentBase            i64  the active segment
/// size                   i64  its .log bytes: the end position
/// nextOffset             i64
/// indexBytes             i64  its .index bytes
/// timeIndexBytes         i64  its .timeindex bytes
/// bytesSinceIndexEntry   i64
/// maxTimestampMillis     i64  (Int64.min: none)
/// firstBatchMaxMillis    i64  (Int64.min: none)
/// lastTimeIndexMillis    i64  (Int64.min: none)
/// lastTimeIndexOffset    i64  (-1: none)
/// crc                    u32  CRC-32C of everything before it
/// ```
///
/// Trust: within the boot that wrote it, every byte before the end is exactly as its
/// writer wrote it (whole, checked batches), whatever process died since. After a
/// restart of the machine the record says nothing: pages it describes may never have
/// reached the disk, so readers and writers fall back to the recovery point. A record
/// whose CRC does not match (a write in progress seen by a lock-free reader) is read
/// again; one that stays bad is ignored like a stale one.
public struct PublishedEnd: Equatable, Sendable {
    public var bootID: BootID
    public var tail: SegmentTail

    public static let fileName = "end"

    enum Layout {
        static let magicAt = 0
        static let versionAt = magicAt + 4
        static let flagsAt = versionAt + 2
        static let bootHighAt = flagsAt + 2
        static let bootLowAt = bootHighAt + 8
        static let segmentBaseAt = bootLowAt + 8
        static let sizeAt = segmentBaseAt + 8
        static let nextOffsetAt = sizeAt + 8
        static let indexBytesAt = nextOffsetAt + 8
        static let timeIndexBytesAt = indexBytesAt + 8
        static let bytesSinceIndexEntryAt = timeIndexBytesAt + 8
        static let maxTimestampAt = bytesSinceIndexEntryAt + 8
        static let firstBatchMaxTimestampAt = maxTimestampAt + 8
        static let lastTimeIndexMillisAt = firstBatchMaxTimestampAt + 8
        static let lastTimeIndexOffsetAt = lastTimeIndexMillisAt + 8
        static let crcAt = lastTimeIndexOffsetAt + 8
        /// 108 bytes.
        static let recordBytes = crcAt + 4
        static let magic: UInt32 = 0x4B45_4E44  // "KEND"
        static let version: UInt16 = 1
    }

    public static func path(_ partitionDirectory: String) -> String { partitionDirectory + "/" + fileName }

    public init(bootID: BootID, tail: SegmentTail) {
        self.bootID = bootID
        self.tail = tail
    }

    func encode(into w: ByteWriter) {
        w.removeAll()
        w.appendBigEndian(Layout.magic)
        w.appendBigEndian(Layout.version)
        w.appendBigEndian(UInt16(0))
        w.appendBigEndian(bootID.high)
        w.appendBigEndian(bootID.low)
        w.appendBigEndian(tail.base.rawValue)
        w.appendBigEndian(tail.size)
        w.appendBigEndian(tail.nextOffset.rawValue)
        w.appendBigEndian(tail.indexBytes)
        w.appendBigEndian(tail.timeIndexBytes)
        w.appendBigEndian(tail.bytesSinceIndexEntry)
        w.appendBigEndian(tail.maxTimestampMillis)
        w.appendBigEndian(tail.firstBatchMaxTimestampMillis)
        w.appendBigEndian(tail.lastTimeIndexMillis)
        w.appendBigEndian(tail.lastTimeIndexOffset?.rawValue ?? -1)
        assert(w.count == Layout.crcAt)
        w.appendBigEndian(CRC32C.checksum(w.bytes))
    }

    /// Decodes a record; nil when it does not check out (torn, damaged, or another format).
    static func decode(_ raw: UnsafeRawBufferPointer) -> PublishedEnd? {
        guard raw.count >= Layout.recordBytes,
              raw.loadBigEndian(at: Layout.magicAt, as: UInt32.self) == Layout.magic,
              raw.loadBigEndian(at: Layout.versionAt, as: UInt16.self) == Layout.version,
              raw.loadBigEndian(at: Layout.crcAt, as: UInt32.self) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[..<Layout.crcAt]))
        else { return nil }
        func i64(_ at: Int) -> Int64 { raw.loadBigEndian(at: at, as: Int64.self) }
        let lastTimeOffset = i64(Layout.lastTimeIndexOffsetAt)
        let tail = SegmentTail(
            base: Offset(i64(Layout.segmentBaseAt)), size: i64(Layout.sizeAt), nextOffset: Offset(i64(Layout.nextOffsetAt)),
            indexBytes: i64(Layout.indexBytesAt), timeIndexBytes: i64(Layout.timeIndexBytesAt),
            bytesSinceIndexEntry: i64(Layout.bytesSinceIndexEntryAt), maxTimestampMillis: i64(Layout.maxTimestampAt),
            firstBatchMaxTimestampMillis: i64(Layout.firstBatchMaxTimestampAt), lastTimeIndexMillis: i64(Layout.lastTimeIndexMillisAt),
            lastTimeIndexOffset: lastTimeOffset < 0 ? nil : Offset(lastTimeOffset))
        guard tail.base.rawValue >= 0, tail.isWellFormed else { return nil }
        return PublishedEnd(bootID: BootID(high: raw.loadBigEndian(at: Layout.bootHighAt, as: UInt64.self),
                                           low: raw.loadBigEndian(at: Layout.bootLowAt, as: UInt64.self)),
                            tail: tail)
    }
}

/// Reads a partition's `end` file without any lock, as often as a follower likes: one
/// pread. Not thread-safe.
final class PublishedEndReader {
    let fs: any FileSystem
    let path: String
    private var file: File?
    private let buffer = ByteWriter(capacity: PublishedEnd.Layout.recordBytes)
    /// Reads of a record whose CRC does not match before it is taken as damaged (sooner
    /// when two reads agree): a writer's in-place overwrite of 108 bytes takes microseconds.
    static let tornReadRetries = 100

    init(_ fs: any FileSystem, partitionDirectory dir: String) {
        self.fs = fs
        path = PublishedEnd.path(dir)
    }

    enum Outcome: Equatable {
        /// No file (no writer has opened the partition since it was made).
        case missing
        /// The file holds no valid record.
        case damaged
        case record(PublishedEnd)
    }

    func read() throws(KappaError) -> Outcome {
        if file == nil {
            do {
                file = try fs.openFile(path, mode: .readOnly)
            } catch where error.code == .notFound {
                return .missing
            }
        }
        let f = file!
        let count = PublishedEnd.Layout.recordBytes
        var previous: [UInt8]?
        for _ in 0..<Self.tornReadRetries {
            let got = try f.read(into: buffer.base, count: count, at: 0)
            guard got == count else { return got == 0 ? .missing : .damaged }
            let bytes = UnsafeRawBufferPointer(start: buffer.base, count: count)
            if let end = PublishedEnd.decode(bytes) { return .record(end) }
            // The same bad bytes twice: damaged, not a write in progress.
            if let previous, previous.elementsEqual(bytes) { return .damaged }
            previous = Array(bytes)
        }
        return .damaged
    }
}
