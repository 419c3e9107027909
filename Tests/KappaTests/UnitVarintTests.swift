import Testing
@testable import KappaCore
@testable import KappaFormat
import KappaTesting

/// Kafka's zigzag varints (`ByteUtils.writeVarlong`), pinned byte for byte.
@Suite struct UnitVarintTests {
    static func encode(_ v: Int64) -> [UInt8] {
        let w = ByteWriter(capacity: 16)
        w.appendVarint(v)
        return Array(w.bytes)
    }

    static func decode(_ bytes: [UInt8], bytesMax: Int = Varint.int64BytesMax) -> Result<(value: Int64, length: Int), Varint.DecodeFailure> {
        bytes.withUnsafeBytes { Varint.decode($0, bytesMax: bytesMax) }
    }

    static let edges: [Int64] = [
        0, 1, -1, 63, -64, 64, -65, 127, 128, 300, -300, 8191, 8192,
        Int64(Int32.max), Int64(Int32.min), Int64(Int32.max) + 1, Int64(Int32.min) - 1,
        Int64.max, Int64.min, Int64.max - 1, Int64.min + 1,
    ]

    @Test(arguments: edges)
    func zigzagRoundTrips(_ v: Int64) throws {
        #expect(Varint.unzigzag(Varint.zigzag(v)) == v)
        let bytes = Self.encode(v)
        #expect(bytes.count == Varint.size(v), "size(\(v)) disagrees with the encoding \(bytes)")
        let decoded = try Self.decode(bytes).get()
        #expect(decoded.value == v)
        #expect(decoded.length == bytes.count)
    }

    @Test func zigzagMapsSmallMagnitudesToSmallCodes() {
        #expect(Varint.zigzag(0) == 0)
        #expect(Varint.zigzag(-1) == 1)
        #expect(Varint.zigzag(1) == 2)
        #expect(Varint.zigzag(-2) == 3)
        #expect(Varint.zigzag(Int64(Int32.max)) == 0xFFFF_FFFE)
        #expect(Varint.zigzag(Int64(Int32.min)) == 0xFFFF_FFFF)
        #expect(Varint.zigzag(.max) == UInt64.max - 1)
        #expect(Varint.zigzag(.min) == UInt64.max)
    }

    @Test func knownEncodings() {
        // zigzag(300) = 600 = 0b100_1011000: low group 0x58 | 0x80, then 0x04.
        let known: [(Int64, [UInt8])] = [
            (0, [0x00]), (-1, [0x01]), (1, [0x02]), (-2, [0x03]),
            (63, [0x7E]), (-64, [0x7F]), (64, [0x80, 0x01]), (-65, [0x81, 0x01]),
            (300, [0xD8, 0x04]), (-300, [0xD7, 0x04]),
            (Int64(Int32.max), [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
            (Int64(Int32.min), [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
            (Int64.max, [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            (Int64.min, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        ]
        for (v, bytes) in known {
            #expect(Self.encode(v) == bytes, "encoding of \(v)")
            #expect((try? Self.decode(bytes).get().value) == v, "decoding of \(bytes)")
        }
    }

    @Test func int32ValuesFitFiveBytes() {
        #expect(Varint.size(Int64(Int32.max)) == Varint.int32BytesMax)
        #expect(Varint.size(Int64(Int32.min)) == Varint.int32BytesMax)
        #expect(Varint.size(.max) == Varint.int64BytesMax)
        #expect(Varint.size(.min) == Varint.int64BytesMax)
    }

    @Test func decodeReadsOnlyTheFirstVarint() throws {
        let r = try Self.decode([0xD8, 0x04, 0x02, 0xFF]).get()
        #expect(r.value == 300)
        #expect(r.length == 2)
    }

    @Test(arguments: edges)
    func everyTruncationNeedsMoreBytes(_ v: Int64) {
        let bytes = Self.encode(v)
        for n in 0..<bytes.count {
            let r = Self.decode(Array(bytes.prefix(n)))
            #expect(throws: Varint.DecodeFailure.needMoreBytes, "\(v) cut to \(n) of \(bytes.count) bytes") { try r.get() }
        }
    }

    @Test func emptyInputNeedsMoreBytes() {
        #expect(throws: Varint.DecodeFailure.needMoreBytes) { try Self.decode([]).get() }
    }

    @Test func elevenContinuationBytesAreTooLong() {
        let run = [UInt8](repeating: 0x80, count: 11)
        #expect(throws: Varint.DecodeFailure.tooLong) { try Self.decode(run).get() }
        #expect(throws: Varint.DecodeFailure.tooLong) { try Self.decode(run + [0x00]).get() }
        // Ten continuation bytes can never finish within a varlong either.
        #expect(throws: Varint.DecodeFailure.tooLong) { try Self.decode(Array(run.prefix(10))).get() }
    }

    @Test func sixByteVarintIsTooLongForInt32() {
        // 2^35 encodes in 6 bytes; a 32-bit varint field allows 5.
        let bytes = Self.encode(Int64(1) << 34)
        #expect(bytes.count == 6)
        #expect(throws: Varint.DecodeFailure.tooLong) { try Self.decode(bytes, bytesMax: Varint.int32BytesMax).get() }
        #expect((try? Self.decode(bytes).get().value) == Int64(1) << 34)
    }

    @Test func randomValuesRoundTrip() throws {
        var rng = SeededRandom(seed: 0x5EED_0001)
        let w = ByteWriter(capacity: 64)
        var values: [Int64] = []
        for _ in 0..<2000 {
            // Spread over every length: random bit width, random sign.
            let bits = rng.int(0...63)
            var v = Int64(bitPattern: rng.next() >> UInt64(63 - bits))
            if rng.chance(50) { v = ~v }
            values.append(v)
            w.appendVarint(v)
        }
        var pos = 0
        for v in values {
            let r = try Varint.decode(UnsafeRawBufferPointer(rebasing: w.bytes[pos...])).get()
            #expect(r.value == v, "\(rng)")
            pos += r.length
        }
        #expect(pos == w.count)
    }
}
