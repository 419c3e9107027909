import KappaCore
import KappaFormat

/// Binary encoding for checkpoints and internal records: big-endian fixed-width
/// integers, zigzag varints, length-prefixed strings. `StateReader` checks every length
/// against what is left, so a corrupt checkpoint fails with a reason, never a crash.
extension ByteWriter {
    func put(_ v: Int64) { appendVarint(v) }
    func put(_ v: Int) { appendVarint(Int64(v)) }
    func put(_ v: Bool) { append(v ? 1 : 0) }
    func put(_ v: Int128) {
        appendBigEndian(Int64(truncatingIfNeeded: v >> 64))
        appendBigEndian(UInt64(truncatingIfNeeded: v))
    }
    func put(_ v: Decimal9) { put(v.raw) }
    func put(_ s: String) {
        put(s.utf8.count)
        append(s)
    }
    /// Bytes as `put(String)` writes a string's UTF-8.
    func put(_ bytes: UnsafeRawBufferPointer) {
        put(bytes.count)
        append(bytes)
    }
    func put(_ v: TimestampNanos?) {
        put(v != nil)
        if let v { put(v.rawValue) }
    }
}

struct StateReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    var isAtEnd: Bool { position == bytes.count }

    mutating func int64() throws(Failure) -> Int64 {
        guard position < bytes.count, let (v, n) = Varint.read(bytes.baseAddress! + position, limit: bytes.count - position) else {
            throw Failure(description: "truncated varint at byte \(position)")
        }
        position += n
        return v
    }

    mutating func int() throws(Failure) -> Int {
        let v = try int64()
        guard v >= Int64(Int.min), v <= Int64(Int.max) else { throw Failure(description: "integer out of range") }
        return Int(v)
    }

    mutating func count(max: Int = 1 << 28) throws(Failure) -> Int {
        let n = try int()
        guard n >= 0, n <= max else { throw Failure(description: "count \(n) out of range at byte \(position)") }
        return n
    }

    mutating func bool() throws(Failure) -> Bool {
        guard position < bytes.count else { throw Failure(description: "truncated bool") }
        defer { position += 1 }
        return bytes[position] != 0
    }

    mutating func int128() throws(Failure) -> Int128 {
        guard position + 16 <= bytes.count else { throw Failure(description: "truncated int128") }
        let hi = bytes.loadBigEndian(at: position, as: Int64.self)
        let lo = bytes.loadBigEndian(at: position + 8, as: UInt64.self)
        position += 16
        return Int128(hi) << 64 | Int128(lo)
    }

    mutating func decimal() throws(Failure) -> Decimal9 { Decimal9(raw: try int128()) }

    /// What `string()` reads, as the checkpoint's bytes (valid while they are).
    mutating func stringBytes() throws(Failure) -> UnsafeRawBufferPointer {
        let n = try count(max: 1 << 24)
        guard position + n <= bytes.count else { throw Failure(description: "truncated string") }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    mutating func string() throws(Failure) -> String {
        let n = try count(max: 1 << 24)
        guard position + n <= bytes.count else { throw Failure(description: "truncated string") }
        defer { position += n }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)]), as: UTF8.self)
    }

    mutating func timestamp() throws(Failure) -> TimestampNanos? {
        try bool() ? TimestampNanos(try int64()) : nil
    }
}
