import Testing
@testable import KappaCore
@testable import KappaStreams
import KappaTesting

/// Decimal9, the number type of aggregates: exact sums, shortest printing, half-even
/// averages, negative values.
@Suite struct StreamDecimalTests {
    static func d(_ x: Double) -> Decimal9 { Decimal9(double: x)! }

    @Test func sumsAreExact() {
        #expect(Self.d(0.1) + Self.d(0.2) == Self.d(0.3))
        #expect((Self.d(0.1) + Self.d(0.2)).description == "0.3")
        #expect((Self.d(0.1) + Self.d(0.2)).raw == 300_000_000)
        // Ten thousand cents add to exactly 100, in any order.
        var rng = SeededRandom(seed: 7)
        var values = (0..<10_000).map { _ in Self.d(0.01) }
        var a = Decimal9(raw: 0)
        for v in values { a = a + v }
        #expect(a == Decimal9(integer: 100) && a.description == "100")
        values = (0..<5000).map { _ in Decimal9(raw: Int128(rng.int(-1_000_000...1_000_000)) * 10_000_000) }
        let forward = values.reduce(Decimal9(raw: 0), +)
        let backward = values.reversed().reduce(Decimal9(raw: 0), +)
        let shuffled = values.shuffled(using: &rng).reduce(Decimal9(raw: 0), +)
        let exact = values.reduce(Int128(0)) { $0 + $1.raw }
        #expect(forward == backward && backward == shuffled && forward.raw == exact, "seed 7")
    }

    @Test func fromJSONNumbers() {
        #expect(Self.d(23.5).raw == 23_500_000_000)
        #expect(Self.d(12.34).raw == 12_340_000_000)
        #expect(Self.d(-12.34).raw == -12_340_000_000)
        #expect(Self.d(0.000000001).raw == 1)
        #expect(Self.d(1e-10).raw == 0)
        #expect(Self.d(-0.0).raw == 0)
        #expect(Self.d(1_234_567.891).raw == 1_234_567_891_000_000)
        #expect(Decimal9(integer: -7).raw == -7_000_000_000)
        #expect(Decimal9(double: .nan) == nil)
        #expect(Decimal9(double: .infinity) == nil)
        #expect(Decimal9(double: -.infinity) == nil)
        #expect(Decimal9(double: 1e30) == nil)
        #expect(Decimal9(double: -1e30) == nil)
        #expect(Decimal9(double: 1e28) != nil)
        // Every fare with two decimals converts exactly.
        for cents in stride(from: -100_000, through: 100_000, by: 7) {
            let x = Double(cents) / 100
            #expect(Self.d(x).raw == Int128(cents) * 10_000_000, "\(x)")
        }
    }

    @Test(arguments: [
        (Int128(0), "0"), (40_000_000_000, "40"), (23_500_000_000, "23.5"), (-1, "-0.000000001"), (1, "0.000000001"),
        (1_100_000_000, "1.1"), (100_000_000_000, "100"), (50_000_000, "0.05"), (-12_340_000_000, "-12.34"),
        (-500_000_000, "-0.5"), (-3_000_000_000, "-3"), (123_456_789_012, "123.456789012"), (10_000_000_010, "10.00000001"),
        (Int128.max, "170141183460469231731687303715.884105727"), (Int128.min, "-170141183460469231731687303715.884105728"),
    ] as [(Int128, String)])
    func formatsShortestExact(_ raw: Int128, _ text: String) {
        #expect(Decimal9(raw: raw).description == text)
        var bytes: [UInt8] = []
        Decimal9(raw: raw).append(to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == text)
    }

    /// Printing round-trips through the digits for random values.
    @Test func formatRoundTrips() {
        var rng = SeededRandom(seed: 8)
        for _ in 0..<5000 {
            let raw = Int128(Int64.random(in: Int64.min...Int64.max, using: &rng)) * Int128(rng.int(1...1000))
            let s = Decimal9(raw: raw).description
            #expect(Self.parse(s) == raw, "seed 8: \(raw) printed as \(s)")
            #expect(!s.hasSuffix("0") || !s.contains("."), "seed 8: trailing zero in \(s)")
            #expect(!s.hasSuffix("."), "seed 8: \(s)")
        }
    }

    static func parse(_ s: String) -> Int128? {
        var neg = false
        var t = Substring(s)
        if t.first == "-" {
            neg = true
            t = t.dropFirst()
        }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = Int128(parts[0]) else { return nil }
        var frac: Int128 = 0
        if parts.count == 2 {
            guard parts[1].count <= 9, !parts[1].isEmpty, let f = Int128(parts[1]) else { return nil }
            frac = f
            for _ in parts[1].count..<9 { frac *= 10 }
        }
        let v = whole * 1_000_000_000 + frac
        return neg ? -v : v
    }

    @Test(arguments: [
        // (raw sum, n, raw average): ties go to the even neighbour.
        (Int128(5), Int64(2), Int128(2)), (7, 2, 4), (-5, 2, -2), (-7, 2, -4), (1, 2, 0), (-1, 2, 0), (3, 2, 2), (-3, 2, -2),
        (1, 3, 0), (2, 3, 1), (-2, 3, -1), (-1, 3, 0), (10, 4, 2), (14, 4, 4), (0, 5, 0), (9, 1, 9), (-9, 1, -9),
        (25_000_000_000, 2, 12_500_000_000), (1_000_000_000, 3, 333_333_333), (2_000_000_000, 3, 666_666_667),
        (-2_000_000_000, 3, -666_666_667),
    ] as [(Int128, Int64, Int128)])
    func averageRoundsHalfEven(_ sum: Int128, _ n: Int64, _ want: Int128) {
        #expect(Decimal9(raw: sum).divided(by: n).raw == want, "\(sum) / \(n)")
    }

    @Test func averageMatchesIndependentRounding() {
        for sum in Int128(-300)...300 {
            for n in Int64(1)...24 {
                #expect(Decimal9(raw: sum).divided(by: n).raw == StreamFx.halfEvenDivide(sum, Int128(n)), "\(sum) / \(n)")
            }
        }
        var rng = SeededRandom(seed: 9)
        for _ in 0..<3000 {
            let sum = Int128(Int64.random(in: Int64.min...Int64.max, using: &rng)) * Int128(rng.int(1...1_000_000))
            let n = Int64(rng.int(1...1_000_000))
            #expect(Decimal9(raw: sum).divided(by: n).raw == StreamFx.halfEvenDivide(sum, Int128(n)), "seed 9: \(sum) / \(n)")
        }
    }

    @Test func orderingWithNegatives() {
        let xs = [Self.d(-2.5), Self.d(-0.000000001), Decimal9(raw: 0), Self.d(0.1), Self.d(3)]
        #expect(xs == xs.shuffled().sorted())
        #expect(Self.d(-1) < Self.d(-0.5))
        #expect(Self.d(-1) + Self.d(1) == Decimal9(raw: 0))
        #expect((Self.d(-1.25) + Self.d(0.05)).description == "-1.2")
    }

    /// An aggregate over negative and positive values, and the JSON of an empty field.
    @Test func aggregateStateWithNegatives() {
        var s = AggregateState(fields: 2)
        let rows: [[Decimal9?]] = [[Self.d(-1.5), nil], [Self.d(2.25), nil], [nil, nil], [Self.d(-0.75), nil]]
        for r in rows { r.withUnsafeBufferPointer { s.add($0) } }
        #expect(s.count == 4 && s.fieldCounts == [3, 0])
        #expect(s.sums[0] == Self.d(0) && s.mins[0] == Self.d(-1.5) && s.maxs[0] == Self.d(2.25))
        let specs = [AggregateSpec(kind: .count, field: nil), AggregateSpec(kind: .sum, field: "a"), AggregateSpec(kind: .avg, field: "a"),
                     AggregateSpec(kind: .min, field: "a"), AggregateSpec(kind: .max, field: "a"), AggregateSpec(kind: .sum, field: "b"),
                     AggregateSpec(kind: .avg, field: "b"), AggregateSpec(kind: .min, field: "b"), AggregateSpec(kind: .max, field: "b")]
        let spec = WindowSpec(key: "k", time: "t", sizeNanos: 1, graceNanos: 0, aggregates: specs, emit: .final)
        #expect(spec.fields == ["a", "b"])
        let out = ByteWriter(capacity: 16)
        s.appendJSON(AggregateLayout(spec), to: out)
        #expect(String(decoding: out.bytes, as: UTF8.self) == ",\"count\":4,\"sum_a\":0,\"avg_a\":0,\"min_a\":-1.5,\"max_a\":2.25,\"sum_b\":0,\"avg_b\":null,\"min_b\":null,\"max_b\":null")
        // Merging is the same as adding everything to one state, in any split.
        var left = AggregateState(fields: 2), right = AggregateState(fields: 2)
        for (i, r) in rows.enumerated() { r.withUnsafeBufferPointer { if i % 2 == 0 { left.add($0) } else { right.add($0) } } }
        var merged = right
        merged.merge(left)
        #expect(merged == s)
        var empty = AggregateState(fields: 2)
        empty.merge(s)
        #expect(empty == s)
    }
}

/// The formatters every result is written with, against plain references.
@Suite struct StreamFormatTests {
    /// Decimal seconds written digit by digit, independently of `writeDecimalSeconds`.
    static func reference(_ t: Int64) -> String {
        let sign = t < 0 ? "-" : ""
        let m = t.magnitude
        var s = sign + String(m / 1_000_000_000)
        var f = String(m % 1_000_000_000)
        if f != "0" {
            f = String(repeating: "0", count: 9 - f.count) + f
            while f.hasSuffix("0") { f.removeLast() }
            s += "." + f
        }
        return s
    }

    @Test func decimalSecondsAndIntegersMatchAReference() {
        var rng = SeededRandom(seed: 4242)
        var values: [Int64] = [0, 1, -1, 999_999_999, 1_000_000_000, -1_000_000_000, 1_457_741_907_959_400_112, .max, .min, .min + 1]
        for _ in 0..<5000 { values.append(Int64(bitPattern: rng.next()) >> Int64(rng.int(0...62))) }
        let w = ByteWriter(capacity: 8)
        for v in values {
            w.removeAll()
            w.appendDecimalSeconds(TimestampNanos(v))
            #expect(String(decoding: w.bytes, as: UTF8.self) == Self.reference(v), "\(v)")
            #expect(TimestampNanos(v).decimalSeconds == Self.reference(v))
            w.removeAll()
            w.appendInteger(v)
            #expect(String(decoding: w.bytes, as: UTF8.self) == String(v))
        }
    }

    @Test func lineageHeaders() {
        var one = Lineage()
        one.add(partition: 2, offset: 120)
        one.add(partition: 2, offset: 9981)
        #expect(one.header(topic: "rides") == "rides/2:120-9981")
        var many = one
        many.add(partition: 0, offset: 7)
        many.add(partition: 11, offset: 5)
        many.add(partition: 11, offset: 3)
        #expect(many.header(topic: "a+b") == "a+b/0:7-7,a+b/2:120-9981,a+b/11:3-5")
        #expect(Lineage().header(topic: "t") == "")
    }
}
