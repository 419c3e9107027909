import KappaCore

/// A fixed-point decimal with nine fractional digits in an Int128: the number type of
/// aggregates. Sums of these are exact and independent of order, so a replay, which
/// folds events in a different interleaving than the live run, computes the same bits.
/// A JSON number becomes `round(value × 10⁹)` (exact for every number with at most
/// nine fractional digits and fewer than ~16 significant digits, such as fares).
public struct Decimal9: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var raw: Int128
    public static let scale: Int128 = 1_000_000_000

    @inlinable public init(raw: Int128) { self.raw = raw }

    public init(integer: Int64) { raw = Int128(integer) * Self.scale }

    /// nil for a value too large to hold (|x| ≥ 1.7e29) or not finite.
    public init?(double: Double) {
        let scaled = (double * 1e9).rounded(.toNearestOrEven)
        if abs(scaled) < 9.2e18 {  // the common case: one instruction, not Int128's generic conversion
            raw = Int128(Int64(scaled))
            return
        }
        guard scaled.isFinite, abs(scaled) < 1.7e38 else { return nil }
        raw = Int128(scaled)
    }

    public static func < (a: Decimal9, b: Decimal9) -> Bool { a.raw < b.raw }
    public static func + (a: Decimal9, b: Decimal9) -> Decimal9 { Decimal9(raw: a.raw + b.raw) }

    /// This divided by `n`, rounded half to even at the ninth digit.
    public func divided(by n: Int64) -> Decimal9 {
        precondition(n > 0)
        let d = Int128(n)
        let (quotient, r) = raw.quotientAndRemainder(dividingBy: d)
        var q = quotient
        let twice = r.magnitude * 2
        if twice > d.magnitude || (twice == d.magnitude && q & 1 == 1) { q += raw < 0 ? -1 : 1 }
        return Decimal9(raw: q)
    }

    /// The shortest exact decimal: "23.5", "40", "-0.000000001".
    public var description: String {
        var out: [UInt8] = []
        append(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The most bytes `write` writes: a sign, 30 integer digits (|raw| < 2¹²⁷ / 10⁹),
    /// a point, 9 fractional digits.
    public static let textBytesMax = 41

    /// Writes the shortest exact decimal at `p` (room for `textBytesMax`); returns the
    /// bytes written.
    public func write(into p: UnsafeMutableRawPointer) -> Int {
        var n = 0
        if raw < 0 {
            p.storeBytes(of: UInt8(ascii: "-"), as: UInt8.self)
            n = 1
        }
        let m = raw.magnitude
        let scale = UInt128(Self.scale)
        let whole = m / scale
        let frac = m % scale
        if whole <= UInt128(UInt64.max) {  // every realistic value: 64-bit arithmetic
            n += writeDigits(UInt64(whole), into: p + n)
        } else {
            var digits = 0
            var probe = whole
            repeat {
                probe /= 10
                digits += 1
            } while probe > 0
            var w = whole
            for i in stride(from: digits - 1, through: 0, by: -1) {
                (p + n + i).storeBytes(of: UInt8(ascii: "0") + UInt8(w % 10), as: UInt8.self)
                w /= 10
            }
            n += digits
        }
        return n + writeNinthsFraction(UInt64(frac), into: p + n)
    }

    public func append(to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(byteCount: Self.textBytesMax, alignment: 1) { buffer in
            let n = write(into: buffer.baseAddress!)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    /// Appends the shortest exact decimal.
    public func append(to out: ByteWriter) {
        out.reserve(Self.textBytesMax)
        out.count += write(into: out.base + out.count)
    }
}

/// Epoch-aligned window arithmetic on nanoseconds. Windows are half-open [start, end).
public enum WindowMath {
    /// Floor division (toward negative infinity).
    @inline(__always) public static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Starts of every window of `size` advancing by `advance` that contains `t`, ascending.
    public static func starts(containing t: Int64, size: Int64, advance: Int64) -> [Int64] {
        let last = floorDiv(t, advance) * advance
        var out: [Int64] = []
        var s = last - size + advance
        while s <= last {
            out.append(s)
            s += advance
        }
        return out
    }

    /// The latest window start containing `t` (the only one for tumbling windows).
    @inline(__always) public static func lastStart(containing t: Int64, advance: Int64) -> Int64 {
        floorDiv(t, advance) * advance
    }
}
