// Byte-level JSON building blocks: the hot path appends to a [UInt8] and never formats
// through String.

extension Array where Element == UInt8 {
    /// Appends the UTF-8 bytes of a string literal.
    @inline(__always)
    mutating func append(_ literal: StaticString) {
        append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// Appends `value` in decimal, left-padded with zeros to `width` digits. `value` must fit.
    @inline(__always)
    mutating func appendPadded(_ value: UInt64, width: Int) {
        let base = count
        append(contentsOf: repeatElement(UInt8(ascii: "0"), count: width))
        withUnsafeMutableBufferPointer { buffer in
            var v = value
            var i = base + width - 1
            while v != 0 && i >= base {
                buffer[i] = 0x30 &+ UInt8(truncatingIfNeeded: v % 10)
                v /= 10
                i -= 1
            }
        }
    }

    /// Appends `value` in decimal.
    @inline(__always)
    mutating func appendDecimal(_ value: UInt64) {
        var width = 1
        var v = value
        while v >= 10 {
            v /= 10
            width += 1
        }
        appendPadded(value, width: width)
    }

    /// Appends nanoseconds since the epoch (>= 0) as seconds with exactly nine fractional
    /// digits, e.g. `1457741907.959400112`, without the quotes.
    @inline(__always)
    mutating func appendEpochNanos(_ nanos: Int64) {
        let n = UInt64(nanos)
        appendDecimal(n / 1_000_000_000)
        append(UInt8(ascii: "."))
        appendPadded(n % 1_000_000_000, width: 9)
    }

    /// Appends an amount in cents as a JSON number with one or two decimals: 2350 → `23.5`,
    /// 2300 → `23.0`, 2375 → `23.75`.
    @inline(__always)
    mutating func appendCents(_ cents: Int64) {
        let c = UInt64(cents)
        appendDecimal(c / 100)
        append(UInt8(ascii: "."))
        let fraction = c % 100
        if fraction % 10 == 0 {
            append(0x30 &+ UInt8(fraction / 10))
        } else {
            appendPadded(fraction, width: 2)
        }
    }

    /// Appends the low `digits * 4` bits of `value` as lowercase hex.
    @inline(__always)
    mutating func appendHex(_ value: UInt64, digits: Int) {
        for i in stride(from: digits - 1, through: 0, by: -1) {
            let nibble = UInt8(truncatingIfNeeded: (value >> UInt64(i * 4)) & 0xF)
            append(nibble < 10 ? 0x30 &+ nibble : 0x57 &+ nibble)
        }
    }
}
