import KappaCore
import KappaFormat

/// A partition's recovery point (Kafka's recovery-point checkpoint): the `LogPoint` up to
/// which its log is known to be on stable storage. Every byte before it was fsynced —
/// all of every earlier segment, and `segmentBase`'s .log up to `position` — so damage
/// there is corruption, never a torn write. Bytes after it may be torn by a power loss.
///
/// File `DATA/topics/T/P/recovery-point`, 576 bytes: two 64-byte slots at byte 0 and
/// byte 512, each in its own disk sector, so a write torn by a power loss damages one
/// slot only. A write goes to the slot of the older copy (`sequence` mod 2) and is
/// fsynced; a reader takes the valid slot with the higher sequence. Slot layout
/// (big-endian):
///
/// ```
/// magic         u32   "KRPT"
/// version       u16   1
/// flags         u16   0
/// sequence      u64   one more than the previous write's
/// segmentBase   i64
/// position      i64   bytes of that segment's .log known durable
/// nextOffset    i64   every record below it is durable
/// crc           u32   CRC-32C of the slot's bytes before it
/// (zero)              to 64 bytes
/// ```
///
/// Written by `PartitionWriter` under the partition lock: after each fsync of the log,
/// after a roll (the closed segment was fsynced), at clean close (when the policy
/// fsyncs), and lowered before a truncation. It never names a point past what the .log
/// files hold. A partition without the file (never written, or written by a Kappa that
/// predates it) has its recovery point at the start of its last segment.
public struct RecoveryPoint: Equatable, Sendable {
    public var point: LogPoint
    public var sequence: UInt64

    public static let fileName = "recovery-point"

    enum Layout {
        static let magicAt = 0
        static let versionAt = magicAt + 4
        static let flagsAt = versionAt + 2
        static let sequenceAt = flagsAt + 2
        static let segmentBaseAt = sequenceAt + 8
        static let positionAt = segmentBaseAt + 8
        static let nextOffsetAt = positionAt + 8
        static let crcAt = nextOffsetAt + 8
        /// 44 bytes of content; a slot is 64.
        static let contentBytes = crcAt + 4
        static let slotBytes = 64
        /// One 512-byte sector per slot.
        static let slotStride = 512
        static let fileBytes = slotStride + slotBytes
        static let magic: UInt32 = 0x4B52_5054  // "KRPT"
        static let version: UInt16 = 1
    }

    public static func path(_ partitionDirectory: String) -> String { partitionDirectory + "/" + fileName }

    /// The slot bytes for this value.
    func encoded() -> [UInt8] {
        let w = ByteWriter(capacity: Layout.slotBytes)
        w.appendBigEndian(Layout.magic)
        w.appendBigEndian(Layout.version)
        w.appendBigEndian(UInt16(0))
        w.appendBigEndian(sequence)
        w.appendBigEndian(point.segmentBase.rawValue)
        w.appendBigEndian(point.position.rawValue)
        w.appendBigEndian(point.offset.rawValue)
        assert(w.count == Layout.crcAt)
        w.appendBigEndian(CRC32C.checksum(w.bytes))
        while w.count < Layout.slotBytes { w.append(0) }
        return Array(w.bytes)
    }

    /// The value of one slot, or nil when it does not check out.
    static func decode(slot: UnsafeRawBufferPointer) -> RecoveryPoint? {
        guard slot.count >= Layout.contentBytes,
              slot.loadBigEndian(at: Layout.magicAt, as: UInt32.self) == Layout.magic,
              slot.loadBigEndian(at: Layout.versionAt, as: UInt16.self) == Layout.version,
              slot.loadBigEndian(at: Layout.crcAt, as: UInt32.self) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: slot[..<Layout.crcAt]))
        else { return nil }
        let base = slot.loadBigEndian(at: Layout.segmentBaseAt, as: Int64.self)
        let position = slot.loadBigEndian(at: Layout.positionAt, as: Int64.self)
        let next = slot.loadBigEndian(at: Layout.nextOffsetAt, as: Int64.self)
        // A point past bytes of its segment is past records too (Kappa writes no empty
        // batches), and one at its start is at its base: else the copy is not a point a
        // writer wrote, and a recovery from it would make a malformed tail (fuzz-segment).
        guard base >= 0, position >= 0, next >= base, (position == 0) == (next == base) else { return nil }
        return RecoveryPoint(point: LogPoint(segmentBase: Offset(base), position: FilePosition(position), offset: Offset(next)),
                             sequence: slot.loadBigEndian(at: Layout.sequenceAt, as: UInt64.self))
    }

    /// The newest valid copy in the file's bytes, or nil when neither slot checks out.
    static func decode(file bytes: [UInt8]) -> RecoveryPoint? {
        bytes.withUnsafeBytes { raw -> RecoveryPoint? in
            var best: RecoveryPoint?
            for start in [0, Layout.slotStride] where start + Layout.contentBytes <= raw.count {
                let end = min(raw.count, start + Layout.slotBytes)
                if let rp = decode(slot: UnsafeRawBufferPointer(rebasing: raw[start..<end])), rp.sequence >= (best?.sequence ?? 0) {
                    best = rp
                }
            }
            return best
        }
    }

    /// Reads the recovery point of the partition in `dir`; nil when there is no file or
    /// no valid copy in it.
    public static func read(_ fs: any FileSystem, partitionDirectory dir: String) throws(KappaError) -> RecoveryPoint? {
        guard let bytes = try fs.readFileIfExists(path(dir), limit: 4096) else { return nil }
        return decode(file: bytes)
    }
}

/// The open recovery-point file of a writer: writes the next copy and fsyncs it.
final class RecoveryPointFile {
    let file: File
    private(set) var current: RecoveryPoint?

    /// Opens the file in `dir` (making it first if a topic older than recovery points
    /// lacks it) and reads it.
    init(_ fs: any FileSystem, partitionDirectory dir: String) throws(KappaError) {
        let path = RecoveryPoint.path(dir)
        if (try fs.readFileIfExists(path, limit: 4096))?.count != RecoveryPoint.Layout.fileBytes {
            try Self.create(fs, partitionDirectory: dir)
        }
        file = try fs.openFile(path, mode: .readWrite)
        current = RecoveryPoint.decode(file: try file.readAll(limit: 4096))
    }

    /// Makes the file at full size (so later writes never allocate: a full disk cannot
    /// fail them) with a durable name (so a power loss cannot lose it): what a new
    /// partition gets when its topic is created. Keeps the copies a shorter file holds.
    /// Its zero bytes need no fsync: a file a power loss left short is made again, and
    /// every copy written later is fsynced.
    static func create(_ fs: any FileSystem, partitionDirectory dir: String) throws(KappaError) {
        let file = try fs.openFile(RecoveryPoint.path(dir), mode: .readWriteCreate)
        try file.truncate(to: Int64(RecoveryPoint.Layout.fileBytes))
        try fs.syncDirectory(dir)
    }

    /// Re-reads the file: another writer may have moved it.
    func refresh() throws(KappaError) {
        current = RecoveryPoint.decode(file: try file.readAll(limit: 4096))
    }

    /// Records `point` durably. The caller has fsynced the log up to it.
    func write(_ point: LogPoint) throws(KappaError) {
        let next = RecoveryPoint(point: point, sequence: (current?.sequence ?? 0) + 1)
        let slot = Int64(next.sequence % 2) * Int64(RecoveryPoint.Layout.slotStride)
        try file.write(next.encoded(), at: slot)
        try file.sync()
        current = next
    }
}
