import KappaCore
import KappaStreams

/// A row's identity in a job's store, in the order pages walk: (key, start) for windows
/// and sessions (start in nanoseconds), (ticket id, 0) for matches. Comparable, so a page
/// cursor is simply the last identity returned (keyset paging): rows that exist when
/// paging starts are returned exactly once whatever arrives meanwhile, because an
/// identity never changes its place in the order.
struct RowID: Hashable, Comparable, Sendable {
    var key: String
    var start: Int64

    static func < (a: RowID, b: RowID) -> Bool { a.key != b.key ? a.key < b.key : a.start < b.start }

    /// The identity of a `ResultReader.Row` (`key \u{1F} start` for windows and sessions).
    init(_ row: ResultReader.Row) {
        if let sep = row.identity.firstIndex(of: "\u{1F}") {
            key = String(row.identity[..<sep])
            let start = row.identity[row.identity.index(after: sep)...]
            self.start = (try? EventTime.parse(String(start)).get())?.rawValue ?? 0
        } else {
            key = row.identity
            start = 0
        }
    }

    init(key: String, start: Int64) {
        self.key = key
        self.start = start
    }
}

/// A page cursor: the version it was made in and the last identity returned, as
/// base64url text. Opaque to clients; a cursor of another version is refused (its rows
/// would mix two versions' results).
struct PageCursor: Equatable {
    var version: Int
    var after: RowID

    var text: String {
        Base64URL.encode(Array("\(version)\n\(after.start)\n\(after.key)".utf8))
    }

    init(version: Int, after: RowID) {
        self.version = version
        self.after = after
    }

    init?(text: String) {
        guard let bytes = Base64URL.decode(text) else { return nil }
        let s = String(decoding: bytes, as: UTF8.self)
        let parts = s.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let v = Int(parts[0]), let start = Int64(parts[1]) else { return nil }
        version = v
        after = RowID(key: String(parts[2]), start: start)
    }
}

/// RFC 4648 base64url without padding.
enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i]), b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0, b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let n = b0 << 16 | b1 << 8 | b2
            let chars = min(4, (bytes.count - i) * 4 / 3 + 1)
            for k in 0..<chars { out.append(alphabet[Int((n >> (18 - 6 * UInt32(k))) & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt32] = []
        for c in text.utf8 {
            guard let v = alphabet.firstIndex(of: c) else { return nil }
            values.append(UInt32(v))
        }
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < values.count {
            let chunk = values[i..<min(i + 4, values.count)]
            var n: UInt32 = 0
            for (k, v) in chunk.enumerated() { n |= v << (18 - 6 * UInt32(k)) }
            let bytes = chunk.count - 1
            for k in 0..<bytes { out.append(UInt8((n >> (16 - 8 * UInt32(k))) & 0xFF)) }
            i += 4
        }
        return out
    }
}
