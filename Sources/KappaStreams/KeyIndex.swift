#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Interns keys read from records as dense ids `0..<count`, looking them up by their
/// bytes where they lie (inside the inflated batch): no String is made and nothing is
/// allocated for a key already seen; a String is made once, when a key first appears.
///
/// Hand-written because Swift's `Dictionary` needs an owned `Hashable` key per lookup —
/// a String built from the bytes (UTF-8 validation, NFC-aware hashing) cost about a
/// fifth of a windowed replay — and no mirrored package maps borrowed bytes.
/// Open addressing with linear probing; a slot holds 32 bits of the hash beside the id,
/// and keys of up to 16 bytes (ids, cities) are stored inline in their entry, so a
/// lookup in a table far larger than the cache touches two cache lines. Longer keys
/// live in an arena. The hash is seeded per process, so crafted keys cannot be aimed at
/// one chain. Append-only: an operator that forgets keys drops its whole index (a
/// closed window) or keeps its keys for good (the matcher's users).
///
/// Ids follow first appearance, so anything ordered by id is as deterministic as the
/// input; results are ordered by key, never by hash.
final class KeyIndex {
    private struct Entry {
        var w0: UInt64  // the first 16 bytes, zero-padded
        var w1: UInt64
        var count: Int32
        var start: Int32  // in `arena`, for keys longer than 16 bytes
    }

    private(set) var keys: [String] = []
    private var entries: [Entry] = []
    private var arena: [UInt8] = []
    private var slots: [UInt64]  // hash tag << 32 | (id + 1); 0 = empty
    private var mask: Int

    private static let seed: UInt64 = UInt64.random(in: .min ... .max)

    init(capacity: Int = 16) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        slots = Array(repeating: 0, count: n)
        mask = n - 1
    }

    var count: Int { keys.count }

    /// The id of `key`, interning it if new.
    @inline(__always)
    func id(of key: UnsafeRawBufferPointer) -> Int32 {
        let (w0, w1) = Self.prefix(key)
        let h = Self.hash(key, w0, w1)
        let tag = h >> 32
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = slots[i]
            if s == 0 { break }
            if s >> 32 == tag {
                let id = Int(truncatingIfNeeded: s & 0xFFFF_FFFF) - 1
                if matches(id, key, w0, w1) { return Int32(id) }
            }
            i = (i + 1) & mask
        }
        return insert(key, w0, w1, tag: tag, slot: i)
    }

    /// The id of a key given as a String (tests, restored checkpoints).
    func id(of key: String) -> Int32 {
        var k = key
        return k.withUTF8 { id(of: UnsafeRawBufferPointer($0)) }
    }

    /// Ids ordered by their keys' UTF-8 bytes (= code point order): deterministic
    /// output and checkpoints without comparing Strings.
    func sortedByKey(_ ids: [Int]) -> [Int] {
        arena.withUnsafeBytes { arena in
            entries.withUnsafeBufferPointer { entries in
                func bytes(_ id: Int, _ body: (UnsafeRawBufferPointer) -> Int32) -> Int32 {
                    let e = entries[id]
                    if e.count > 16 { return body(UnsafeRawBufferPointer(rebasing: arena[Int(e.start)..<Int(e.start + e.count)])) }
                    var words = (e.w0, e.w1)
                    return withUnsafeBytes(of: &words) { body(UnsafeRawBufferPointer(rebasing: $0[0..<Int(e.count)])) }
                }
                return ids.sorted { a, b in
                    bytes(a) { x in
                        bytes(b) { y in
                            let c = memcmp(x.baseAddress!, y.baseAddress!, min(x.count, y.count))
                            return c != 0 ? c : Int32(x.count) - Int32(y.count)
                        }
                    } < 0
                }
            }
        }
    }

    @inline(__always)
    private func matches(_ id: Int, _ key: UnsafeRawBufferPointer, _ w0: UInt64, _ w1: UInt64) -> Bool {
        let e = entries[id]
        guard Int(e.count) == key.count, e.w0 == w0, e.w1 == w1 else { return false }
        if e.count <= 16 { return true }
        return arena.withUnsafeBytes { memcmp($0.baseAddress! + Int(e.start) + 16, key.baseAddress! + 16, key.count - 16) == 0 }
    }

    private func insert(_ key: UnsafeRawBufferPointer, _ w0: UInt64, _ w1: UInt64, tag: UInt64, slot: Int) -> Int32 {
        precondition(key.count < Int32.max && arena.count + key.count < Int32.max, "key index full")
        let id = keys.count
        keys.append(String(decoding: key, as: UTF8.self))
        var start: Int32 = -1
        if key.count > 16 {
            start = Int32(arena.count)
            arena.append(contentsOf: key)
        }
        entries.append(Entry(w0: w0, w1: w1, count: Int32(key.count), start: start))
        slots[slot] = tag << 32 | UInt64(id + 1)
        if keys.count * 2 > slots.count { grow() }
        return Int32(id)
    }

    private func grow() {
        let n = slots.count * 2
        var fresh = [UInt64](repeating: 0, count: n)
        let m = n - 1
        for s in slots where s != 0 {
            let id = Int(truncatingIfNeeded: s & 0xFFFF_FFFF) - 1
            let e = entries[id]
            let h: UInt64
            if e.count <= 16 {
                var words = (e.w0, e.w1)
                h = withUnsafeBytes(of: &words) { Self.hash(UnsafeRawBufferPointer(rebasing: $0[0..<Int(e.count)]), e.w0, e.w1) }
            } else {
                h = arena.withUnsafeBytes { Self.hash(UnsafeRawBufferPointer(rebasing: $0[Int(e.start)..<Int(e.start + e.count)]), e.w0, e.w1) }
            }
            var i = Int(truncatingIfNeeded: h) & m
            while fresh[i] != 0 { i = (i + 1) & m }
            fresh[i] = s
        }
        slots = fresh
        mask = m
    }

    /// The first 16 bytes of `key` as two little-endian words, zero-padded.
    @inline(__always)
    static func prefix(_ key: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        let n = key.count
        if n >= 16 { return (key.loadUnaligned(as: UInt64.self), key.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        if n >= 8 {
            // The last 8 bytes, shifted so that the ones past the first word stay.
            let tail = key.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) >> UInt64(8 * (16 - n))
            return (key.loadUnaligned(as: UInt64.self), n == 8 ? 0 : tail)
        }
        var w: UInt64 = 0
        for i in 0..<n { w |= UInt64(key[i]) << UInt64(8 * i) }
        return (w, 0)
    }

    /// A seeded multiply-xorshift hash: the prefix words, then any further 8-byte words.
    @inline(__always)
    static func hash(_ key: UnsafeRawBufferPointer, _ w0: UInt64, _ w1: UInt64) -> UInt64 {
        let m: UInt64 = 0x9E37_79B9_7F4A_7C15
        var h = (seed ^ UInt64(key.count)) &* m
        h = (h ^ w0) &* m
        h ^= h >> 29
        h = (h ^ w1) &* m
        h ^= h >> 29
        let n = key.count
        if n > 16 {
            var i = 16
            while i + 8 <= n {
                h = (h ^ key.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* m
                h ^= h >> 29
                i += 8
            }
            if i < n {
                h = (h ^ (key.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) >> UInt64(8 * (8 - (n - i))))) &* m
                h ^= h >> 29
            }
        }
        h = (h ^ (h >> 32)) &* 0xD6E8_FEB8_6659_FD93
        return h ^ (h >> 32)
    }
}
