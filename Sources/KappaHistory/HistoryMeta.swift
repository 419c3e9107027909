import KappaCore
import KappaFormat

/// What the records read so far came to: written with every commit, in the same
/// transaction as the rows and offsets they count, so they stay exact across kill -9.
public struct HistoryCounts: Equatable, Sendable, Codable {
    /// Records with a user, indexed.
    public var indexed: Int64 = 0
    /// Values that are not JSON objects (Kafka clients may write anything): skipped.
    public var notJSON: Int64 = 0
    /// JSON records whose user field is missing, null, not a string or number, empty, or
    /// longer than 1 KiB: skipped.
    public var withoutUser: Int64 = 0
    /// Indexed records whose time field is missing or does not parse: their record
    /// timestamp was used instead.
    public var timeFromRecord: Int64 = 0

    public init() {}

    public var read: Int64 { indexed + notJSON + withoutUser }
}

/// The index's identity row (`'m'`): which index this is, and what it was built with.
/// An index whose meta row is missing, does not check out, or names other fields is not
/// this index (foreign, damaged, or of another configuration) and is rebuilt.
///
/// ```
/// magic "KHIX" u32 | version u16 | user field length u16 | user field | time field length u16 | time field
/// | indexed i64 | not JSON i64 | without user i64 | time from record i64 | CRC-32C u32 (of everything before)
/// ```
struct HistoryMeta: Equatable {
    static let magic: UInt32 = 0x4B48_4958  // "KHIX"
    /// Bump when a row layout changes: an index of another version is rebuilt.
    static let version: UInt16 = 1

    var userField: String
    var timeField: String
    var counts = HistoryCounts()

    func encoded() -> [UInt8] {
        let out = ByteWriter(capacity: 128)
        out.appendBigEndian(Self.magic)
        out.appendBigEndian(Self.version)
        for field in [userField, timeField] {
            out.appendBigEndian(UInt16(field.utf8.count))
            out.append(field)
        }
        for n in [counts.indexed, counts.notJSON, counts.withoutUser, counts.timeFromRecord] { out.appendBigEndian(n) }
        out.appendBigEndian(CRC32C.checksum(out.bytes))
        return Array(out.bytes)
    }

    /// Why a meta row is not this index's.
    struct Problem: Error {
        var reason: String
    }

    /// The decoded row, or why it is not this index's.
    static func decode(_ bytes: [UInt8]) -> Result<HistoryMeta, Problem> {
        bytes.withUnsafeBytes { b -> Result<HistoryMeta, Problem> in
            guard b.count >= 4 + 2 + 2 + 2 + 32 + 4 else { return .failure(Problem(reason: "meta row of \(b.count) bytes is too short")) }
            let crcAt = b.count - 4
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[..<crcAt])) == b.loadBigEndian(at: crcAt, as: UInt32.self) else {
                return .failure(Problem(reason: "meta row CRC-32C does not match"))
            }
            guard b.loadBigEndian(at: 0, as: UInt32.self) == magic else { return .failure(Problem(reason: "not a Kappa history index (magic)")) }
            let v = b.loadBigEndian(at: 4, as: UInt16.self)
            guard v == version else { return .failure(Problem(reason: "index format version \(v), this Kappa writes \(version)")) }
            var i = 6
            var fields: [String] = []
            for _ in 0..<2 {
                guard i + 2 <= crcAt else { return .failure(Problem(reason: "meta row is truncated")) }
                let n = Int(b.loadBigEndian(at: i, as: UInt16.self))
                i += 2
                guard i + n <= crcAt else { return .failure(Problem(reason: "meta row is truncated")) }
                fields.append(String(decoding: b[i..<(i + n)], as: UTF8.self))
                i += n
            }
            guard i + 32 == crcAt else { return .failure(Problem(reason: "meta row has \(crcAt - i) bytes of counts, expected 32")) }
            var meta = HistoryMeta(userField: fields[0], timeField: fields[1])
            meta.counts.indexed = b.loadBigEndian(at: i, as: Int64.self)
            meta.counts.notJSON = b.loadBigEndian(at: i + 8, as: Int64.self)
            meta.counts.withoutUser = b.loadBigEndian(at: i + 16, as: Int64.self)
            meta.counts.timeFromRecord = b.loadBigEndian(at: i + 24, as: Int64.self)
            return .success(meta)
        }
    }
}
