/// SplitMix64 (Steele, Lea & Flood 2014; the generator Java's `SplittableRandom` and
/// xoshiro's seeding use): a deterministic `RandomNumberGenerator` for tests.
///
/// Contract: the same `seed` always yields the same sequence, on every platform and
/// Swift version (the algorithm is fixed here, unlike `SystemRandomNumberGenerator`), so
/// a failing random test is replayed by its seed. Every random test prints `seed` in its
/// failure messages. A value type: copying it forks the sequence. Not for cryptography.
public struct SeededRandom: RandomNumberGenerator, Sendable, CustomStringConvertible {
    public let seed: UInt64
    private var state: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        self.state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `range` (shorthand for `Int.random(in:using:)`).
    public mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    /// True with probability `percent`/100.
    public mutating func chance(_ percent: Int) -> Bool { int(0...99) < percent }

    /// `count` uniformly random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            var word = next()
            for _ in 0..<min(8, count - out.count) {
                out.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return out
    }

    public var description: String { "SeededRandom(seed: \(seed))" }
}
