import Testing
@testable import KappaFormat
import KappaTesting

/// CRC-32C against the published check value and the iSCSI test vectors (RFC 3720,
/// appendix B.4), which any correct Castagnoli implementation reproduces.
@Suite struct UnitCRC32CTests {
    @Test func emptyInputIsZero() {
        #expect(CRC32C.checksum([]) == 0x0000_0000)
    }

    @Test func checkValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func rfc3720Vectors() {
        #expect(CRC32C.checksum([UInt8](repeating: 0x00, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    /// A bitwise reference (reflected polynomial 0x82F63B78), for random inputs.
    static func bitwise(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    @Test func matchesBitwiseReferenceOnRandomInputs() {
        var rng = SeededRandom(seed: 0xC4C_32C)
        for _ in 0..<300 {
            // Odd lengths and unaligned starts reach every tail of the 8-byte loop.
            let data = rng.bytes(rng.int(0...300))
            let skew = rng.int(0...7)
            let padded = [UInt8](repeating: 0xAA, count: skew) + data
            let got = padded.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[skew...])) }
            #expect(got == Self.bitwise(data), "\(data.count) bytes at skew \(skew), \(rng)")
        }
    }

    @Test func continuingEqualsOneShot() {
        var rng = SeededRandom(seed: 0xC4C_0002)
        for _ in 0..<300 {
            let data = rng.bytes(rng.int(0...2000))
            let oneShot = CRC32C.checksum(data)
            // Split into 1...4 random pieces and chain.
            var cuts = (0..<rng.int(0...3)).map { _ in rng.int(0...data.count) }
            cuts = ([0] + cuts.sorted() + [data.count])
            var crc: UInt32 = 0
            data.withUnsafeBytes { raw in
                for i in 0..<(cuts.count - 1) {
                    crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[cuts[i]..<cuts[i + 1]]), continuing: crc)
                }
            }
            #expect(crc == oneShot, "cuts \(cuts) of \(data.count) bytes, \(rng)")
        }
    }
}
