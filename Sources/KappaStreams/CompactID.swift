#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A ride's or ticket's id as the matcher keeps it: its UTF-8 bytes as they lie in the
/// record, up to 15 of them inside the value, longer ones in memory of their own.
///
/// Plain bits: no reference count and no String per ride — copying a ride into and
/// out of `RideLists` is a move of words, and an id costs no allocation unless it is
/// longer than 15 bytes. Before, a `String` per ride cost UTF-8 validation at every ride
/// and retain/release at every move, about 5 % of a 1M-ride match replay's CPU.
///
/// Ownership is manual: whoever keeps a `CompactID` made by `init(_:)` frees it once
/// with `deallocate()` (`RideLists` for its rides, the matcher for its waiting tickets);
/// copies handed out are borrowed and valid until then.
struct CompactID {
    /// Inline: the bytes in order across both words (little-endian, as on every
    /// platform Kappa builds for), the count in the last byte.
    /// Out of line: `first` the address, `second` the count with `outOfLine` in the
    /// last byte.
    private var first: UInt64
    private var second: UInt64

    static let inlineMax = 15
    private static let outOfLine: UInt64 = 0xFF << 56

    @inline(__always)
    init(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        guard n <= Self.inlineMax else {
            self = Self.copiedOutOfLine(bytes)
            return
        }
        // Loads that overlap rather than a copy of `n` bytes: no call, no loop, and
        // never a byte outside `bytes`.
        var lo: UInt64 = 0, hi: UInt64 = 0
        if let p = bytes.baseAddress {
            if n >= 8 {
                lo = p.loadUnaligned(as: UInt64.self)
                hi = p.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) >> UInt64((16 - n) * 8)
            } else if n >= 4 {
                lo = UInt64(p.loadUnaligned(as: UInt32.self))
                    | UInt64(p.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)) << UInt64((n - 4) * 8)
            } else if n > 0 {
                lo = UInt64(p.load(as: UInt8.self))
                    | UInt64(p.load(fromByteOffset: n / 2, as: UInt8.self)) << UInt64(n / 2 * 8)
                    | UInt64(p.load(fromByteOffset: n - 1, as: UInt8.self)) << UInt64((n - 1) * 8)
            }
        }
        first = lo
        second = hi | UInt64(n) << 56
    }

    private init(first: UInt64, second: UInt64) {
        self.first = first
        self.second = second
    }

    @inline(never)
    private static func copiedOutOfLine(_ bytes: UnsafeRawBufferPointer) -> CompactID {
        let copy = malloc(bytes.count)!
        copy.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        return CompactID(first: UInt64(UInt(bitPattern: copy)), second: UInt64(bytes.count) | Self.outOfLine)
    }

    init(_ text: String) {
        var t = text
        self = t.withUTF8 { CompactID(UnsafeRawBufferPointer($0)) }
    }

    private var isInline: Bool { second & Self.outOfLine != Self.outOfLine }

    var count: Int { isInline ? Int(second >> 56) : Int(second & ~Self.outOfLine) }

    /// Frees an out-of-line id's bytes; this value and its copies are invalid after.
    func deallocate() {
        guard !isInline else { return }
        free(UnsafeMutableRawPointer(bitPattern: UInt(first)))
    }

    /// Calls `body` with the id's bytes (valid during the call).
    @inline(__always)
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if isInline {
            var me = self
            let n = count
            return withUnsafeBytes(of: &me) { body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return body(UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(first)), count: count))
    }

    var string: String { withBytes { String(decoding: $0, as: UTF8.self) } }

    /// An owned copy (which must be freed in turn).
    func copy() -> CompactID { withBytes { CompactID($0) } }
}

extension CompactID: Equatable {
    static func == (a: CompactID, b: CompactID) -> Bool {
        if a.isInline && b.isInline { return a.first == b.first && a.second == b.second }
        return a.withBytes { x in b.withBytes { y in x.elementsEqual(y) } }
    }
}

extension CompactID: CustomStringConvertible {
    var description: String { string }
}
