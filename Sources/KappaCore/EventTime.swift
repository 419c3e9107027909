/// Parses event times exactly into `TimestampNanos`.
///
/// Accepted forms (the contract of SPEC section 2):
/// - epoch seconds as a decimal: `1457741907`, `1457741907.959400112`, `-3.5`, and the
///   JSON exponent form `1.4577419079594e9`; digits below one nanosecond are refused
///   rather than silently rounded;
/// - ISO-8601 / RFC 3339: `2016-03-12T00:18:27.959400112Z`, with `Z` or `±hh:mm`
///   (a space may stand for `T`).
/// The parser is pure and allocation-free; it works on the raw bytes of a JSON token.
public enum EventTime {
    public enum Failure: Error, Equatable, Sendable {
        case empty
        case malformed
        case tooPrecise
        case outOfRange
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<TimestampNanos, Failure> {
        guard !bytes.isEmpty else { return .failure(.empty) }
        // ISO-8601 has a '-' after four digits; decimal seconds never do.
        if bytes.count >= 10, bytes[4] == UInt8(ascii: "-"), isDigit(bytes[0]) {
            return parseISO8601(bytes)
        }
        return parseDecimalSeconds(bytes)
    }

    public static func parse(_ string: String) -> Result<TimestampNanos, Failure> {
        var copy = string
        return copy.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always) static func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

    /// The common case, unsigned "S" or "S.F" with at most 10 + 9 digits, without
    /// overflow checks (none can overflow). nil sends everything else to the full parser.
    @inline(__always)
    static func parseSimpleDecimal(_ b: UnsafeRawBufferPointer) -> TimestampNanos? {
        let n = b.count
        guard n > 0, n <= 20, let base = b.baseAddress else { return nil }
        let p = base.assumingMemoryBound(to: UInt8.self)
        var i = 0
        var seconds: Int64 = 0
        while i < n {
            let d = p[i] &- 0x30
            if d >= 10 { break }
            seconds = seconds &* 10 &+ Int64(d)
            i += 1
        }
        // Below 9e9 s (year 2255) nothing can overflow: × 1e9 + 999 999 999 < Int64.max.
        guard i > 0, i <= 10, seconds < 9_000_000_000 else { return nil }
        if i == n { return TimestampNanos(seconds &* TimestampNanos.nanosPerSecond) }
        guard p[i] == UInt8(ascii: "."), n - i - 1 >= 1, n - i - 1 <= 9 else { return nil }
        i += 1
        var fraction: Int64 = 0
        var digits = 0
        while i < n {
            let d = p[i] &- 0x30
            if d >= 10 { return nil }
            fraction = fraction &* 10 &+ Int64(d)
            digits += 1
            i += 1
        }
        while digits < 9 {
            fraction &*= 10
            digits += 1
        }
        return TimestampNanos(seconds &* TimestampNanos.nanosPerSecond &+ fraction)
    }

    /// The eight ASCII digits at `p` as a number, or nil if any byte is not a digit
    /// (SWAR: one load, three multiply-adds).
    @inline(__always)
    static func eightDigits(_ p: UnsafeRawPointer) -> UInt64? {
        let v = p.loadUnaligned(as: UInt64.self).littleEndian  // first digit in the low byte
        guard (v & 0xF0F0_F0F0_F0F0_F0F0) | (((v &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) >> 4) == 0x3333_3333_3333_3333 else {
            return nil
        }
        var x = v & 0x0F0F_0F0F_0F0F_0F0F
        x = (x &* 10 &+ (x >> 8)) & 0x00FF_00FF_00FF_00FF
        x = (x &* 100 &+ (x >> 16)) & 0x0000_FFFF_0000_FFFF
        return (x &* 10000 &+ (x >> 32)) & 0xFFFF_FFFF
    }

    /// The most common shape of all, "SSSSSSSSSS.FFFFFFFFF" (ten digits, nine decimals:
    /// epoch seconds with nanoseconds), parsed eight digits at a time. Nil otherwise.
    @inline(__always)
    static func parseNanosecondDecimal(_ b: UnsafeRawBufferPointer) -> TimestampNanos? {
        guard b.count == 20, let p = b.baseAddress, b[10] == UInt8(ascii: "."), isDigit(b[8]), isDigit(b[9]), isDigit(b[19]),
              let high = eightDigits(p), let fractionHigh = eightDigits(p + 11) else { return nil }
        let seconds = high &* 100 &+ UInt64(b[8] &- 0x30) &* 10 &+ UInt64(b[9] &- 0x30)
        // Below 9e9 s (year 2255) nothing can overflow: × 1e9 + 999 999 999 < Int64.max.
        guard seconds < 9_000_000_000 else { return nil }
        let fraction = fractionHigh &* 10 &+ UInt64(b[19] &- 0x30)
        return TimestampNanos(Int64(seconds &* 1_000_000_000 &+ fraction))
    }

    static func parseDecimalSeconds(_ b: UnsafeRawBufferPointer) -> Result<TimestampNanos, Failure> {
        if let fast = parseNanosecondDecimal(b) { return .success(fast) }
        if let simple = parseSimpleDecimal(b) { return .success(simple) }
        var i = 0
        let n = b.count
        var negative = false
        if b[0] == UInt8(ascii: "-") || b[0] == UInt8(ascii: "+") {
            negative = b[0] == UInt8(ascii: "-")
            i = 1
        }
        // Collect all significant digits as one integer and where the point sits.
        var mantissa: Int64 = 0
        var digitsAfterPoint = 0
        var sawDigit = false
        var sawPoint = false
        var overflowDigitsAfterPoint = false
        while i < n {
            let c = b[i]
            if isDigit(c) {
                sawDigit = true
                let d = Int64(c &- 0x30)
                let (m1, o1) = mantissa.multipliedReportingOverflow(by: 10)
                let (m2, o2) = m1.addingReportingOverflow(d)
                if o1 || o2 {
                    // Only trailing zeros after the point may be dropped; a non-zero digit
                    // that far right is below the nanosecond.
                    guard sawPoint, d == 0 else {
                        return .failure(sawPoint && digitsAfterPoint - exponentGuess(b, from: i) >= 9 ? .tooPrecise : .outOfRange)
                    }
                    overflowDigitsAfterPoint = true
                } else if !overflowDigitsAfterPoint {
                    mantissa = m2
                    if sawPoint { digitsAfterPoint += 1 }
                } else if d != 0 {
                    return .failure(.outOfRange)
                }
            } else if c == UInt8(ascii: "."), !sawPoint {
                sawPoint = true
            } else {
                break
            }
            i += 1
        }
        guard sawDigit else { return .failure(.malformed) }
        var exponent = 0
        if i < n, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            var expNegative = false
            if i < n, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") {
                expNegative = b[i] == UInt8(ascii: "-")
                i += 1
            }
            var sawExpDigit = false
            while i < n, isDigit(b[i]) {
                sawExpDigit = true
                exponent = exponent * 10 + Int(b[i] &- 0x30)
                guard exponent < 400 else { return .failure(.outOfRange) }
                i += 1
            }
            guard sawExpDigit else { return .failure(.malformed) }
            if expNegative { exponent = -exponent }
        }
        guard i == n else { return .failure(.malformed) }
        // value = mantissa × 10^(exponent − digitsAfterPoint) seconds; want × 10^9 nanos.
        var scale = exponent - digitsAfterPoint + 9
        var value = mantissa
        while scale < 0 {
            guard value % 10 == 0 else { return .failure(.tooPrecise) }
            value /= 10
            scale += 1
        }
        while scale > 0 {
            let (v, o) = value.multipliedReportingOverflow(by: 10)
            guard !o else { return .failure(.outOfRange) }
            value = v
            scale -= 1
        }
        return .success(TimestampNanos(negative ? -value : value))
    }

    static func parseISO8601(_ b: UnsafeRawBufferPointer) -> Result<TimestampNanos, Failure> {
        let n = b.count
        func num(_ at: Int, _ len: Int) -> Int? {
            guard at + len <= n else { return nil }
            var v = 0
            for k in at..<(at + len) {
                guard isDigit(b[k]) else { return nil }
                v = v * 10 + Int(b[k] &- 0x30)
            }
            return v
        }
        guard let year = num(0, 4), b[4] == UInt8(ascii: "-"), let month = num(5, 2), n > 7, b[7] == UInt8(ascii: "-"),
              let day = num(8, 2)
        else { return .failure(.malformed) }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day) else { return .failure(.malformed) }
        var hour = 0, minute = 0, second = 0
        var nanos: Int64 = 0
        var i = 10
        var offsetSeconds = 0
        if i < n {
            guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return .failure(.malformed) }
            guard let h = num(i + 1, 2), i + 3 < n, b[i + 3] == UInt8(ascii: ":"), let m = num(i + 4, 2) else { return .failure(.malformed) }
            hour = h
            minute = m
            i += 6
            if i < n, b[i] == UInt8(ascii: ":") {
                guard let s = num(i + 1, 2) else { return .failure(.malformed) }
                second = s
                i += 3
                if i < n, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",") {
                    i += 1
                    var digits = 0
                    while i < n, isDigit(b[i]) {
                        if digits < 9 {
                            nanos = nanos * 10 + Int64(b[i] &- 0x30)
                        } else if b[i] != UInt8(ascii: "0") {
                            return .failure(.tooPrecise)
                        }
                        digits += 1
                        i += 1
                    }
                    guard digits > 0 else { return .failure(.malformed) }
                    for _ in min(digits, 9)..<9 { nanos *= 10 }
                }
            }
            guard hour < 24, minute < 60, second < 61 else { return .failure(.malformed) }
            guard i < n else { return .failure(.malformed) }  // a time needs a zone: no local times
            if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
                i += 1
            } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
                guard let oh = num(i + 1, 2) else { return .failure(.malformed) }
                var om = 0
                if i + 3 < n, b[i + 3] == UInt8(ascii: ":") {
                    guard let v = num(i + 4, 2) else { return .failure(.malformed) }
                    om = v
                    i += 6
                } else if let v = num(i + 3, 2) {
                    om = v
                    i += 5
                } else {
                    i += 3
                }
                guard oh < 24, om < 60 else { return .failure(.malformed) }
                offsetSeconds = sign * (oh * 3600 + om * 60)
            } else {
                return .failure(.malformed)
            }
        }
        guard i == n else { return .failure(.malformed) }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        let (scaled, o1) = seconds.multipliedReportingOverflow(by: TimestampNanos.nanosPerSecond)
        let (value, o2) = scaled.addingReportingOverflow(nanos)
        guard !o1, !o2 else { return .failure(.outOfRange) }  // beyond 1677…2262
        return .success(TimestampNanos(value))
    }

    /// The exponent written after the digits starting at `i` (0 if none): digits past the
    /// ninth fractional place are below a nanosecond only when no exponent moves them.
    static func exponentGuess(_ b: UnsafeRawBufferPointer, from start: Int) -> Int {
        var i = start
        while i < b.count, isDigit(b[i]) { i += 1 }
        guard i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") else { return 0 }
        i += 1
        var negative = false
        if i < b.count, b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+") {
            negative = b[i] == UInt8(ascii: "-")
            i += 1
        }
        var e = 0
        while i < b.count, isDigit(b[i]), e < 1000 {
            e = e * 10 + Int(b[i] &- 0x30)
            i += 1
        }
        return negative ? -e : e
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
