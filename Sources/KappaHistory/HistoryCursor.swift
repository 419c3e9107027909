import KappaCore
import KappaFormat

/// The opaque cursor of a history page: the position (time, topic, partition, offset) of
/// the last entry returned, so the next page starts strictly after it. It names no index
/// generation: positions are the order of pages whatever the index holds, so a cursor
/// stays valid across restarts and rebuilds.
///
/// Text: unpadded base64url of
/// `version u8 | time i64 | partition i32 | offset i64 | topic bytes | CRC-32C u32`
/// (big-endian; the CRC covers everything before it), so a cursor that was cut or
/// edited is refused (`invalidArgument`) rather than read as another position.
enum HistoryCursor {
    static let version: UInt8 = 1
    static let fixedBytes = 1 + 8 + 4 + 8
    static let crcBytes = 4

    static func encode(_ p: EntryPosition) -> String {
        let out = ByteWriter(capacity: 64)
        out.append(version)
        out.appendBigEndian(p.time.rawValue)
        out.appendBigEndian(p.partition)
        out.appendBigEndian(p.offset.rawValue)
        out.append(p.topic)
        out.appendBigEndian(CRC32C.checksum(out.bytes))
        return Base64URL.encode(out.bytes)
    }

    static func decode(_ text: String) throws(KappaError) -> EntryPosition {
        guard let bytes = Base64URL.decode(text), bytes.count > fixedBytes + crcBytes,
              bytes.count <= fixedBytes + Limits.nameBytesMax + crcBytes else { throw invalid(text) }
        let position = bytes.withUnsafeBytes { b -> EntryPosition? in
            let crcAt = b.count - crcBytes
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[..<crcAt])) == b.loadBigEndian(at: crcAt, as: UInt32.self),
                  b[0] == version else { return nil }
            let partition = b.loadBigEndian(at: 9, as: Int32.self)
            let offset = b.loadBigEndian(at: 13, as: Int64.self)
            guard partition >= 0, offset >= 0 else { return nil }
            return EntryPosition(time: TimestampNanos(b.loadBigEndian(at: 1, as: Int64.self)),
                                 topic: String(decoding: b[fixedBytes..<crcAt], as: UTF8.self), partition: partition, offset: Offset(offset))
        }
        guard let position else { throw invalid(text) }
        return position
    }

    private static func invalid(_ text: String) -> KappaError {
        KappaError(.invalidArgument, "cursor '\(text.prefix(80))' is not a cursor this server returned (cut or changed?)")
    }
}

/// RFC 4648 base64url without padding: cursors travel in URLs.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let values: [UInt8: UInt8] = Dictionary(uniqueKeysWithValues: alphabet.enumerated().map { ($1, UInt8($0)) })

    static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            var word: UInt32 = 0
            for j in 0..<3 { word = word << 8 | UInt32(j < n ? bytes[i + j] : 0) }
            for j in 0..<(n + 1) { out.append(alphabet[Int((word >> (18 - 6 * UInt32(j))) & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            let n = min(4, chars.count - i)
            var word: UInt32 = 0
            for j in 0..<4 {
                var v: UInt8 = 0
                if j < n {
                    guard let x = values[chars[i + j]] else { return nil }
                    v = x
                }
                word = word << 6 | UInt32(v)
            }
            for j in 0..<(n - 1) { out.append(UInt8((word >> (16 - 8 * UInt32(j))) & 0xFF)) }
            i += 4
        }
        return out
    }
}
