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

    /// Appends `decimalSeconds` as UTF-8 (no allocation beyond the array's growth).
    public func appendDecimalSeconds(to out: inout [UInt8]) {
        if rawValue < 0 { out.append(UInt8(ascii: "-")) }
        let magnitude = rawValue.magnitude
        let seconds = Int64(magnitude / UInt64(Self.nanosPerSecond))
        var fraction = Int64(magnitude % UInt64(Self.nanosPerSecond))
        appendInteger(seconds, to: &out)
        guard fraction != 0 else { return }
        out.append(UInt8(ascii: "."))
        var digits = 9
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        var divisor: Int64 = 1
        for _ in 1..<digits { divisor *= 10 }
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(fraction / divisor))
            fraction %= divisor
            divisor /= 10
        }
    }
}

/// Appends a signed decimal integer as ASCII.
public func appendInteger(_ value: Int64, to out: inout [UInt8]) {
    if value < 0 {
        out.append(UInt8(ascii: "-"))
        if value == .min {
            out.append(contentsOf: Array("9223372036854775808".utf8))
            return
        }
        appendInteger(-value, to: &out)
        return
    }
    if value < 10 {
        out.append(UInt8(ascii: "0") + UInt8(value))
        return
    }
    var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch on the stack
    withUnsafeMutableBytes(of: &tmp) { raw in
        var v = value
        var i = raw.count
        while v > 0 {
            i -= 1
            raw[i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
        }
        out.append(contentsOf: raw[i...])
    }
}
