import KappaCore
import KappaFormat
import KappaLog

/// The byte layouts of the history index: one ordered key space (compared as unsigned
/// bytes, `memcmp`) holding three kinds of rows, told apart by their first byte.
///
/// ```
/// entry     key   'e' | user length u16 | user bytes | time u64 | topic bytes | 0x00 | partition u32 | offset u64
///           value segment base i64 | batch position i64 | [locator] | CRC-32C u32 (of the key and the value before it)
///           locator (optional; rows written before it existed, and records that cannot
///           be located, have none): block start u32 | block size field u32 |
///           in block u32 | record length u32 | record CRC-32C u32 (`RecordLocator`)
/// progress  key   'p' | topic bytes | 0x00 | partition u32
///           value next offset i64 | last batch base i64 | last batch CRC u32 | CRC-32C u32 (of key and value)
/// meta      key   'm'
///           value see `HistoryMeta`
/// ```
/// All integers big-endian. `time` is the event time in nanoseconds with its sign bit
/// flipped, so that unsigned byte order is time order (negative times first). Topic
/// names are `[A-Za-z0-9._-]` (never 0x00 or 0xFF), so the 0x00 terminator keeps
/// byte order equal to name order, and 0xFF after a user's time bytes is above every
/// key of that user at that time. So the entries of one user are contiguous, ordered
/// by (time, topic, partition, offset): the order of a page, deterministic and
/// independent of when or in which order records were indexed.
///
/// The entry value locates the record's batch (`BatchLocation`, a hint the fetcher
/// checks) and, when it can, the record inside it (`RecordLocator`: the fetcher then
/// reads and inflates one block instead of the batch); the CRC covers the key too, so a
/// row whose bytes changed on disk is detected when read, never served.
enum HistoryKeys {
    static let entryTag: UInt8 = 0x65  // 'e'
    static let progressTag: UInt8 = 0x70  // 'p'
    static let metaTag: UInt8 = 0x6D  // 'm'

    static let userLengthBytes = 2
    static let timeBytes = 8
    static let partitionBytes = 4
    static let offsetBytes = 8
    /// A user id longer than this is skipped (counted): ids are short, and the length
    /// is stored in 16 bits.
    static let userBytesMax = 1024

    static let entryValueSegmentOffset = 0
    static let entryValuePositionOffset = entryValueSegmentOffset + 8
    static let entryValueLocatorOffset = entryValuePositionOffset + 8
    static let locatorBytes = 5 * 4
    /// A value without a locator.
    static let entryValueBytes = entryValueLocatorOffset + 4
    static let entryValueLocatedBytes = entryValueLocatorOffset + locatorBytes + 4

    static let progressNextOffset = 0
    static let progressBatchBaseOffset = progressNextOffset + 8
    static let progressBatchCRCOffset = progressBatchBaseOffset + 8
    static let progressCRCOffset = progressBatchCRCOffset + 4
    static let progressValueBytes = progressCRCOffset + 4

    static let metaKey: [UInt8] = [metaTag]

    /// `'e' | length | user`: every entry of `user` starts with it.
    static func userPrefix(_ user: UnsafeRawBufferPointer, into out: ByteWriter) {
        precondition(user.count >= 1 && user.count <= userBytesMax, "user id length outside 1...\(userBytesMax)")
        out.append(entryTag)
        out.appendBigEndian(UInt16(user.count))
        out.append(user)
    }

    static func userPrefix(_ user: [UInt8]) -> [UInt8] {
        let out = ByteWriter(capacity: user.count + 3)
        user.withUnsafeBytes { userPrefix($0, into: out) }
        return Array(out.bytes)
    }

    @inline(__always)
    static func encodeTime(_ t: TimestampNanos, into out: ByteWriter) {
        out.appendBigEndian(UInt64(bitPattern: t.rawValue) ^ (1 << 63))
    }

    @inline(__always)
    static func decodeTime(_ p: UnsafeRawBufferPointer, at i: Int) -> TimestampNanos {
        TimestampNanos(Int64(bitPattern: p.loadBigEndian(at: i, as: UInt64.self) ^ (1 << 63)))
    }

    /// Appends an entry's key and then its value to `out`; returns the key's length.
    @inline(__always)
    static func appendEntry(user: UnsafeRawBufferPointer, position: EntryPosition, location: BatchLocation, locator: RecordLocator? = nil,
                            into out: ByteWriter) -> Int {
        let start = out.count
        userPrefix(user, into: out)
        appendPosition(position, into: out)
        let keyBytes = out.count - start
        out.appendBigEndian(location.segmentBase.rawValue)
        out.appendBigEndian(location.position.rawValue)
        if let l = locator {
            out.appendBigEndian(l.blockStart)
            out.appendBigEndian(l.blockSizeField)
            out.appendBigEndian(l.inBlock)
            out.appendBigEndian(l.length)
            out.appendBigEndian(l.crc)
        }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: out.base + start, count: out.count - start))
        out.appendBigEndian(crc)
        return keyBytes
    }

    /// time | topic | 0x00 | partition | offset: an entry's place within its user.
    static func appendPosition(_ p: EntryPosition, into out: ByteWriter) {
        encodeTime(p.time, into: out)
        out.append(p.topic)
        out.append(0)
        out.appendBigEndian(UInt32(bitPattern: p.partition))
        out.appendBigEndian(UInt64(bitPattern: p.offset.rawValue))
    }

    /// Reads an entry row; nil when its bytes do not hold together (a CRC that does not
    /// match, lengths that do not add up): damage, which the caller reports.
    static func decodeEntry(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> EntryRow? {
        guard value.count == entryValueBytes || value.count == entryValueLocatedBytes, key.count > 3, key[0] == entryTag else { return nil }
        let crcOffset = value.count - 4
        var crc = CRC32C.checksum(key)
        crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: value[..<crcOffset]), continuing: crc)
        guard crc == value.loadBigEndian(at: crcOffset, as: UInt32.self) else { return nil }
        let userCount = Int(key.loadBigEndian(at: 1, as: UInt16.self))
        var i = 3 + userCount
        guard key.count > i + timeBytes + 1 + partitionBytes + offsetBytes else { return nil }
        let time = decodeTime(key, at: i)
        i += timeBytes
        guard let nul = key[i...].firstIndex(of: 0), key.count == nul + 1 + partitionBytes + offsetBytes else { return nil }
        let topic = String(decoding: key[i..<nul], as: UTF8.self)
        i = nul + 1
        let partition = Int32(bitPattern: key.loadBigEndian(at: i, as: UInt32.self))
        let offset = Offset(Int64(bitPattern: key.loadBigEndian(at: i + partitionBytes, as: UInt64.self)))
        let location = BatchLocation(segmentBase: Offset(value.loadBigEndian(at: entryValueSegmentOffset, as: Int64.self)),
                                     position: FilePosition(value.loadBigEndian(at: entryValuePositionOffset, as: Int64.self)))
        var locator: RecordLocator?
        if value.count == entryValueLocatedBytes {
            let l = entryValueLocatorOffset
            locator = RecordLocator(blockStart: value.loadBigEndian(at: l, as: UInt32.self), blockSizeField: value.loadBigEndian(at: l + 4, as: UInt32.self),
                                    inBlock: value.loadBigEndian(at: l + 8, as: UInt32.self), length: value.loadBigEndian(at: l + 12, as: UInt32.self),
                                    crc: value.loadBigEndian(at: l + 16, as: UInt32.self))
        }
        return EntryRow(position: EntryPosition(time: time, topic: topic, partition: partition, offset: offset), location: location, locator: locator)
    }

    // MARK: - Progress rows

    static func progressKey(_ tp: TopicPartition) -> [UInt8] {
        var key = [progressTag]
        key += Array(tp.topic.utf8)
        key.append(0)
        withUnsafeBytes(of: UInt32(bitPattern: tp.partition).bigEndian) { key += $0 }
        return key
    }

    static func progressValue(_ p: PartitionProgress, key: [UInt8]) -> [UInt8] {
        let out = ByteWriter(capacity: progressValueBytes)
        out.appendBigEndian(p.nextOffset.rawValue)
        out.appendBigEndian(p.lastBatchBase.rawValue)
        out.appendBigEndian(p.lastBatchCRC)
        var crc = key.withUnsafeBytes { CRC32C.checksum($0) }
        crc = CRC32C.checksum(out.bytes, continuing: crc)
        out.appendBigEndian(crc)
        return Array(out.bytes)
    }

    static func decodeProgress(key: [UInt8], value: [UInt8]) -> (TopicPartition, PartitionProgress)? {
        guard key.count > 1 + 1 + partitionBytes, key[0] == progressTag, value.count == progressValueBytes,
              let nul = key.firstIndex(of: 0), nul == key.count - 1 - partitionBytes else { return nil }
        return value.withUnsafeBytes { v -> (TopicPartition, PartitionProgress)? in
            var crc = key.withUnsafeBytes { CRC32C.checksum($0) }
            crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: v[..<progressCRCOffset]), continuing: crc)
            guard crc == v.loadBigEndian(at: progressCRCOffset, as: UInt32.self) else { return nil }
            let topic = String(decoding: key[1..<nul], as: UTF8.self)
            let partition = key.withUnsafeBytes { Int32(bitPattern: $0.loadBigEndian(at: nul + 1, as: UInt32.self)) }
            let p = PartitionProgress(nextOffset: Offset(v.loadBigEndian(at: progressNextOffset, as: Int64.self)),
                                      lastBatchBase: Offset(v.loadBigEndian(at: progressBatchBaseOffset, as: Int64.self)),
                                      lastBatchCRC: v.loadBigEndian(at: progressBatchCRCOffset, as: UInt32.self))
            return (TopicPartition(topic, partition), p)
        }
    }

    /// The first key after every progress row ('p' + 1).
    static let progressEnd: [UInt8] = [progressTag + 1]
}

/// One entry row read back: where it sorts, where its record's batch is, and where the
/// record is inside it (when the row says).
struct EntryRow: Equatable {
    var position: EntryPosition
    var location: BatchLocation
    var locator: RecordLocator?
}

/// An entry's place in a user's history: the order of pages.
public struct EntryPosition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var time: TimestampNanos
    public var topic: String
    public var partition: Int32
    public var offset: Offset

    public init(time: TimestampNanos, topic: String, partition: Int32, offset: Offset) {
        self.time = time
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// Time, then topic name (byte order), partition, offset: the key's byte order.
    public static func < (a: EntryPosition, b: EntryPosition) -> Bool {
        if a.time != b.time { return a.time < b.time }
        if a.topic != b.topic { return Array(a.topic.utf8).lexicographicallyPrecedes(Array(b.topic.utf8)) }
        if a.partition != b.partition { return a.partition < b.partition }
        return a.offset < b.offset
    }

    public var description: String { "\(time.decimalSeconds) \(topic)/\(partition)@\(offset)" }
}

/// How far one partition is indexed: every record below `nextOffset` is. The last batch
/// read (base offset and CRC) lets a reopened index check that the log it describes is
/// still the log on disk (a topic deleted and recreated, a tail lost to a power loss).
struct PartitionProgress: Equatable, Sendable {
    var nextOffset: Offset
    var lastBatchBase: Offset
    var lastBatchCRC: UInt32

    static let start = PartitionProgress(nextOffset: .zero, lastBatchBase: Offset(-1), lastBatchCRC: 0)
}
