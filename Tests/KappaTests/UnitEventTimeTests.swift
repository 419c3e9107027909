import Testing
@testable import KappaCore
import KappaTesting

/// Event times parse exactly into integer nanoseconds (SPEC section 2) and print back in
/// the shortest exact decimal-seconds form.
@Suite struct UnitEventTimeTests {
    static func parse(_ s: String) -> Result<Int64, EventTime.Failure> {
        EventTime.parse(s).map(\.rawValue)
    }

    static let exact: [(String, Int64)] = [
        // Decimal epoch seconds.
        ("1457741907.959400112", 1_457_741_907_959_400_112),
        ("1457741907", 1_457_741_907_000_000_000),
        ("1457741907.9594", 1_457_741_907_959_400_000),
        ("1457741907.959400112000", 1_457_741_907_959_400_112),  // zeros below 1 ns are fine
        ("1457741907.9594001120", 1_457_741_907_959_400_112),
        ("1.5e9", 1_500_000_000_000_000_000),
        ("1.4577419079594e9", 1_457_741_907_959_400_000),
        ("1457741907959400112e-9", 1_457_741_907_959_400_112),
        ("1E3", 1_000_000_000_000),
        ("2e-9", 2),
        ("-0.5", -500_000_000),
        ("-3.5", -3_500_000_000),
        ("+1", 1_000_000_000),
        ("0", 0),
        ("0.000000001", 1),
        ("9223372036.854775807", Int64.max),
        // ISO-8601 / RFC 3339.
        ("2016-03-12T00:18:27.959400112Z", 1_457_741_907_959_400_112),
        ("2016-03-12T01:18:27.959400112+01:00", 1_457_741_907_959_400_112),
        ("2016-03-11T23:18:27.959400112-01:00", 1_457_741_907_959_400_112),
        ("2016-03-12T01:18:27.959400112+0100", 1_457_741_907_959_400_112),
        ("2016-03-12T05:48:27.959400112+05:30", 1_457_741_907_959_400_112),
        ("2016-03-12 00:18:27.959400112Z", 1_457_741_907_959_400_112),
        ("2016-03-12T00:18:27Z", 1_457_741_907_000_000_000),
        ("2016-03-12T00:18:27.5Z", 1_457_741_907_500_000_000),
        ("2016-03-12T00:18:27,5Z", 1_457_741_907_500_000_000),
        ("2016-03-12T00:18:27.9594001120Z", 1_457_741_907_959_400_112),
        ("2016-03-12", 1_457_740_800_000_000_000),
        ("2000-02-29T12:00:00Z", 951_825_600_000_000_000),
        ("1969-12-31T23:59:59.5Z", -500_000_000),
        ("1970-01-01T00:00:00Z", 0),
        ("1900-01-01T00:00:00Z", -2_208_988_800_000_000_000),
        ("2262-04-11T23:47:16.854775807Z", Int64.max),
    ]

    @Test(arguments: exact)
    func parsesExactly(_ text: String, _ nanos: Int64) {
        #expect(Self.parse(text) == .success(nanos), "\(text)")
    }

    /// The same instant in every accepted spelling.
    @Test func spellingsAgree() {
        let spellings = ["1457741907.959400112", "1.457741907959400112e9", "2016-03-12T00:18:27.959400112Z",
                         "2016-03-12T00:18:27.959400112+00:00", "2016-03-11T16:18:27.959400112-08:00"]
        for s in spellings { #expect(Self.parse(s) == .success(1_457_741_907_959_400_112), "\(s)") }
    }

    static let tooPrecise = [
        "1.0000000001",
        "1e-10",
        "0.0000000005",
        "2016-03-12T00:18:27.9594001121Z",
        // 20 significant digits: one more than Int64 holds, and non-zero below 1 ns.
        "1457741907.9594001121",
        "1457741907.959400112000000000001",
    ]

    @Test(arguments: tooPrecise)
    func refusesDigitsBelowOneNanosecond(_ text: String) {
        #expect(Self.parse(text) == .failure(.tooPrecise), "\(text)")
    }

    static let malformed = [
        "abc", "1.2.3", " 1", "1 ", "1e", "1e+", "--1", "-", "+", ".", "e5", "0x10", "NaN", "Infinity", "1,5",
        "2016-13-01T00:00:00Z", "2016-02-30T00:00:00Z", "2015-02-29T00:00:00Z", "2016-03-12T00:18:27",
        "2016-03-12T25:00:00Z", "2016-03-12T00:60:00Z", "2016-03-12T00:18:27.Z", "2016-03-12T00:18:27Zjunk",
        "2016-03-12X00:18:27Z", "2016-03-12T00:18:27+25:00", "2016-3-12T00:18:27Z",
    ]

    @Test(arguments: malformed)
    func refusesGarbage(_ text: String) {
        #expect(Self.parse(text) == .failure(.malformed), "\(text)")
    }

    @Test func emptyIsEmpty() {
        #expect(Self.parse("") == .failure(.empty))
    }

    @Test(arguments: ["99999999999999999999", "1e30", "9223372037", "-9223372037", "9223372036.854775808"])
    func refusesOutOfRangeDecimals(_ text: String) {
        #expect(Self.parse(text) == .failure(.outOfRange), "\(text)")
    }

    /// An ISO-8601 time outside Int64 nanoseconds (before 1677-09-21 or after
    /// 2262-04-11) is a bad input line: it must be refused, not crash the process.
    /// Each runs in a child process so a trap fails only this test.
    @Test func isoTimesOutsideInt64NanosAreRefusedNotCrashing() async {
        await #expect(processExitsWith: .success, "2262-04-11T23:47:17Z") {
            #expect(EventTime.parse("2262-04-11T23:47:17Z") == .failure(.outOfRange))
        }
        await #expect(processExitsWith: .success, "9999-12-31T23:59:59Z") {
            #expect(EventTime.parse("9999-12-31T23:59:59Z") == .failure(.outOfRange))
        }
        await #expect(processExitsWith: .success, "2262-04-11T23:47:16.854775808Z") {
            #expect(EventTime.parse("2262-04-11T23:47:16.854775808Z") == .failure(.outOfRange))
        }
        await #expect(processExitsWith: .success, "0001-01-01T00:00:00Z") {
            #expect(EventTime.parse("0001-01-01T00:00:00Z") == .failure(.outOfRange))
        }
    }

    static let formatted: [(Int64, String)] = [
        (1_457_741_907_959_400_112, "1457741907.959400112"),
        (1_457_741_907_959_400_000, "1457741907.9594"),
        (1_457_741_907_000_000_000, "1457741907"),
        (1_457_741_907_100_000_000, "1457741907.1"),
        (1_457_741_907_000_000_010, "1457741907.00000001"),
        (-500_000_000, "-0.5"),
        (-1_500_000_000, "-1.5"),
        (1, "0.000000001"),
        (-1, "-0.000000001"),
        (0, "0"),
        (Int64.max, "9223372036.854775807"),
        (Int64.min, "-9223372036.854775808"),
    ]

    @Test(arguments: formatted)
    func decimalSecondsIsShortestExact(_ nanos: Int64, _ text: String) {
        #expect(TimestampNanos(nanos).decimalSeconds == text)
        #expect(TimestampNanos(nanos).description == text)
    }

    /// The eight-digits-at-a-time path for "SSSSSSSSSS.FFFFFFFFF" agrees with the
    /// digit-by-digit one, and declines (nil) any string of that length with a non-digit.
    @Test func nanosecondFastPathAgreesWithTheGeneralParser() {
        var rng = SeededRandom(seed: 0x7135_0002)
        let noise: [UInt8] = Array(" +-.e:/Z".utf8) + [0x2F, 0x3A, 0x00, 0xFF, 0x80, 0xB0]
        for i in 0..<20_000 {
            var bytes = (0..<20).map { _ in UInt8(ascii: "0") + UInt8.random(in: 0...9, using: &rng) }
            bytes[10] = UInt8(ascii: ".")
            if i % 3 == 0 { bytes[Int.random(in: 0..<20, using: &rng)] = noise.randomElement(using: &rng)! }
            if i % 7 == 0 { bytes[0] = UInt8(ascii: "9") }  // at or above 9e9 s: declined
            bytes.withUnsafeBytes { b in
                let fast = EventTime.parseNanosecondDecimal(b)
                let slow = EventTime.parseSimpleDecimal(b)
                if let fast { #expect(fast == slow, "\(String(decoding: bytes, as: UTF8.self))") }
                let allDigits = bytes.enumerated().allSatisfy { $0.offset == 10 ? $0.element == UInt8(ascii: ".") : EventTime.isDigit($0.element) }
                #expect((fast != nil) == (allDigits && slow != nil), "\(String(decoding: bytes, as: UTF8.self))")
            }
        }
        #expect(Self.parse("1457741203.915452601") == .success(1_457_741_203_915_452_601))
        #expect(Self.parse("0000000000.000000001") == .success(1))
    }

    @Test func decimalSecondsRoundTripsRandomValues() {
        var rng = SeededRandom(seed: 0x7135_0001)
        let bound = Int64(1) << 62
        for i in 0..<5000 {
            var v = Int64.random(in: -bound...bound, using: &rng)
            // Half the values end in zeros, to exercise the stripping.
            if i % 2 == 0 { v -= v % [10, 1000, 1_000_000, 1_000_000_000][i / 2 % 4] }
            let text = TimestampNanos(v).decimalSeconds
            #expect(Self.parse(text) == .success(v), "\(v) printed as \(text), \(rng)")
            if let dot = text.firstIndex(of: ".") {
                #expect(text.last != "0", "trailing zero in \(text)")
                #expect(text.distance(from: dot, to: text.endIndex) <= 10, "more than 9 fraction digits in \(text)")
            } else {
                #expect(v % TimestampNanos.nanosPerSecond == 0, "\(text) dropped the fraction of \(v)")
            }
        }
    }

    @Test func millisRoundTowardNegativeInfinity() {
        #expect(TimestampNanos(-1).millis == -1)
        #expect(TimestampNanos(-1).subMilliNanos == 999_999)
        #expect(TimestampNanos(-1_000_000).millis == -1)
        #expect(TimestampNanos(-1_000_000).subMilliNanos == 0)
        #expect(TimestampNanos(1_500_000).millis == 1)
        #expect(TimestampNanos(1_500_000).subMilliNanos == 500_000)
        #expect(TimestampNanos(1_457_741_907_959_400_112).millis == 1_457_741_907_959)
        #expect(TimestampNanos(1_457_741_907_959_400_112).subMilliNanos == 400_112)
    }

    @Test func millisAndSubMilliNanosRecomposeRandomValues() {
        var rng = SeededRandom(seed: 0x7135_0002)
        let bound = Int64(1) << 62
        for _ in 0..<5000 {
            let t = TimestampNanos(Int64.random(in: -bound...bound, using: &rng))
            #expect((0..<1_000_000).contains(t.subMilliNanos), "\(t.rawValue), \(rng)")
            #expect(TimestampNanos(millis: t.millis, subMilliNanos: t.subMilliNanos) == t, "\(t.rawValue), \(rng)")
        }
    }

    @Test func daysFromCivilMatchesKnownDates() {
        #expect(EventTime.daysFromCivil(year: 1970, month: 1, day: 1) == 0)
        #expect(EventTime.daysFromCivil(year: 2016, month: 3, day: 12) == 16_872)
        #expect(EventTime.daysFromCivil(year: 2000, month: 3, day: 1) == 11_017)
        #expect(EventTime.daysFromCivil(year: 1969, month: 12, day: 31) == -1)
    }
}
