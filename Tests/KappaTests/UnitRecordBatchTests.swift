import Testing
@testable import KappaCore
@testable import KappaFormat
import KappaTesting

/// RecordBatch v2: layout pinned against Kafka, round trips, CRC coverage, framing, and
/// decoders that refuse (never crash on) damaged bytes.
@Suite struct UnitRecordBatchTests {
    static let t0 = TimestampNanos(1_457_741_907_959_400_112)

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    static func roundTrip(_ records: [ReferenceRecord], _ compression: CompressionCodec, baseOffset: Offset = Offset(1000),
                          sourceLocation: SourceLocation = #_sourceLocation) throws {
        let coding = BatchCoding()
        let batch = coding.encode(records, compression: compression, baseOffset: baseOffset)
        let (header, decoded) = try coding.decode(batch)
        #expect(header.baseOffset == baseOffset, sourceLocation: sourceLocation)
        #expect(header.recordsCount == Int32(records.count), sourceLocation: sourceLocation)
        #expect(header.lastOffsetDelta == Int32(records.count - 1), sourceLocation: sourceLocation)
        #expect(header.compression == compression, sourceLocation: sourceLocation)
        #expect(header.baseTimestampMillis == records[0].timestamp.millis, sourceLocation: sourceLocation)
        #expect(header.maxTimestampMillis == records.map(\.timestamp.millis).max(), sourceLocation: sourceLocation)
        #expect(decoded.map(\.offset) == (0..<records.count).map { baseOffset + Int64($0) }, sourceLocation: sourceLocation)
        #expect(decoded.map(\.record) == records, sourceLocation: sourceLocation)
    }

    // MARK: - Kafka compatibility

    /// kafka-python 3.0.12's DefaultRecordBatchBuilder(magic=2, compression_type=0,
    /// producer_id=-1, producer_epoch=-1, base_sequence=-1) with
    ///   append(0, timestamp=1457741907959, key=b"u000001", value=b'{"a":1}', headers=[])
    ///   append(1, timestamp=1457741907000, key=None, value=b'', headers=[("h", b"xy")])
    ///   append(2, timestamp=1457741908123, key=b"", value=b'v', headers=[])
    /// printed by `build()`. kafka-python writes partitionLeaderEpoch 0 where the Java
    /// producer (and Kappa) write -1; bytes 12..<16 are changed to 0xFF accordingly (the
    /// CRC does not cover them, so it is kafka-python's own).
    static let kafkaPythonBatch: [UInt8] = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5C, 0xFF, 0xFF, 0xFF, 0xFF,
        0x02, 0x53, 0x90, 0x76, 0x79, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x01, 0x53, 0x68,
        0x30, 0x47, 0xF7, 0x00, 0x00, 0x01, 0x53, 0x68, 0x30, 0x48, 0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x03, 0x28, 0x00, 0x00,
        0x00, 0x0E, 0x75, 0x30, 0x30, 0x30, 0x30, 0x30, 0x31, 0x0E, 0x7B, 0x22, 0x61, 0x22, 0x3A, 0x31,
        0x7D, 0x00, 0x18, 0x00, 0xFD, 0x0E, 0x02, 0x01, 0x00, 0x02, 0x02, 0x68, 0x04, 0x78, 0x79, 0x10,
        0x00, 0xC8, 0x02, 0x04, 0x00, 0x02, 0x76, 0x00,
    ]

    static let kafkaPythonRecords: [ReferenceRecord] = [
        ReferenceRecord(key: bytes("u000001"), value: bytes(#"{"a":1}"#), timestamp: TimestampNanos(millis: 1_457_741_907_959)),
        ReferenceRecord(key: nil, value: [], timestamp: TimestampNanos(millis: 1_457_741_907_000),
                        headers: [RecordHeader(key: "h", value: bytes("xy"))]),
        ReferenceRecord(key: [], value: bytes("v"), timestamp: TimestampNanos(millis: 1_457_741_908_123)),
    ]

    @Test func uncompressedBatchIsByteForByteKafkas() throws {
        let coding = BatchCoding()
        let batch = coding.encode(Self.kafkaPythonRecords, compression: .none)
        #expect(batch == Self.kafkaPythonBatch)
        let (_, decoded) = try coding.decode(Self.kafkaPythonBatch)
        #expect(decoded.map(\.record) == Self.kafkaPythonRecords)
    }

    @Test func oneRecordSectionIsPinned() {
        let r = ReferenceRecord(key: Self.bytes("k"), value: Self.bytes("v"), timestamp: TimestampNanos(millis: 5))
        let batch = BatchCoding().encode([r], compression: .none)
        // length 8 (zigzag 0x10), attributes, timestampDelta 0, offsetDelta 0, keyLength 1,
        // "k", valueLength 1, "v", headerCount 0.
        #expect(Array(batch[RecordBatchLayout.recordsOffset...]) == [0x10, 0x00, 0x00, 0x00, 0x02, 0x6B, 0x02, 0x76, 0x00])
    }

    @Test func nanosHeaderKeyWordIsItsName() {
        let name = Self.bytes(RecordBatchLayout.subMilliNanosHeader)
        #expect(name.count == 8)
        #expect(name.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } == RecordIterator.nanosKeyWord)
    }

    @Test func subMillisecondNanosRideInAKappaNsHeader() {
        let r = ReferenceRecord(key: nil, value: [], timestamp: Self.t0)
        let batch = BatchCoding().encode([r], compression: .none)
        // ... headerCount 1, key "kappa.ns" (8 bytes), value 4 bytes big-endian 400112.
        let expectedHeaders: [UInt8] = [0x02, 0x10] + Self.bytes("kappa.ns") + [0x08, 0x00, 0x06, 0x1A, 0xF0]
        #expect(Array(batch.suffix(expectedHeaders.count)) == expectedHeaders)
        #expect(batch.withUnsafeBytes { $0.loadBigEndian(at: RecordBatchLayout.baseTimestampOffset, as: Int64.self) } == 1_457_741_907_959)
    }

    // MARK: - Header layout

    @Test func headerLayoutIsKafkas() {
        #expect(RecordBatchLayout.baseOffsetOffset == 0)
        #expect(RecordBatchLayout.batchLengthOffset == 8)
        #expect(RecordBatchLayout.partitionLeaderEpochOffset == 12)
        #expect(RecordBatchLayout.magicOffset == 16)
        #expect(RecordBatchLayout.crcOffset == 17)
        #expect(RecordBatchLayout.attributesOffset == 21)
        #expect(RecordBatchLayout.lastOffsetDeltaOffset == 23)
        #expect(RecordBatchLayout.baseTimestampOffset == 27)
        #expect(RecordBatchLayout.maxTimestampOffset == 35)
        #expect(RecordBatchLayout.producerIdOffset == 43)
        #expect(RecordBatchLayout.producerEpochOffset == 51)
        #expect(RecordBatchLayout.baseSequenceOffset == 53)
        #expect(RecordBatchLayout.recordsCountOffset == 57)
        #expect(RecordBatchLayout.recordsOffset == 61)
        #expect(RecordBatchLayout.headerBytes == 61)
        #expect(RecordBatchLayout.logOverheadBytes == 12)
        #expect(RecordBatchLayout.magic == 2)
    }

    @Test(arguments: [CompressionCodec.none, .lz4])
    func sealedHeaderFields(_ compression: CompressionCodec) {
        let records = (0..<5).map { i in
            ReferenceRecord(key: nil, value: Self.bytes("value \(i)"), timestamp: TimestampNanos(millis: [100, 90, 300, 250, 120][i]))
        }
        let batch = BatchCoding().encode(records, compression: compression, baseOffset: Offset(0x0102_0304_0506_0708))
        batch.withUnsafeBytes { raw in
            #expect(raw.loadBigEndian(at: RecordBatchLayout.baseOffsetOffset, as: Int64.self) == 0x0102_0304_0506_0708)
            #expect(Int(raw.loadBigEndian(at: RecordBatchLayout.batchLengthOffset, as: Int32.self)) == batch.count - 12)
            #expect(raw.loadBigEndian(at: RecordBatchLayout.partitionLeaderEpochOffset, as: Int32.self) == -1)
            #expect(raw[RecordBatchLayout.magicOffset] == 2)
            let attributes = raw.loadBigEndian(at: RecordBatchLayout.attributesOffset, as: Int16.self)
            #expect(attributes & 0x07 == compression.rawValue)
            #expect(attributes & ~0x07 == 0, "create-time, not transactional, not control")
            #expect(raw.loadBigEndian(at: RecordBatchLayout.lastOffsetDeltaOffset, as: Int32.self) == 4)
            #expect(raw.loadBigEndian(at: RecordBatchLayout.baseTimestampOffset, as: Int64.self) == 100)
            #expect(raw.loadBigEndian(at: RecordBatchLayout.maxTimestampOffset, as: Int64.self) == 300)
            #expect(raw.loadBigEndian(at: RecordBatchLayout.producerIdOffset, as: Int64.self) == -1)
            #expect(raw.loadBigEndian(at: RecordBatchLayout.producerEpochOffset, as: Int16.self) == -1)
            #expect(raw.loadBigEndian(at: RecordBatchLayout.baseSequenceOffset, as: Int32.self) == -1)
            #expect(raw.loadBigEndian(at: RecordBatchLayout.recordsCountOffset, as: Int32.self) == 5)
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[RecordBatchLayout.attributesOffset...]))
            #expect(raw.loadBigEndian(at: RecordBatchLayout.crcOffset, as: UInt32.self) == crc)
        }
    }

    @Test func lz4SectionIsAStandardFrameWithKafkasSettings() {
        let records = [ReferenceRecord(key: nil, value: [UInt8](repeating: 7, count: 1000), timestamp: TimestampNanos(millis: 1))]
        let batch = BatchCoding().encode(records, compression: .lz4)
        let frame = Array(batch[RecordBatchLayout.recordsOffset...])
        // Magic 0x184D2204 (little-endian); FLG 0x60 = version 01, independent blocks, no
        // block checksum, no content size, no content checksum.
        #expect(Array(frame.prefix(5)) == [0x04, 0x22, 0x4D, 0x18, 0x60])
        // BD: a standard block size (4 = 64 KiB, as Kafka's Java producer writes, ... 7 =
        // 4 MiB); Kafka's KafkaLZ4BlockInputStream and librdkafka accept all four.
        #expect([0x40, 0x50, 0x60, 0x70].contains(frame[5]), "BD byte \(frame[5])")
        // EndMark: a zero block size, and nothing after it (no content checksum).
        #expect(Array(frame.suffix(4)) == [0, 0, 0, 0])
    }

    // MARK: - Round trips

    @Test(arguments: [CompressionCodec.none, .lz4])
    func oneRecord(_ c: CompressionCodec) throws {
        try Self.roundTrip([ReferenceRecord(key: Self.bytes("u1"), value: Self.bytes(#"{"x":1}"#), timestamp: Self.t0)], c)
    }

    @Test(arguments: [CompressionCodec.none, .lz4])
    func nullAndEmptyKeysAndValues(_ c: CompressionCodec) throws {
        try Self.roundTrip([
            ReferenceRecord(key: nil, value: [], timestamp: Self.t0),
            ReferenceRecord(key: [], value: [], timestamp: Self.t0),
            ReferenceRecord(key: nil, value: Self.bytes("v"), timestamp: Self.t0),
            ReferenceRecord(key: [0], value: [0], timestamp: Self.t0),
        ], c)
    }

    @Test(arguments: [CompressionCodec.none, .lz4])
    func headers(_ c: CompressionCodec) throws {
        try Self.roundTrip([
            ReferenceRecord(key: nil, value: Self.bytes("a"), timestamp: Self.t0,
                            headers: [RecordHeader(key: "job", value: Self.bytes("rides-per-city")),
                                      RecordHeader(key: "", value: []),
                                      RecordHeader(key: "bin", value: [0, 255, 128])]),
            ReferenceRecord(key: Self.bytes("k"), value: Self.bytes("b"), timestamp: TimestampNanos(millis: 7),
                            headers: [RecordHeader(key: "job", value: [])]),
        ], c)
    }

    @Test(arguments: [CompressionCodec.none, .lz4])
    func outOfOrderTimesGiveNegativeDeltas(_ c: CompressionCodec) throws {
        let base = Self.t0.rawValue
        let times: [Int64] = [base, base - 86_400_000_000_000, base + 1, base - 1, base + 3_600_000_000_000, 0, -1, -1_500_000]
        try Self.roundTrip(times.map { ReferenceRecord(key: nil, value: [], timestamp: TimestampNanos($0)) }, c)
    }

    @Test(arguments: [CompressionCodec.none, .lz4])
    func subMillisecondNanosSurvive(_ c: CompressionCodec) throws {
        let ns: [Int64] = [1, 999_999, 1_000_000, 1_000_001, 123_456_789, -1, -999_999, -1_000_001]
        try Self.roundTrip(ns.map { ReferenceRecord(key: nil, value: [], timestamp: TimestampNanos(Self.t0.rawValue + $0)) }, c)
        try Self.roundTrip(ns.map { ReferenceRecord(key: nil, value: [], timestamp: TimestampNanos($0)) }, c)
    }

    @Test(arguments: [CompressionCodec.none, .lz4])
    func manyRandomRecords(_ c: CompressionCodec) throws {
        var rng = SeededRandom(seed: c == .none ? 0xBA7C_0001 : 0xBA7C_0002)
        var records: [ReferenceRecord] = []
        for _ in 0..<3000 {
            let key: [UInt8]? = rng.chance(20) ? nil : Self.bytes("u\(rng.int(0...999))")
            // Compressible JSON-ish values mixed with random bytes; some > 64 KiB in total.
            let value = rng.chance(50) ? Self.bytes(#"{"event_type":"login","n":\#(rng.int(0...1_000_000))}"#) : rng.bytes(rng.int(0...200))
            let ts = TimestampNanos(Self.t0.rawValue + Int64(rng.int(-10_000_000...10_000_000)) * 1000 + Int64(rng.int(0...999)))
            let headers = rng.chance(10) ? [RecordHeader(key: "h\(rng.int(0...9))", value: rng.bytes(rng.int(0...8)))] : []
            records.append(ReferenceRecord(key: key, value: value, timestamp: ts, headers: headers))
        }
        try Self.roundTrip(records, c)
    }

    @Test func bigValuesSpanManyLZ4Blocks() throws {
        var rng = SeededRandom(seed: 0xBA7C_0003)
        let records = (0..<3).map { _ in ReferenceRecord(key: nil, value: rng.bytes(150_000), timestamp: Self.t0) }
        try Self.roundTrip(records, .lz4)
    }

    @Test func builderIsReusableAfterSeal() throws {
        let builder = RecordBatchBuilder(compression: .lz4)
        let codec = LZ4Codec()
        let coding = BatchCoding()
        for round in 0..<3 {
            let records = (0...round).map { ReferenceRecord(key: nil, value: Self.bytes("r\(round)-\($0)"), timestamp: TimestampNanos(millis: Int64(10 - $0 - round))) }
            for r in records { BatchCoding.append(r, to: builder) }
            let out = ByteWriter(capacity: 256)
            builder.seal(into: out, codec: codec)
            #expect(builder.isEmpty)
            let (header, decoded) = try coding.decode(Array(out.bytes))
            #expect(decoded.map(\.record) == records, "round \(round)")
            #expect(header.maxTimestampMillis == records.map(\.timestamp.millis).max(), "round \(round): max must not leak from the previous batch")
        }
    }

    // MARK: - CRC coverage

    @Test(arguments: [CompressionCodec.none, .lz4])
    func crcCoversAttributesToTheEnd(_ c: CompressionCodec) {
        let records = (0..<4).map { ReferenceRecord(key: Self.bytes("k\($0)"), value: Self.bytes("value \($0)"), timestamp: Self.t0) }
        let batch = BatchCoding().encode(records, compression: c)
        #expect(batch.withUnsafeBytes { RecordBatchFramer.crcMatches($0) })
        for i in RecordBatchLayout.crcOffset..<batch.count {
            var damaged = batch
            damaged[i] ^= 0x01
            #expect(!damaged.withUnsafeBytes { RecordBatchFramer.crcMatches($0) }, "flipping byte \(i) went unnoticed")
        }
        // Fields before the CRC's range may change freely: the offset is stamped later.
        for i in RecordBatchLayout.baseOffsetOffset..<RecordBatchLayout.crcOffset where !(8..<12).contains(i) {
            var restamped = batch
            restamped[i] ^= 0xA5
            #expect(restamped.withUnsafeBytes { RecordBatchFramer.crcMatches($0) }, "byte \(i) is outside the CRC's range")
        }
    }

    @Test func stampingABaseOffsetKeepsTheCRC() {
        let records = [ReferenceRecord(key: nil, value: Self.bytes("x"), timestamp: Self.t0)]
        let coding = BatchCoding()
        let a = coding.encode(records, compression: .lz4, baseOffset: .zero)
        let b = coding.encode(records, compression: .lz4, baseOffset: Offset(123_456_789))
        #expect(a[8...] == b[8...])
        #expect(b.withUnsafeBytes { RecordBatchFramer.crcMatches($0) })
    }

    @Test func validateAcceptsGoodAndRefusesDamagedBatches() throws {
        let records = (0..<10).map { ReferenceRecord(key: nil, value: Self.bytes("value \($0)"), timestamp: Self.t0) }
        let coding = BatchCoding()
        for c in [CompressionCodec.none, .lz4] {
            let batch = coding.encode(records, compression: c)
            try batch.withUnsafeBytes { raw in
                let header = RecordBatchHeader(raw)
                try RecordBatchFramer.validate(raw, header: header, codec: coding.codec, scratch: coding.scratch)
            }
            var damaged = batch
            damaged[damaged.count - 3] ^= 0x40
            _ = damaged.withUnsafeBytes { raw in
                #expect(throws: BatchDecodeError.self, "\(c)") {
                    try RecordBatchFramer.validate(raw, header: RecordBatchHeader(raw), codec: coding.codec, scratch: coding.scratch)
                }
            }
        }
    }

    // MARK: - Framing

    @Test(arguments: [CompressionCodec.none, .lz4])
    func framerFedOneByteAtATime(_ c: CompressionCodec) throws {
        let records = (0..<20).map { ReferenceRecord(key: nil, value: Self.bytes("value \($0)"), timestamp: Self.t0) }
        let batch = BatchCoding().encode(records, compression: c, baseOffset: Offset(42))
        // Two batches back to back: the framer must stop at the first one's end.
        let stream = batch + batch
        try stream.withUnsafeBytes { raw in
            for n in 0..<batch.count {
                let frame = try RecordBatchFramer.frame(UnsafeRawBufferPointer(rebasing: raw[0..<n]))
                guard case .needMoreBytes(let total) = frame else {
                    Issue.record("framed a batch from \(n) of \(batch.count) bytes")
                    return
                }
                #expect(total > n, "asks for \(total) bytes having \(n)")
                if n >= RecordBatchLayout.logOverheadBytes { #expect(total == batch.count, "at \(n) bytes") }
            }
            for n in [batch.count, batch.count + 1, stream.count] {
                let frame = try RecordBatchFramer.frame(UnsafeRawBufferPointer(rebasing: raw[0..<n]))
                guard case .batch(let header) = frame else {
                    Issue.record("no batch from \(n) bytes: \(frame)")
                    return
                }
                #expect(header.totalBytes == batch.count)
                #expect(header.baseOffset == Offset(42))
                #expect(header.recordsCount == 20)
            }
        }
    }

    static func framingError(length: Int32, magic: Int8 = 2, count: Int = 61) -> BatchDecodeError? {
        var head = [UInt8](repeating: 0, count: max(count, 17))
        head.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: length.bigEndian, toByteOffset: 8, as: Int32.self)
            raw.storeBytes(of: magic, toByteOffset: 16, as: Int8.self)
        }
        do {
            _ = try head.withUnsafeBytes { try RecordBatchFramer.frame(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            return nil
        } catch {
            return error as? BatchDecodeError ?? BatchDecodeError("unexpected error \(error)")
        }
    }

    @Test func lengthsOutsideTheLimitsAreRefused() {
        let maxLength = Int32(Limits.batchBytesMax - RecordBatchLayout.logOverheadBytes)
        #expect(Self.framingError(length: maxLength + 1) != nil, "one byte over Limits.batchBytesMax")
        #expect(Self.framingError(length: .max) != nil)
        #expect(Self.framingError(length: -1) != nil)
        #expect(Self.framingError(length: .min) != nil)
        #expect(Self.framingError(length: 48) != nil, "shorter than a header")
        // Refused as soon as the length is readable, before the rest of the header.
        #expect(Self.framingError(length: maxLength + 1, count: 12) != nil)
        // At the limit, and the smallest legal length, are fine (they need more bytes).
        #expect(Self.framingError(length: maxLength) == nil)
        #expect(Self.framingError(length: 49) == nil)
    }

    /// The base offset is outside the CRC; one whose offsets would pass Int64.max (a
    /// flipped high bit, a hostile peer) is refused when framed, before any record's
    /// offset is computed (which would trap).
    @Test(arguments: [CompressionCodec.none, .lz4])
    func offsetsPastTheLargestAreRefused(_ compression: CompressionCodec) throws {
        let records = (0..<3).map { ReferenceRecord(key: nil, value: Self.bytes("v\($0)"), timestamp: Self.t0) }
        let coding = BatchCoding()
        for (base, refused) in [(Int64.max - 3, false), (Int64.max - 2, true), (Int64.max, true), (Int64.max - 1, true)] {
            let batch = coding.encode(records, compression: compression, baseOffset: Offset(base))
            let error = batch.withUnsafeBytes { raw -> BatchDecodeError? in
                do throws(BatchDecodeError) { _ = try RecordBatchFramer.frame(raw); return nil } catch { return error }
            }
            #expect((error != nil) == refused, "base offset \(base)")
            if refused { #expect(error!.description.contains("largest offset")) }
        }
    }

    @Test func wrongMagicIsRefused() {
        #expect(Self.framingError(length: 100, magic: 1) != nil)
        #expect(Self.framingError(length: 100, magic: 3) != nil)
        #expect(Self.framingError(length: 100, magic: 0) != nil)
    }

    // MARK: - Damaged records sections

    /// Decodes `section` as the records of a batch with `header`'s counts.
    static func decodeSection(_ section: [UInt8], header: RecordBatchHeader) throws -> [ReadRecord] {
        let batch = [UInt8](repeating: 0, count: RecordBatchLayout.headerBytes) + section
        return try batch.withUnsafeBytes { raw in
            let codec = LZ4Codec()
            var it = try RecordBatchDecoder.records(of: raw, header: header, codec: codec, scratch: ByteWriter(capacity: 64))
            return try it.collect()
        }
    }

    static func threeRecordBatch() -> (header: RecordBatchHeader, section: [UInt8], records: [ReferenceRecord]) {
        let records = [
            ReferenceRecord(key: bytes("key"), value: bytes("value-0"), timestamp: t0, headers: [RecordHeader(key: "h", value: [1])]),
            ReferenceRecord(key: nil, value: bytes("value-1"), timestamp: TimestampNanos(millis: 1_457_741_907_000)),
            ReferenceRecord(key: bytes("k2"), value: [], timestamp: t0),
        ]
        let batch = BatchCoding().encode(records, compression: .none)
        let header = batch.withUnsafeBytes { RecordBatchHeader($0) }
        return (header, Array(batch[RecordBatchLayout.recordsOffset...]), records)
    }

    @Test func intactSectionDecodes() throws {
        let (header, section, records) = Self.threeRecordBatch()
        #expect(try Self.decodeSection(section, header: header).map(\.record) == records)
    }

    @Test func everyTruncationThrows() {
        let (header, section, _) = Self.threeRecordBatch()
        for n in 0..<section.count {
            #expect(throws: BatchDecodeError.self, "section cut to \(n) of \(section.count) bytes") {
                try Self.decodeSection(Array(section.prefix(n)), header: header)
            }
        }
    }

    @Test func trailingBytesThrow() {
        let (header, section, _) = Self.threeRecordBatch()
        #expect(throws: BatchDecodeError.self) { try Self.decodeSection(section + [0], header: header) }
    }

    @Test func recordCountDisagreeingWithTheSectionThrows() {
        let (header, section, _) = Self.threeRecordBatch()
        var more = header
        more.recordsCount = 4
        more.lastOffsetDelta = 3
        #expect(throws: BatchDecodeError.self) { try Self.decodeSection(section, header: more) }
        var fewer = header
        fewer.recordsCount = 2
        #expect(throws: BatchDecodeError.self) { try Self.decodeSection(section, header: fewer) }
        var negative = header
        negative.recordsCount = -1
        #expect(throws: BatchDecodeError.self) { try Self.decodeSection(section, header: negative) }
    }

    /// A one-record section built field by field, to damage one field at a time.
    static func section(length: [UInt8]? = nil, timestampDelta: Int64 = 0, offsetDelta: Int64 = 0, keyLength: Int64 = 1,
                        valueLength: Int64 = 1, headerCount: Int64 = 0) -> [UInt8] {
        let body = ByteWriter(capacity: 64)
        body.append(0)
        body.appendVarint(timestampDelta)
        body.appendVarint(offsetDelta)
        body.appendVarint(keyLength)
        body.append(Array("k".utf8))
        body.appendVarint(valueLength)
        body.append(Array("v".utf8))
        body.appendVarint(headerCount)
        let prefix = ByteWriter(capacity: 16)
        prefix.appendVarint(Int64(body.count))
        return (length ?? Array(prefix.bytes)) + Array(body.bytes)
    }

    static let oneRecordHeader: RecordBatchHeader = {
        var h = threeRecordBatch().header
        h.recordsCount = 1
        h.lastOffsetDelta = 0
        return h
    }()

    @Test func wellFormedHandBuiltSectionDecodes() throws {
        let got = try Self.decodeSection(Self.section(), header: Self.oneRecordHeader)
        #expect(got.map(\.record) == [ReferenceRecord(key: Array("k".utf8), value: Array("v".utf8), timestamp: TimestampNanos(millis: Self.oneRecordHeader.baseTimestampMillis))])
    }

    static let damagedSections: [(String, [UInt8])] = [
        ("record length past the end", section(length: [0x7E])),
        ("negative record length", section(length: [0x01])),
        ("record length overlong varint", section(length: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])),
        ("record length unterminated", [0x80, 0x80, 0x80]),
        ("zero record length", section(length: [0x00])),
        ("key length past the record", section(keyLength: 100)),
        ("key length -2", section(keyLength: -2)),
        ("key length huge", section(keyLength: Int64(Int32.max))),
        ("value length past the record", section(valueLength: 50)),
        ("header count without headers", section(headerCount: 3)),
        ("negative header count", section(headerCount: -1)),
        ("offset delta beyond lastOffsetDelta", section(offsetDelta: 1)),
        ("negative offset delta", section(offsetDelta: -1)),
    ]

    @Test(arguments: damagedSections)
    func damagedFieldsThrow(_ what: String, _ section: [UInt8]) {
        #expect(throws: BatchDecodeError.self, "\(what)") { try Self.decodeSection(section, header: Self.oneRecordHeader) }
    }

    /// A timestamp that is a valid Int64 of milliseconds but not of nanoseconds (after
    /// 2262 or before 1677) must be refused as a decode error, not trap: a corrupt or
    /// foreign batch can carry any value. Runs in a child process so a trap fails only
    /// this test.
    @Test func timestampsBeyondInt64NanosThrowRatherThanTrap() async {
        await #expect(processExitsWith: .success, "huge timestampDelta") {
            let section = UnitRecordBatchTests.section(timestampDelta: Int64(1) << 50)
            #expect(throws: BatchDecodeError.self) { try UnitRecordBatchTests.decodeSection(section, header: UnitRecordBatchTests.oneRecordHeader) }
        }
        await #expect(processExitsWith: .success, "huge baseTimestamp") {
            var header = UnitRecordBatchTests.oneRecordHeader
            header.baseTimestampMillis = Int64.max / 2
            #expect(throws: BatchDecodeError.self) { try UnitRecordBatchTests.decodeSection(UnitRecordBatchTests.section(), header: header) }
        }
    }

    /// Random damage (flips, insertions, deletions) to a records section must end in a
    /// decode error or in records that lie inside the section, never in a crash. The
    /// run is in a child process so that a crash is reported as this test's failure.
    @Test func randomDamageNeverCrashes() async {
        await #expect(processExitsWith: .success) {
            UnitRecordBatchTests.fuzzSections(seed: 0xF022_0001, rounds: 20_000)
        }
    }

    static func fuzzSections(seed: UInt64, rounds: Int) {
        var rng = SeededRandom(seed: seed)
        let (header, section, _) = threeRecordBatch()
        var decoded = 0
        for round in 0..<rounds {
            var damaged = section
            for _ in 0..<rng.int(1...3) {
                switch rng.int(0...3) {
                case 0, 1: damaged[rng.int(0...(damaged.count - 1))] = UInt8.random(in: 0...255, using: &rng)
                case 2: damaged.insert(UInt8.random(in: 0...255, using: &rng), at: rng.int(0...damaged.count))
                default: if damaged.count > 1 { damaged.remove(at: rng.int(0...(damaged.count - 1))) }
                }
            }
            let batch = [UInt8](repeating: 0, count: RecordBatchLayout.headerBytes) + damaged
            batch.withUnsafeBytes { raw in
                let lo = UInt(bitPattern: raw.baseAddress!) + UInt(RecordBatchLayout.headerBytes)
                let hi = UInt(bitPattern: raw.baseAddress!) + UInt(raw.count)
                func inside(_ b: UnsafeRawBufferPointer?) -> Bool {
                    guard let b, b.count > 0 else { return true }
                    let s = UInt(bitPattern: b.baseAddress!)
                    return s >= lo && s + UInt(b.count) <= hi
                }
                do {
                    var it = try RecordBatchDecoder.records(of: raw, header: header, codec: LZ4Codec(), scratch: ByteWriter(capacity: 64))
                    while let r = try it.next() {
                        #expect(inside(r.key) && inside(r.value) && inside(r.headers), "round \(round) seed \(seed): a view escapes the section")
                        r.forEachHeader { k, v in
                            #expect(inside(k) && inside(v), "round \(round) seed \(seed): a header escapes the section")
                        }
                    }
                    decoded += 1
                } catch {}
            }
        }
        #expect(decoded < rounds, "seed \(seed): damage was never detected")
    }
}
