import KappaCore
import KappaFormat

/// Names and lists the files of one partition directory. A segment is identified by its
/// base offset, the offset of its first record, written as 20 zero-padded digits so that
/// names sort as offsets do (Kafka's convention).
public enum SegmentFiles {
    public static let logSuffix = ".log"
    public static let indexSuffix = ".index"
    public static let timeIndexSuffix = ".timeindex"
    public static let lockName = "lock"
    /// Bytes cut from a segment's tail are kept beside it as `<base>.log.torn-<offset>`
    /// (`-2`, `-3`… when that name is taken): evidence, never read, never deleted.
    public static let tornInfix = ".log.torn-"

    public static func name(_ base: Offset) -> String {
        let digits = String(base.rawValue)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    public static func logPath(_ dir: String, _ base: Offset) -> String { dir + "/" + name(base) + logSuffix }
    public static func indexPath(_ dir: String, _ base: Offset) -> String { dir + "/" + name(base) + indexSuffix }
    public static func timeIndexPath(_ dir: String, _ base: Offset) -> String { dir + "/" + name(base) + timeIndexSuffix }
    public static func tornPath(_ dir: String, _ base: Offset, _ offset: Offset) -> String { dir + "/" + name(base) + tornInfix + String(offset.rawValue) }

    /// Base offsets of the partition's segments (from its .log files), ascending.
    /// Index files without a log (a crash mid-delete) and torn-tail evidence are ignored.
    public static func bases(in dir: String, fileSystem fs: any FileSystem = PosixFileSystem.shared) throws(KappaError) -> [Offset] {
        var out: [Offset] = []
        for name in try fs.list(dir) where name.hasSuffix(logSuffix) {
            let stem = name.dropLast(logSuffix.count)
            guard stem.count == 20, let v = Int64(stem) else { continue }
            out.append(Offset(v))
        }
        return out.sorted()
    }
}

/// The sparse offset index of one segment: 8-byte entries, big-endian
/// `relativeOffset: UInt32` (batch base offset − segment base) and `position: UInt32`
/// (where that batch starts in the .log). Entries strictly increase in both. One entry per
/// `Limits.indexIntervalBytes` of log. The index is a cache of the log: entries that do
/// not check out against the log are dropped and rebuilt, never trusted.
public enum OffsetIndex {
    public static let entryBytes = 8

    public struct Entry: Equatable, Sendable {
        public var offset: Offset
        public var position: FilePosition
        public init(offset: Offset, position: FilePosition) {
            self.offset = offset
            self.position = position
        }
    }

    /// Loads the entries that are well-formed and point inside a log of `logBytes`.
    /// Returns the valid prefix; a torn or out-of-order entry ends it. A missing file
    /// has no entries (the index is a cache).
    public static func load(path: String, base: Offset, logBytes: Int64, fileSystem fs: any FileSystem = PosixFileSystem.shared) throws(KappaError) -> [Entry] {
        guard let bytes = try fs.readFileIfExists(path, limit: 64 << 20) else { return [] }
        return decode(bytes, base: base, logBytes: logBytes)
    }

    /// The valid prefix of an index file's bytes (see `load`).
    static func decode(_ bytes: [UInt8], base: Offset, logBytes: Int64) -> [Entry] {
        var entries: [Entry] = []
        entries.reserveCapacity(bytes.count / entryBytes)
        bytes.withUnsafeBytes { raw in
            var i = 0
            while i + entryBytes <= raw.count {
                let rel = raw.loadBigEndian(at: i, as: UInt32.self)
                let pos = raw.loadBigEndian(at: i + 4, as: UInt32.self)
                let entry = Entry(offset: base + Int64(rel), position: FilePosition(Int64(pos)))
                if let last = entries.last, !(entry.offset > last.offset && entry.position > last.position) { break }
                if entry.position.rawValue >= logBytes { break }
                entries.append(entry)
                i += entryBytes
            }
        }
        return entries
    }

    /// The last entry at or below `target`, if any (binary search).
    public static func floor(_ entries: [Entry], _ target: Offset) -> Entry? {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].offset <= target { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : entries[lo - 1]
    }

    static func encode(_ entry: Entry, base: Offset, into out: ByteWriter) {
        out.appendBigEndian(UInt32(entry.offset - base))
        out.appendBigEndian(UInt32(entry.position.rawValue))
    }
}

/// The sparse time index of one segment: 12-byte entries, big-endian
/// `timestampMillis: Int64` (the largest timestamp in the segment up to and including
/// the batch) and `relativeOffset: UInt32` (that batch's base offset − segment base).
/// Both never decrease. The last entry of a closed segment holds its largest timestamp.
/// A cache like the offset index: retention by age reads the segment's batch headers,
/// not this file, so a damaged entry can never delete data early.
public enum TimeIndex {
    public static let entryBytes = 12

    public struct Entry: Equatable, Sendable {
        public var timestampMillis: Int64
        public var offset: Offset
        public init(timestampMillis: Int64, offset: Offset) {
            self.timestampMillis = timestampMillis
            self.offset = offset
        }
    }

    public static func load(path: String, base: Offset, nextOffset: Offset? = nil,
                            fileSystem fs: any FileSystem = PosixFileSystem.shared) throws(KappaError) -> [Entry] {
        guard let bytes = try fs.readFileIfExists(path, limit: 64 << 20) else { return [] }
        return decode(bytes, base: base, nextOffset: nextOffset)
    }

    /// The valid prefix of a time index file's bytes (see `load`).
    static func decode(_ bytes: [UInt8], base: Offset, nextOffset: Offset?) -> [Entry] {
        var entries: [Entry] = []
        bytes.withUnsafeBytes { raw in
            var i = 0
            while i + entryBytes <= raw.count {
                let ts = raw.loadBigEndian(at: i, as: Int64.self)
                let rel = raw.loadBigEndian(at: i + 8, as: UInt32.self)
                let entry = Entry(timestampMillis: ts, offset: base + Int64(rel))
                if let last = entries.last, entry.timestampMillis < last.timestampMillis || entry.offset < last.offset { break }
                if let nextOffset, entry.offset >= nextOffset { break }
                entries.append(entry)
                i += entryBytes
            }
        }
        return entries
    }

    /// The offset to start scanning from to find the first record with a timestamp at
    /// or after `millis`: the entry before the first entry that reaches `millis`.
    public static func scanStart(_ entries: [Entry], atOrAfter millis: Int64, base: Offset) -> Offset {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].timestampMillis < millis { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? base : entries[lo - 1].offset
    }

    static func encode(_ entry: Entry, base: Offset, into out: ByteWriter) {
        out.appendBigEndian(entry.timestampMillis)
        out.appendBigEndian(UInt32(entry.offset - base))
    }
}
