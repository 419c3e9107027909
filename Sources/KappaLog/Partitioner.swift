import KappaCore

/// Chooses a record's partition exactly as Kafka's default partitioner does for keyed
/// records: `toPositive(murmur2(keyBytes)) % partitions`, so a key lands where a Kafka
/// client would put it. Records without a key go round-robin.
public struct Partitioner: Sendable {
    public let partitions: Int32
    private var next: Int32 = 0

    public init(partitions: Int32) {
        precondition(partitions > 0)
        self.partitions = partitions
    }

    public mutating func partition(for key: UnsafeRawBufferPointer?) -> Int32 {
        guard let key else {
            defer { next = (next + 1) % partitions }
            return next
        }
        return Self.partition(forKey: key, partitions: partitions)
    }

    public static func partition(forKey key: UnsafeRawBufferPointer, partitions: Int32) -> Int32 {
        Int32(murmur2(key) & 0x7FFF_FFFF) % partitions
    }

    /// Kafka's `Utils.murmur2` (MurmurHash2, 32-bit, seed 0x9747b28c), little-endian words.
    public static func murmur2(_ data: UnsafeRawBufferPointer) -> Int32 {
        let length = data.count
        let seed: UInt32 = 0x9747_B28C
        let m: UInt32 = 0x5BD1_E995
        let r: UInt32 = 24
        var h = seed ^ UInt32(truncatingIfNeeded: length)
        let words = length / 4
        for i in 0..<words {
            var k = UInt32(data[i * 4]) | UInt32(data[i * 4 + 1]) << 8 | UInt32(data[i * 4 + 2]) << 16 | UInt32(data[i * 4 + 3]) << 24
            k = k &* m
            k ^= k >> r
            k = k &* m
            h = h &* m
            h ^= k
        }
        let tail = words * 4
        switch length % 4 {
        case 3:
            h ^= UInt32(data[tail + 2]) << 16
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h = h &* m
        case 2:
            h ^= UInt32(data[tail + 1]) << 8
            h ^= UInt32(data[tail])
            h = h &* m
        case 1:
            h ^= UInt32(data[tail])
            h = h &* m
        default: break
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }

    public static func murmur2(_ bytes: [UInt8]) -> Int32 { bytes.withUnsafeBytes { murmur2($0) } }
}
