import CPrefetch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Interns keys read from records as dense ids `0..<count`, looking them up by their
/// bytes where they lie (inside the inflated batch). No String is made: a new key's bytes
/// are copied once into an arena, and results are written from there (`withKey`).
///
/// Hand-written because Swift's `Dictionary` needs an owned `Hashable` key per lookup —
/// a String built from the bytes (UTF-8 validation, NFC-aware hashing) cost about a
/// tenth of a windowed replay's CPU — and no mirrored package maps borrowed bytes.
/// Open addressing with linear probing (load at most 0.7); a slot holds 32 bits of the
/// hash, the id and the key's first 16 bytes, so looking up a key of up to 16 bytes (ids,
/// cities) in a table far larger than the cache touches one cache line; a longer key's
/// tail is compared in the arena. A large table asks for huge pages (`HugePageMemory`). The hash is seeded per process, so crafted keys cannot be
/// aimed at one chain. Append-only: an operator that forgets keys drops its whole index (a
/// closed window) or keeps its keys for good (the matcher's users).
///
/// Ids follow first appearance, so anything ordered by id is as deterministic as the
/// input; results are ordered by key, never by hash.
final class KeyIndex {
    /// One slot: the key's hash tag and id, and its first 16 bytes inline — a lookup of a
    /// key of up to 16 bytes reads one slot and nothing else. 32 bytes.
    private struct Slot {
        var tagAndId: UInt64  // hash tag << 32 | (id + 1); 0 = empty
        var w0: UInt64  // the first 16 bytes, zero-padded
        var w1: UInt64
        var count: Int32
        var start: Int32  // in `arena`
    }

    /// Every key's bytes, by id: key `id` is `arena[starts[id]..<starts[id + 1]]`.
    private var arena: [UInt8] = []
    private var starts: [Int32] = [0]
    private var slots: UnsafeMutablePointer<Slot>
    private var capacity: Int
    private var mask: Int

    private static let processSeed: UInt64 = UInt64.random(in: .min ... .max)
    /// `processSeed`, read once: a static is a lazy global, checked at every use.
    private let seed = KeyIndex.processSeed

    init(capacity: Int = 16) {
        var n = 16
        while n * 7 < capacity * 10 { n <<= 1 }
        self.capacity = n
        mask = n - 1
        slots = HugePageMemory.allocate(Slot.self, capacity: n)
        slots.initialize(repeating: Slot(tagAndId: 0, w0: 0, w1: 0, count: 0, start: 0), count: n)
    }

    deinit { HugePageMemory.deallocate(slots, capacity: capacity) }

    /// Forgets every key (keeping the table's memory); ids start from 0 again.
    func removeAll() {
        arena.removeAll(keepingCapacity: true)
        starts = [0]
        slots.update(repeating: Slot(tagAndId: 0, w0: 0, w1: 0, count: 0, start: 0), count: capacity)
    }

    var count: Int { starts.count - 1 }

    /// The id of `key`, interning it if new.
    @inline(__always)
    func id(of key: UnsafeRawBufferPointer) -> Int32 {
        let (w0, w1) = Self.prefix(key)
        let h = Self.hash(key, w0, w1, seed: seed)
        let (id, empty) = probe(key, w0, w1, h)
        return id ?? insert(key, w0, w1, tag: h >> 32, slot: empty)
    }

    /// The id of `key` if it is interned, else nil and the empty slot where it would go.
    @inline(__always)
    private func probe(_ key: UnsafeRawBufferPointer, _ w0: UInt64, _ w1: UInt64, _ h: UInt64) -> (Int32?, Int) {
        let tag = h >> 32
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let s = slots[i]
            if s.tagAndId == 0 { return (nil, i) }
            if s.tagAndId >> 32 == tag, Int(s.count) == key.count, s.w0 == w0, s.w1 == w1, key.count <= 16 || matchesTail(s, key) {
                return (Int32(truncatingIfNeeded: s.tagAndId & 0xFFFF_FFFF) - 1, i)
            }
            i = (i + 1) & mask
        }
    }

    /// Starts loading the slot where `key`'s probe begins, for a lookup soon after (the
    /// table is far larger than the cache: without it a lookup waits for memory).
    @inline(__always)
    func prefetch(_ key: UnsafeRawBufferPointer) {
        let (w0, w1) = Self.prefix(key)
        kappa_prefetch(slots + (Int(truncatingIfNeeded: Self.hash(key, w0, w1, seed: seed)) & mask))
    }

    /// The id of `key` if it is interned (nothing is added).
    @inline(__always)
    func find(_ key: UnsafeRawBufferPointer) -> Int32? {
        let (w0, w1) = Self.prefix(key)
        return probe(key, w0, w1, Self.hash(key, w0, w1, seed: seed)).0
    }

    /// The id of a key given as a String (tests, restored checkpoints).
    func id(of key: String) -> Int32 {
        var k = key
        return k.withUTF8 { id(of: UnsafeRawBufferPointer($0)) }
    }

    /// Calls `body` with the bytes of key `id`, valid during the call (the index must not
    /// change meanwhile).
    @inline(__always)
    func withKey<R>(_ id: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try arena.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[Int(starts[id])..<Int(starts[id + 1])])) }
    }

    /// Key `id` as a String (checkpoints, queries, tests: not per event).
    func key(_ id: Int) -> String { withKey(id) { String(decoding: $0, as: UTF8.self) } }

    /// Ids ordered by their keys' UTF-8 bytes (= code point order): output and
    /// checkpoints that do not depend on hashing.
    func sortedByKey(_ ids: [Int]) -> [Int] {
        arena.withUnsafeBytes { a in
            ids.sorted { x, y in Self.precedes(a, Int(starts[x]), Int(starts[x + 1]), Int(starts[y]), Int(starts[y + 1])) }
        }
    }

    /// Key `x` orders before key `y` (UTF-8 bytes).
    func precedes(_ x: Int, _ y: Int) -> Bool {
        arena.withUnsafeBytes { Self.precedes($0, Int(starts[x]), Int(starts[x + 1]), Int(starts[y]), Int(starts[y + 1])) }
    }

    @inline(__always)
    private static func precedes(_ a: UnsafeRawBufferPointer, _ xs: Int, _ xe: Int, _ ys: Int, _ ye: Int) -> Bool {
        let xn = xe - xs, yn = ye - ys
        let n = min(xn, yn)
        if n > 0 {
            let c = memcmp(a.baseAddress! + xs, a.baseAddress! + ys, n)
            if c != 0 { return c < 0 }
        }
        return xn < yn
    }

    private func matchesTail(_ s: Slot, _ key: UnsafeRawBufferPointer) -> Bool {
        arena.withUnsafeBytes { memcmp($0.baseAddress! + Int(s.start) + 16, key.baseAddress! + 16, key.count - 16) == 0 }
    }

    private func insert(_ key: UnsafeRawBufferPointer, _ w0: UInt64, _ w1: UInt64, tag: UInt64, slot: Int) -> Int32 {
        precondition(arena.count + key.count < Int32.max && count < Int32.max - 1, "key index full")
        let id = count
        let start = Int32(arena.count)
        arena.append(contentsOf: key)
        starts.append(Int32(arena.count))
        slots[slot] = Slot(tagAndId: tag << 32 | UInt64(id + 1), w0: w0, w1: w1, count: Int32(key.count), start: start)
        if count * 10 > capacity * 7 { grow() }
        return Int32(id)
    }

    private func grow() {
        let n = capacity * 2
        let fresh = HugePageMemory.allocate(Slot.self, capacity: n)
        fresh.initialize(repeating: Slot(tagAndId: 0, w0: 0, w1: 0, count: 0, start: 0), count: n)
        let m = n - 1
        for j in 0..<capacity where slots[j].tagAndId != 0 {
            let s = slots[j]
            let h: UInt64
            if s.count <= 16 {
                var words = (s.w0, s.w1)
                h = withUnsafeBytes(of: &words) { Self.hash(UnsafeRawBufferPointer(rebasing: $0[0..<Int(s.count)]), s.w0, s.w1, seed: seed) }
            } else {
                h = arena.withUnsafeBytes { Self.hash(UnsafeRawBufferPointer(rebasing: $0[Int(s.start)..<Int(s.start + s.count)]), s.w0, s.w1, seed: seed) }
            }
            var i = Int(truncatingIfNeeded: h) & m
            while fresh[i].tagAndId != 0 { i = (i + 1) & m }
            fresh[i] = s
        }
        HugePageMemory.deallocate(slots, capacity: capacity)
        slots = fresh
        capacity = n
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
        if n >= 4 {
            // Two overlapping 4-byte loads (ids such as "u073046"): the shared bytes agree.
            let low = UInt64(key.loadUnaligned(as: UInt32.self).littleEndian)
            let high = UInt64(key.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self).littleEndian)
            return (low | high << UInt64(8 * (n - 4)), 0)
        }
        var w: UInt64 = 0
        for i in 0..<n { w |= UInt64(key[i]) << UInt64(8 * i) }
        return (w, 0)
    }

    /// A seeded multiply-xorshift hash: the prefix words, then any further 8-byte words.
    @inline(__always)
    static func hash(_ key: UnsafeRawBufferPointer, _ w0: UInt64, _ w1: UInt64, seed: UInt64) -> UInt64 {
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
