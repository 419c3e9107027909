/// An instant as integer nanoseconds since the Unix epoch (UTC). Event times are parsed
/// into this exactly: a Double holds only ~16 significant digits, and
/// "1457741907.959400112" has 19. Int64 nanoseconds reach the year 2262.
public struct TimestampNanos: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int64

    @inlinable public init(rawValue: Int64) { self.rawValue = rawValue }
    @inlinable public init(_ nanos: Int64) { self.rawValue = nanos }

    public static let nanosPerSecond: Int64 = 1_000_000_000
    public static let nanosPerMilli: Int64 = 1_000_000

    @inlinable public static func < (a: TimestampNanos, b: TimestampNanos) -> Bool { a.rawValue < b.rawValue }

    /// The instant `nanos` later (earlier when negative). Traps on overflow, as Int64 does.
    @inlinable public static func + (t: TimestampNanos, nanos: Int64) -> TimestampNanos { TimestampNanos(t.rawValue + nanos) }
    @inlinable public static func - (t: TimestampNanos, nanos: Int64) -> TimestampNanos { TimestampNanos(t.rawValue - nanos) }
    /// Nanoseconds from `b` to `a`.
    @inlinable public static func - (a: TimestampNanos, b: TimestampNanos) -> Int64 { a.rawValue - b.rawValue }

    /// Milliseconds since the epoch, rounded toward negative infinity (Kafka's unit).
    @inlinable public var millis: Int64 {
        let (q, r) = rawValue.quotientAndRemainder(dividingBy: Self.nanosPerMilli)
        return r < 0 ? q - 1 : q
    }

    /// The nanoseconds below the millisecond, 0..<1_000_000.
    @inlinable public var subMilliNanos: Int32 {
        Int32(truncatingIfNeeded: rawValue - millis * Self.nanosPerMilli)
    }

    @inlinable public init(millis: Int64, subMilliNanos: Int32 = 0) {
        self.rawValue = millis * Self.nanosPerMilli + Int64(subMilliNanos)
    }

    /// Epoch seconds as the shortest exact decimal string: "1457741907.9594001",
    /// "1457741907" when whole. This is the form of `time_utc` in every output.
    public var description: String { decimalSeconds }

    public var decimalSeconds: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(24)
        appendDecimalSeconds(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The most bytes `writeDecimalSeconds` writes: a sign, 19 digits, a point, 9 digits.
    public static let decimalSecondsBytesMax = 30

    /// Writes `decimalSeconds` as UTF-8 at `p` (room for `decimalSecondsBytesMax`);
    /// returns the bytes written. The one formatter every output uses.
    @inlinable
    public func writeDecimalSeconds(into p: UnsafeMutableRawPointer) -> Int {
        var n = 0
        if rawValue < 0 {
            p.storeBytes(of: UInt8(ascii: "-"), as: UInt8.self)
            n = 1
        }
        let magnitude = rawValue.magnitude
        n += writeDigits(magnitude / UInt64(Self.nanosPerSecond), into: p + n)
        return n + writeNinthsFraction(magnitude % UInt64(Self.nanosPerSecond), into: p + n)
    }

    /// Appends `decimalSeconds` as UTF-8.
    public func appendDecimalSeconds(to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(byteCount: Self.decimalSecondsBytesMax, alignment: 1) { buffer in
            let n = writeDecimalSeconds(into: buffer.baseAddress!)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }
}

/// Writes the decimal digits of `value` at `p` (at most 20); returns how many.
@inlinable
public func writeDigits(_ value: UInt64, into p: UnsafeMutableRawPointer) -> Int {
    var count = 1
    var probe = value
    while probe >= 10 {
        probe /= 10
        count += 1
    }
    var v = value
    for i in stride(from: count - 1, through: 0, by: -1) {
        (p + i).storeBytes(of: UInt8(ascii: "0") + UInt8(v % 10), as: UInt8.self)
        v /= 10
    }
    return count
}

/// Writes `fraction` billionths (0 ..< 1_000_000_000) as a decimal fraction without
/// trailing zeros — ".9594001" — at `p` (at most 10 bytes); nothing when it is 0.
/// Returns the bytes written. Shared by times (nanoseconds) and Decimal9 values.
@inlinable
public func writeNinthsFraction(_ fraction: UInt64, into p: UnsafeMutableRawPointer) -> Int {
    guard fraction != 0 else { return 0 }
    precondition(fraction < 1_000_000_000)
    p.storeBytes(of: UInt8(ascii: "."), as: UInt8.self)
    var f = fraction
    var digits = 9
    while f % 10 == 0 {
        f /= 10
        digits -= 1
    }
    for i in stride(from: digits, through: 1, by: -1) {
        (p + i).storeBytes(of: UInt8(ascii: "0") + UInt8(f % 10), as: UInt8.self)
        f /= 10
    }
    return digits + 1
}

/// Writes a signed decimal integer at `p` (at most 20 bytes); returns how many.
@inlinable
public func writeInteger(_ value: Int64, into p: UnsafeMutableRawPointer) -> Int {
    guard value < 0 else { return writeDigits(UInt64(value), into: p) }
    p.storeBytes(of: UInt8(ascii: "-"), as: UInt8.self)
    return 1 + writeDigits(value.magnitude, into: p + 1)
}

extension ByteWriter {
    /// Appends `t.decimalSeconds` as UTF-8.
    @inlinable
    public func appendDecimalSeconds(_ t: TimestampNanos) {
        reserve(TimestampNanos.decimalSecondsBytesMax)
        count += t.writeDecimalSeconds(into: base + count)
    }

    /// Appends a signed decimal integer as ASCII.
    @inlinable
    public func appendInteger(_ value: Int64) {
        reserve(20)
        count += writeInteger(value, into: base + count)
    }
}

/// Appends a signed decimal integer as ASCII.
public func appendInteger(_ value: Int64, to out: inout [UInt8]) {
    withUnsafeTemporaryAllocation(byteCount: 20, alignment: 1) { buffer in
        let n = writeInteger(value, into: buffer.baseAddress!)
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
    }
}
