// Deterministic pseudo-random numbers for the Rebu generator.
//
// Nothing here touches the system clock or the system random source: every value the
// generator produces is a pure function of the seed and the configuration. Floating point
// is limited to IEEE-754 +, -, *, / and our own `deterministicLog`, so results do not
// depend on the platform's libm.

/// A source of uniformly distributed 64-bit words. Conforming generators are deterministic:
/// the same initial state always yields the same sequence.
protocol RandomWords {
    mutating func next() -> UInt64
}

extension RandomWords {
    /// Uniform integer in `0..<n` (Lemire's multiply-and-reject; unbiased). `n` must be > 0.
    @inline(__always)
    mutating func below(_ n: Int) -> Int {
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold {
                m = next().multipliedFullWidth(by: bound)
            }
        }
        return Int(m.high)
    }

    /// Uniform integer in the closed range `lo...hi` (`hi >= lo`, span below 2^63).
    @inline(__always)
    mutating func int(_ lo: Int64, _ hi: Int64) -> Int64 {
        lo + Int64(below(Int(hi - lo) + 1))
    }

    /// Uniform double in `[0, 1)` with 53 random bits.
    @inline(__always)
    mutating func unit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// True with probability `perMille / 1000`.
    @inline(__always)
    mutating func chance(_ perMille: Int) -> Bool {
        below(1000) < perMille
    }

    /// Exponentially distributed double with the given mean.
    mutating func exponential(mean: Double) -> Double {
        -mean * deterministicLog(1.0 - unit())  // 1 - unit() is in (0, 1]
    }

    /// Index drawn from a table of integer weights (`weights` non-empty, sum > 0).
    mutating func weighted(_ weights: [Int], total: Int) -> Int {
        var x = below(total)
        for (i, w) in weights.enumerated() {
            if x < w { return i }
            x -= w
        }
        return weights.count - 1
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014). Used to seed xoshiro and, keyed by an event's
/// index, to draw that event's cosmetic details at render time.
struct SplitMix64: RandomWords, Sendable {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    @inline(__always)
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    /// The SplitMix64 output function: a bijective 64-bit hash.
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256** 1.0 (Blackman, Vigna 2018), seeded through SplitMix64. Each generation
/// phase uses its own `stream`, so changing e.g. the ticket ratio does not perturb the
/// app events.
struct Xoshiro256: RandomWords, Sendable {
    var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    init(seed: UInt64, stream: UInt64) {
        var sm = SplitMix64(seed: seed ^ SplitMix64.mix(stream &* 0xD1B5_4A32_D192_ED03 &+ 0x2545_F491))
        s0 = sm.next()
        s1 = sm.next()
        s2 = sm.next()
        s3 = sm.next()
        if (s0 | s1 | s2 | s3) == 0 { s0 = 1 }  // the all-zero state is a fixed point
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inline(__always)
    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 &- k))
    }
}

/// Natural logarithm of a positive, normal `x`, computed with basic IEEE-754 arithmetic only
/// (reduction to `m * 2^e` with `m` in [1/sqrt 2, sqrt 2], then the atanh series), so it gives
/// bit-identical results on every platform. Accurate to a few ulp, which is all we need.
func deterministicLog(_ x: Double) -> Double {
    precondition(x > 0 && x.isNormal, "deterministicLog needs a positive normal number")
    let bits = x.bitPattern
    var exponent = Int((bits >> 52) & 0x7FF) - 1023
    var m = Double(bitPattern: (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000)
    if m > 1.4142135623730951 {
        m *= 0.5
        exponent += 1
    }
    let z = (m - 1.0) / (m + 1.0)  // |z| <= 0.1716
    let z2 = z * z
    var term = z
    var sum = 0.0
    var k = 1.0
    for _ in 0..<12 {  // 0.1716^25 < 1e-19
        sum += term / k
        term *= z2
        k += 2.0
    }
    return 2.0 * sum + Double(exponent) * 0.6931471805599453
}
